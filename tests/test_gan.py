"""Chapter 4 (GANs): losses against hand computations, the gradient penalty against finite differences,
the mode counter on samples of known coverage, stacked networks, the step schedule, smoke training of
every GAN recipe, the exercise checks and the interpolation widget."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gencourse import data, gan, metrics, recipes
from gencourse.gan import losses as L

D64 = torch.float64


# ---------------------------------------------------------------------------
# losses: hand computations
# ---------------------------------------------------------------------------
def test_discriminator_loss_and_value_function_by_hand():
    real, fake = torch.tensor([0.0, 2.0], dtype=D64), torch.tensor([-1.0, 1.0], dtype=D64)
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    by_hand = (-(math.log(s(0.0)) + math.log(s(2.0))) / 2                 # -mean log D(x)
               - (math.log(1 - s(-1.0)) + math.log(1 - s(1.0))) / 2)      # -mean log(1 - D(G(z)))
    assert float(L.discriminator_loss(real, fake)) == pytest.approx(by_hand, rel=1e-12)
    assert float(L.value_function(real, fake)) == pytest.approx(-by_hand, rel=1e-12)
    # D = 1/2 everywhere: L_D = 2 log 2 = log 4
    assert float(L.discriminator_loss(torch.zeros(3), torch.zeros(3))) == pytest.approx(math.log(4), rel=1e-6)
    # against torch's BCE on probabilities
    ref = F.binary_cross_entropy(torch.sigmoid(real), torch.ones(2, dtype=D64)) + \
        F.binary_cross_entropy(torch.sigmoid(fake), torch.zeros(2, dtype=D64))
    assert torch.allclose(L.discriminator_loss(real, fake), ref)
    # smoothed targets: BCE with target 0.9 on the real side
    t = 0.9
    by_hand_s = -sum(t * math.log(s(v)) + (1 - t) * math.log(1 - s(v)) for v in (0.0, 2.0)) / 2 \
        - (math.log(1 - s(-1.0)) + math.log(1 - s(1.0))) / 2
    assert float(L.discriminator_loss(real, fake, real_target=0.9)) == pytest.approx(by_hand_s, rel=1e-12)
    # stable for huge logits
    assert float(L.discriminator_loss(torch.tensor([80.0]), torch.tensor([-80.0]))) < 1e-30


def test_generator_losses_by_hand_and_their_gradients():
    fake = torch.tensor([-3.0, 0.5], dtype=D64, requires_grad=True)
    s = torch.sigmoid(fake.detach())
    sat, ns = L.generator_loss(fake, "saturating"), L.generator_loss(fake)  # default: non-saturating
    assert float(sat.detach()) == pytest.approx(float(torch.log(1 - s).mean()), rel=1e-12)
    assert float(ns.detach()) == pytest.approx(float(-torch.log(s).mean()), rel=1e-12)
    # d/dlogit of mean log(1 - sigmoid(l)) = -sigmoid(l) / n; of -mean log sigmoid(l) = -(1 - sigmoid(l)) / n
    (g_sat,) = torch.autograd.grad(sat, fake)
    (g_ns,) = torch.autograd.grad(ns, fake)
    assert torch.allclose(g_sat, -s / 2) and torch.allclose(g_ns, -(1 - s) / 2)
    # saturating + D's fake term = 0: L_G = -L_D up to the real term, which does not depend on G
    assert torch.allclose(sat, -(L.discriminator_loss(torch.tensor([50.0], dtype=D64), fake)))
    with pytest.raises(ValueError, match="non-saturating"):
        L.generator_loss(fake, "minimax")


def test_wasserstein_losses_and_label_targets():
    r, f = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    assert float(L.critic_loss(r, f)) == pytest.approx(-1.0 - 2.0)
    assert float(L.wasserstein_generator_loss(f)) == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    assert torch.all(L.label_targets((4,), 1.0, smoothing=0.1) == 0.9)
    assert torch.all(L.label_targets((4,), 0.0, smoothing=0.1) == 0.1)
    noisy = L.label_targets((10_000,), 1.0, noise=0.2, generator=g)
    assert noisy.min() >= 0.8 and noisy.max() <= 1.0 and abs(float(noisy.mean()) - 0.9) < 0.01
    flipped = L.label_targets((10_000,), 1.0, flip=0.25, generator=g)
    assert set(flipped.unique().tolist()) == {0.0, 1.0} and abs(float((flipped == 0).float().mean()) - 0.25) < 0.02


# ---------------------------------------------------------------------------
# gradient penalty: finite differences and a closed form
# ---------------------------------------------------------------------------
def test_gradient_penalty_against_finite_differences():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(6, 4, generator=g, dtype=D64, requires_grad=True)
    v = torch.randn(4, generator=g, dtype=D64, requires_grad=True)
    critic = lambda x: torch.tanh(x.flatten(1) @ W) @ v  # noqa: E731
    real = torch.randn(5, 2, 3, generator=g, dtype=D64)
    fake = torch.randn(5, 2, 3, generator=g, dtype=D64)
    eps = torch.rand(5, generator=g, dtype=D64)
    gp = L.gradient_penalty(critic, real, fake, eps=eps)
    x_hat = (eps[:, None, None] * real + (1 - eps[:, None, None]) * fake).flatten(1)
    h, norms = 1e-6, []
    for i in range(5):  # central differences of f at x_hat_i along every coordinate
        grad = torch.stack([(critic((x_hat[i] + h * e)[None]) - critic((x_hat[i] - h * e)[None]))[0] / (2 * h)
                            for e in torch.eye(6, dtype=D64)])
        norms.append(grad.norm())
    ref = ((torch.stack(norms) - 1) ** 2).mean()
    assert torch.allclose(gp, ref, rtol=1e-7)
    # its gradient w.r.t. the critic's weights (double backward) against finite differences in v[0]
    (gv,) = torch.autograd.grad(gp, v)
    dv = torch.zeros(4, dtype=D64)
    dv[0] = 1e-6
    with torch.no_grad():
        v += dv
    up = L.gradient_penalty(critic, real, fake, eps=eps).detach()
    with torch.no_grad():
        v -= 2 * dv
    down = L.gradient_penalty(critic, real, fake, eps=eps).detach()
    with torch.no_grad():
        v += dv
    assert float(gv[0]) == pytest.approx(float((up - down) / 2e-6), rel=1e-5)


def test_gradient_penalty_of_a_linear_critic_and_stacked_batches():
    w = torch.tensor([0.6, 0.8, 1.0])  # |w| = sqrt(2): (sqrt(2) - 1)^2 for every x_hat
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(7, 3), torch.randn(7, 3)
    assert float(L.gradient_penalty(critic, real, fake)) == pytest.approx((math.sqrt(2) - 1) ** 2, rel=1e-5)
    # (S, B, 3) with batch_dims=2: each of the S*B samples is one norm
    assert float(L.gradient_penalty(critic, torch.randn(2, 7, 3), torch.randn(2, 7, 3), batch_dims=2)) == \
        pytest.approx((math.sqrt(2) - 1) ** 2, rel=1e-5)


def test_optimal_discriminator_formula_and_a_trained_logistic_discriminator():
    assert torch.allclose(L.optimal_discriminator(torch.tensor([1.0, 0.0, 3.0]), torch.tensor([1.0, 0.0, 1.0])),
                          torch.tensor([0.5, 0.5, 0.75]))
    # p_data = N(0, 1), p_g = N(1, 1): D*(x) = sigmoid(log p_data/p_g) = sigmoid(-x + 1/2), a logistic function,
    # so a single linear unit trained with the BCE discriminator loss must find weight -1, bias 1/2
    torch.manual_seed(0)
    lin = torch.nn.Linear(1, 1)
    g = torch.Generator().manual_seed(0)
    gan.train_discriminator(torch.nn.Sequential(lin, torch.nn.Flatten(0)), lambda n: torch.randn(n, 1, generator=g),
                            lambda n: 1 + torch.randn(n, 1, generator=g), steps=300, batch_size=1024, lr=0.05)
    assert float(lin.weight.detach()) == pytest.approx(-1.0, abs=0.1) and float(lin.bias.detach()) == pytest.approx(0.5, abs=0.1)


# ---------------------------------------------------------------------------
# the mode counter on samples of known coverage
# ---------------------------------------------------------------------------
def test_count_modes_on_samples_with_known_coverage():
    g = torch.Generator().manual_seed(0)
    centres, std = data.ring_modes(8, 2.0), 0.05
    # 900 samples on modes 0..4 (5 covered), 100 far away (low quality), 3 stray points on mode 7 (too few)
    on = centres[torch.arange(900) % 5] + std * torch.randn(900, 2, generator=g)
    off = torch.zeros(100, 2)                         # the centre of the ring: 2 away from every mode
    stray = centres[7] + 0.01 * torch.randn(3, 2, generator=g)
    mc = metrics.count_modes(torch.cat([on, off, stray]), centres, std)
    within = (torch.cdist(on.double(), centres.double()).min(1).values <= 3 * std).sum()  # ~99.9% of on-mode points
    assert mc.covered == 5 and mc.counts[5:7] == [0, 0] and mc.counts[7] == 3
    assert mc.high_quality == pytest.approx((float(within) + 3) / 1003, abs=1e-6)
    # a perfect sampler covers all 8 with ~99% high quality (3 std in 2-D: 1 - exp(-4.5) = 98.9%)
    x, _ = data.ring_of_gaussians(8000, generator=g)
    mc = metrics.count_modes(x, centres, std)
    assert mc.covered == 8 and mc.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.005)


# ---------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------
def test_stacked_networks_are_independent_copies():
    S = 3
    mlp = gan.MLP([2, 5, 1], act="leaky_relu", n_models=S, seeds=[4, 5, 6])
    single = gan.MLP([2, 5, 1], act="leaky_relu", n_models=1, seeds=[5])
    x = torch.randn(S, 7, 2)
    assert torch.allclose(mlp(x)[1], single(x[1:2])[0], atol=1e-6)  # network 1 = the network of seed 5
    # the gradient of network 0 does not depend on the inputs of the others
    def grad0(x):
        mlp.zero_grad()
        mlp(x).sum().backward()
        return [p.grad[0].clone() for p in mlp.parameters()]
    x2 = x.clone()
    x2[1:] = torch.randn(S - 1, 7, 2)
    assert all(torch.allclose(a, b) for a, b in zip(grad0(x), grad0(x2)))


@pytest.mark.parametrize("k", [0, 10])
def test_dcgan_shapes_conditioning_and_params(k):
    G, D = gan.DCGenerator(16, 8, n_classes=k), gan.DCDiscriminator(8, n_classes=k)
    z, y = torch.randn(4, 16), (torch.tensor([0, 1, 2, 3]) if k else None)
    x = G(z, y)
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1
    assert D(x, y).shape == (4,)
    if k:
        with pytest.raises(ValueError, match="pass labels"):
            G(z)
        # soft labels (rows of a one-hot blend) give the hard result at the corners
        G.eval()
        assert torch.allclose(G(z, F.one_hot(y, 10).float()), G(z, y))
        # the projection term makes the logit depend on the label
        assert not torch.allclose(D(x, y), D(x, (y + 1) % 10))
    for norm in ("layer", "none"):
        assert gan.DCDiscriminator(8, norm=norm)(x).shape == (4,)
    G64, D64_ = gan.DCGenerator(64, 64), gan.DCDiscriminator(64)
    assert 0.5e6 < gan.n_params(G64) + gan.n_params(D64_) < 1.5e6


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_deep_dcgan_adds_one_3x3_convolution_per_resolution(norm):
    """deep=True: the output shapes are unchanged, and the extra parameters are exactly those of the
    3x3 convolutions (no bias before a norm) and their norms, counted by hand."""
    w, d, k = 8, 16, 10
    G0, G1 = gan.DCGenerator(d, w, n_classes=k), gan.DCGenerator(d, w, n_classes=k, deep=True)
    D0, D1 = gan.DCDiscriminator(w, n_classes=k, norm=norm), gan.DCDiscriminator(w, n_classes=k, norm=norm, deep=True)
    conv_bn = lambda c: c * c * 9 + 2 * c  # noqa: E731
    assert gan.n_params(G1) - gan.n_params(G0) == conv_bn(2 * w) + conv_bn(w)
    assert gan.n_params(D1) - gan.n_params(D0) == (conv_bn(w) if norm == "batch" else w * w * 9 + w)
    z, y = torch.randn(3, d), torch.tensor([1, 2, 3])
    x = G1(z, y)
    assert x.shape == (3, 1, 28, 28) and D1(x, y).shape == (3,)
    assert sum(isinstance(m, nn.Conv2d) for m in G1.modules()) == 2


def test_mlp_gan_for_images():
    G = gan.MLPGenerator(8, (1, 28, 28), [16], tanh=True, n_classes=10)
    D = gan.MLPDiscriminator((1, 28, 28), [16], n_classes=10)
    y = torch.arange(5)
    x = G(torch.randn(5, 8), y)
    assert x.shape == (5, 1, 28, 28) and D(x, y).shape == (5,)


# ---------------------------------------------------------------------------
# the step function: alternation schedule, snapshots
# ---------------------------------------------------------------------------
class _Counting(torch.optim.SGD):
    calls = 0

    def step(self, closure=None):
        type(self).calls += 1
        return super().step(closure)


class _CountD(_Counting):
    calls = 0


class _CountG(_Counting):
    calls = 0


@pytest.mark.parametrize("loss,d_steps,g_steps", [("non-saturating", 1, 1), ("saturating", 3, 1),
                                                  ("wgan-gp", 5, 1), ("non-saturating", 1, 2)])
def test_gan_step_update_ratio(loss, d_steps, g_steps):
    from gencourse.train import Trainer

    _CountD.calls = _CountG.calls = 0
    G, D = gan.MLPGenerator(2, (2,), [8]), gan.MLPDiscriminator((2,), [8])
    opt_g, opt_d = _CountG(G.parameters(), lr=0.01), _CountD(D.parameters(), lr=0.01)
    step = gan.gan_step(G, D, opt_g, opt_d, latent_dim=2, loss=loss, d_steps=d_steps, g_steps=g_steps,
                        real_smoothing=0.1 if loss != "wgan-gp" else 0.0, flip=0.05 if loss != "wgan-gp" else 0.0)
    tr = Trainer(step, lambda: torch.randn(16, 2), modules={"g": G, "d": D}, optimizers={"g": opt_g, "d": opt_d},
                 log_every=5, progress="off")
    hist = tr.fit(steps=10)
    assert _CountD.calls == 10
    assert _CountG.calls == g_steps * len(range(0, 10, d_steps))
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(hist.values) and all(map(math.isfinite, hist["g_loss"]))
    assert ("gp" in hist.values) == (loss == "wgan-gp")


def test_ema_update_and_sampler():
    G = gan.DCGenerator(8, 4)
    ema = __import__("copy").deepcopy(G).requires_grad_(False)
    before = [p.clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
        G.net[1].running_mean.fill_(3.0)
    gan.ema_update(ema, G, 0.9)                                   # ema = 0.9 ema + 0.1 G
    assert all(torch.allclose(e, 0.9 * b + 0.1 * g) for e, b, g in zip(ema.parameters(), before, G.parameters()))
    assert torch.all(ema.net[1].running_mean == 3.0)              # buffers are copied
    gan.ema_update(ema, G, 0.999, step=0)                         # warm-up: decay min(0.999, 1/10) = 0.1
    assert all(torch.allclose(e, g, atol=0.1) for e, g in zip(ema.parameters(), G.parameters()))
    assert gan.sampler({"generator": G, "generator_ema": ema}) is ema and gan.sampler({"generator": G}) is G


def test_snapshots_schedule_and_recording():
    sched = gan.snapshot_schedule(6000, 8)
    assert sched[0] == 25 and sched[-1] == 6000 and len(sched) == 8 and sched == sorted(sched)
    snaps = gan.Snapshots([2, 4], 3, latent_dim=16, n_classes=10)
    G = gan.DCGenerator(16, 8, n_classes=10)
    for s in range(1, 6):
        snaps.maybe_record(s, G)
    frames = snaps.frames()
    assert [s for s, _ in frames] == [2, 4] and frames[0][1].shape == (3, 1, 28, 28) and G.training


# ---------------------------------------------------------------------------
# toy experiments and recipes (smoke runs)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [{}, {"loss": "wgan-gp", "d_steps": 2}, {"dropout": 0.2, "real_smoothing": 0.1},
                                 {"d_hidden": [4], "label_noise": 0.2}])
def test_train_toy_gan_smoke(cfg):
    run = gan.train_toy_gan([0, 1], 6, hidden=[8], batch_size=32, n_eval=50, snapshot_every=3, log_every=3, **cfg)
    assert run.samples.shape == (2, 50, 2) and len(run.modes) == 2 and len(run.snapshots) == 2
    rows = gan.summarize_runs({"x": run})
    assert rows[0]["seeds"] == 2 and 0 <= rows[0]["high quality (mean)"] <= 1
    with pytest.raises(ValueError, match="unknown toy setting"):
        gan.train_toy_gan([0], 1, lr=1.0)


@pytest.mark.parametrize("name,extra", [("dcgan-mnist", {}), ("cgan-fashion", {}), ("wgan-gp-mnist", {}),
                                        ("dcgan-mnist", {"arch": "mlp", "hidden": [16, 32]})])
def test_recipes_smoke_train_sample(name, extra):
    cfg = dict(width=8, latent_dim=8, n_train=256, batch_size=32, steps=6, snapshots=2, eval_samples=50, **extra)
    trainer, modules, cfg = recipes.build_trainer(name, cfg, progress="off", log_every=3)
    hist = trainer.fit(steps=6)
    assert all(math.isfinite(v) for v in hist["d_loss"])
    assert len(modules["snapshots"].frames()) == 2
    out = recipes.get(name).sample(modules, cfg, 12, torch.device("cpu"), torch.Generator().manual_seed(0))
    x, y = out if cfg["conditional"] else (out, None)
    assert x.shape == (12, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert (y is not None) == name.startswith("cgan") and (y is None or y.tolist()[:3] == [0, 1, 2])


def test_recipe_evaluate_reports_metrics_with_protocol():
    cfg = dict(width=8, latent_dim=8, n_train=256, batch_size=32, eval_samples=100, conditional=True, snapshots=1)
    trainer, modules, cfg = recipes.build_trainer("cgan-mnist", cfg, progress="off")
    trainer.fit(steps=2)
    res = recipes.get("cgan-mnist").evaluate(modules, cfg, torch.device("cpu"))
    assert {"fid", "precision", "recall", "class_accuracy", "floor_fid", "protocol"} <= set(res)
    assert len(res["class_accuracy_per_class"]) == 10 and "FID" in res["protocol"] and res["eval_n"] == 100


# ---------------------------------------------------------------------------
# exercise checks and the widget
# ---------------------------------------------------------------------------
def test_exercise_checks_accept_answers_and_name_mistakes():
    from gencourse.checks import CheckFailed
    from gencourse.checks import gan as check

    assert check.discriminator_loss(L.discriminator_loss)
    with pytest.raises(CheckFailed, match="labels are flipped"):
        check.discriminator_loss(lambda r, f: L.discriminator_loss(f, r))
    with pytest.raises(CheckFailed, match="averaged"):
        check.discriminator_loss(lambda r, f: L.discriminator_loss(r, f) / 2)
    with pytest.raises(CheckFailed, match="softplus"):
        check.discriminator_loss(lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean())

    assert check.generator_losses(lambda f: (L.generator_loss_saturating(f), L.generator_loss_nonsaturating(f)))
    with pytest.raises(CheckFailed, match="swapped"):
        check.generator_losses(lambda f: (L.generator_loss_nonsaturating(f), L.generator_loss_saturating(f)))
    with pytest.raises(CheckFailed, match="sign"):
        check.generator_losses(lambda f: (-L.generator_loss_saturating(f), L.generator_loss_nonsaturating(f)))
    with pytest.raises(CheckFailed, match="differentiable"):
        check.generator_losses(lambda f: (L.generator_loss_saturating(f).detach(), L.generator_loss_nonsaturating(f)))

    assert check.gradient_penalty(lambda c, r, f, e: L.gradient_penalty(c, r, f, eps=e))
    with pytest.raises(CheckFailed, match="reversed"):
        check.gradient_penalty(lambda c, r, f, e: L.gradient_penalty(c, f, r, eps=e))

    def no_graph(c, r, f, e):
        x = (e[:, None, None] * r + (1 - e[:, None, None]) * f).requires_grad_(True)
        (gr,) = torch.autograd.grad(c(x).sum(), x)
        return ((gr.flatten(1).norm(dim=1) - 1) ** 2).mean()
    with pytest.raises(CheckFailed, match="create_graph"):
        check.gradient_penalty(no_graph)

    def batch_norm(c, r, f, e):
        x = (e[:, None, None] * r + (1 - e[:, None, None]) * f).requires_grad_(True)
        (gr,) = torch.autograd.grad(c(x).sum(), x, create_graph=True)
        return (gr.norm() - 1) ** 2
    with pytest.raises(CheckFailed, match="per sample"):
        check.gradient_penalty(batch_norm)

    def opt(p, q):
        d = L.optimal_discriminator(p, q)
        return d, (torch.special.xlogy(p, d) + torch.special.xlogy(q, 1 - d)).sum()
    assert check.optimal_discriminator(opt)
    with pytest.raises(CheckFailed, match="probability of FAKE"):
        check.optimal_discriminator(lambda p, q: (q / (p + q), opt(p, q)[1]))
    with pytest.raises(CheckFailed, match="xlogy"):
        check.optimal_discriminator(lambda p, q: (p / (p + q), (p * (p / (p + q)).log() + q * (q / (p + q)).log()).sum()))


def test_gan_interpolation_widget_and_static_grid():
    from gencourse import widgets

    G = gan.DCGenerator(8, 4, n_classes=10)
    za, zb = torch.randn(3, 8), torch.randn(3, 8)
    wdg = widgets.gan_interpolation(G, za, zb)
    x0 = wdg.set(t=0.0)
    assert x0.shape == (3, 1, 28, 28) and 0 <= x0.min() and x0.max() <= 1
    assert torch.allclose(x0, gan.to_unit(G.eval()(za, torch.arange(3))), atol=1e-6)
    assert torch.allclose(wdg.set(t=1.0), gan.to_unit(G(zb, torch.arange(3))), atol=1e-5)
    all_sevens = wdg.set(label=7)
    assert torch.allclose(all_sevens, gan.to_unit(G(zb, torch.full((3,), 7))), atol=1e-5)
    frames = wdg.sweep("t", [0.0, 0.5, 1.0])
    assert len(frames) == 3 and frames[0].shape == (3, 1, 28, 28)
    grid = widgets.gan_interpolation_grid(G, za, zb, [0.0, 0.5, 1.0], labels=torch.tensor([7, 7, 7]))
    assert grid.shape == (9, 1, 28, 28) and torch.allclose(grid[2::3], all_sevens, atol=1e-5)


def test_default_dcgan_initialisation_is_unchanged_by_the_deep_option():
    """The shipped shallow checkpoints' commands must still reproduce: with seed 0, the initial weights of
    the deep=False networks hash to the value computed with the code from before `deep` existed."""
    import hashlib

    h = hashlib.sha256()
    for cls, kw in ((gan.DCDiscriminator, {"n_classes": 10}), (gan.DCDiscriminator, {"norm": "none"}),
                    (gan.DCGenerator, {})):
        torch.manual_seed(0)
        for t in cls(32, **kw).state_dict().values():
            h.update(t.numpy().tobytes())
    assert h.hexdigest()[:16] == "e471366009f068a2"


# ---------------------------------------------------------------------------
# many toy configurations in one run
# ---------------------------------------------------------------------------
def test_label_targets_take_one_setting_per_network():
    smooth = torch.tensor([[0.0], [0.2]])                                  # (S, 1) against targets (S, B)
    t = L.label_targets((2, 5), 1.0, smoothing=smooth)
    assert torch.equal(t, torch.tensor([[1.0] * 5, [0.8] * 5]))
    flipped = L.label_targets((2, 20_000), 1.0, flip=torch.tensor([[0.0], [0.5]]),
                              generator=torch.Generator().manual_seed(0))
    assert bool((flipped[0] == 1).all()) and abs(float((flipped[1] == 0).float().mean()) - 0.5) < 0.02
    with pytest.raises(ValueError, match="flip"):
        L.label_targets((2, 3), 1.0, flip=torch.tensor([[0.1], [1.5]]))


def test_stacked_adam_matches_torch_adam_per_network_with_its_own_lr_and_schedule():
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(3, 4, 2, generator=g)
    lrs, betas = [1e-2, 3e-3, 5e-2], (0.5, 0.9)
    stacked = nn.Parameter(w0.clone())
    opt = gan.StackedAdam([stacked], lrs, betas)
    alone = [nn.Parameter(w0[s].clone()) for s in range(3)]
    refs = [torch.optim.Adam([p], lr=lr, betas=betas) for p, lr in zip(alone, lrs)]
    targets = torch.randn(12, 3, 4, 2, generator=g)
    for t in range(12):
        mask = torch.tensor([True, t % 2 == 0, t % 3 == 0])                 # network 1 every 2nd, 2 every 3rd step
        opt.zero_grad()
        ((stacked - targets[t]) ** 3).abs().sum().backward()
        opt.mask = mask
        opt.step()
        for s in range(3):
            if mask[s]:
                refs[s].zero_grad()
                ((alone[s] - targets[t, s]) ** 3).abs().sum().backward()
                refs[s].step()
    for s in range(3):
        torch.testing.assert_close(stacked.detach()[s], alone[s].detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(stacked.detach()[2], w0[2])


def test_toy_sweep_of_one_configuration_is_train_toy_gan():
    cfg = dict(lr_d=5e-4, d_steps=2, real_smoothing=0.1, label_noise=0.1, flip=0.05, batch_size=32)
    torch.manual_seed(0)
    ref = gan.train_toy_gan([0, 1], 20, n_eval=50, **cfg)
    torch.manual_seed(0)
    run = gan.train_toy_sweep({"a": cfg}, [0, 1], 20, n_eval=50)["a"]
    torch.testing.assert_close(run.samples, ref.samples, rtol=1e-4, atol=1e-4)
    assert run.config == ref.config and run.covered == ref.covered


def test_toy_sweep_keeps_configurations_apart_and_rejects_what_it_cannot_vary():
    a = dict(dropout=0.3, batch_size=32, flip=0.05)             # the same network next to two different neighbours
    runs = []
    for other in (dict(lr_d=1e-3), dict(d_steps=3, lr_g=5e-4, real_smoothing=0.2)):
        torch.manual_seed(0)
        runs.append(gan.train_toy_sweep({"a": a, "other": other}, [0, 1], 15, n_eval=40, snapshot_every=5))
    torch.testing.assert_close(runs[0]["a"].samples, runs[1]["a"].samples, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(runs[0]["other"].samples, runs[1]["other"].samples)
    assert runs[0]["a"].samples.shape == (2, 40, 2) and len(runs[0]["a"].snapshots) == 3
    assert "d_loss/other" in runs[0]["a"].history.values
    with pytest.raises(ValueError, match="may vary only"):
        gan.train_toy_sweep({"a": {}, "b": dict(hidden=[16, 16])}, [0], 2)
    with pytest.raises(ValueError, match="train_toy_gan"):
        gan.train_toy_sweep({"w": dict(loss="wgan-gp", d_steps=5)}, [0], 2)


# ---------------------------------------------------------------------------
# the exact W1 reference of Chapter 4's critic plot
# ---------------------------------------------------------------------------
def test_wasserstein1_against_sorting_in_1d_and_enumeration_in_2d():
    import itertools

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 1, generator=g), 0.5 + 2 * torch.randn(200, 1, generator=g)
    exact_1d = float((x.double().sort(0).values - y.double().sort(0).values).abs().mean())   # W1 on a line
    assert gan.wasserstein1(x, y) == pytest.approx(exact_1d, rel=1e-9)
    a, b = torch.randn(6, 2, generator=g).double(), torch.randn(6, 2, generator=g).double()
    brute = min(float(torch.stack([(a[i] - b[j]).norm() for i, j in enumerate(p)]).mean())
                for p in itertools.permutations(range(6)))
    assert gan.wasserstein1(a, b) == pytest.approx(brute, rel=1e-9)
    with pytest.raises(ValueError, match="same shape"):
        gan.wasserstein1(a, b[:5])


def test_gan_recipe_accepts_integer_betas_from_the_command_line():
    # `--set betas=[0,0.9]` parses 0 as an int; torch's Adam then refuses a mixed pair with a cryptic message
    recipe = recipes.get("wgan-gp-mnist")
    cfg = recipe.config(betas=[0, 0.9], width=8)
    opts = recipe.optimizers(recipe.build(cfg), cfg)
    assert opts["d"].param_groups[0]["betas"] == (0.0, 0.9) and opts["g"].param_groups[0]["betas"] == (0.0, 0.9)


GAN_RECIPES = ("dcgan-mnist", "dcgan-fashion", "cgan-mnist", "cgan-fashion", "wgan-gp-mnist")


@pytest.mark.parametrize("name", GAN_RECIPES)
def test_gan_recipe_trains_what_is_shipped(name):
    # `python -m gencourse train NAME` must reproduce the shipped file's settings (Chapter 4 reads them from it)
    shipped = recipes.shipped_meta(name)["config"]
    cfg = recipes.get(name).config()
    keys = ("lr_g", "lr_d", "betas", "d_steps", "g_steps", "loss", "d_norm", "deep", "batch_size", "width",
            "latent_dim", "ema_decay", "steps", "d_spectral", "r1_weight", "r1_every")
    differ = {k: (cfg[k], shipped[k]) for k in keys if k in shipped and cfg[k] != shipped[k]}
    assert not differ, f"recipe vs shipped: {differ}"


def test_stored_gan_trials_agree_with_the_weights_shipped_from_them():
    rows = gan.stored_trials()
    assert rows and all(r["recipe"] in GAN_RECIPES for r in rows)
    matched = set()
    for r in rows:
        meta = recipes.shipped_meta(r["recipe"])
        if meta.get("tensors_sha256", "")[:16] == r["tensors_sha256"]:
            m = meta["metrics"]
            assert (r["fid"], r["eval_n"], r["steps"]) == (m["fid"], m["eval_n"], m["steps"]), r["recipe"]
            assert (r["lr_g"], r["lr_d"]) == (meta["config"]["lr_g"], meta["config"]["lr_d"])
            matched.add(r["recipe"])
    assert {"dcgan-mnist", "dcgan-fashion", "cgan-mnist", "cgan-fashion"} <= matched, matched
    for r in rows:                                     # every row says how to make it again
        assert "python -m gencourse train " + r["recipe"] in r["command"] and r["hardware"]


def test_frozen_discriminator_gives_the_generator_the_same_gradients_and_restores_requires_grad():
    from gencourse.gan.training import frozen

    torch.manual_seed(0)
    G, D = gan.DCGenerator(16, 8, deep=True), gan.DCDiscriminator(8, deep=True)
    some = next(D.parameters())
    some.requires_grad_(False)                       # a parameter that was frozen before stays frozen after
    z = torch.randn(4, 16)

    def g_grads():
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        gan.generator_loss(D(G(z)), "non-saturating").backward()
        return [p.grad.clone() for p in G.parameters()]

    reference = g_grads()                            # D's weight gradients computed too
    assert any(p.grad is not None for p in D.parameters())
    with frozen(D):
        assert not any(p.requires_grad for p in D.parameters())
        inside = g_grads()
        assert all(p.grad is None for p in D.parameters())
    assert all(torch.equal(a, b) for a, b in zip(reference, inside))
    assert [p.requires_grad for p in D.parameters()] == [p is not some for p in D.parameters()]
    with pytest.raises(RuntimeError, match="inside"):
        with frozen(D):
            raise RuntimeError("inside")
    assert [p.requires_grad for p in D.parameters()] == [p is not some for p in D.parameters()]


# ---------------------------------------------------------------------------
# the hinge loss, the R1 penalty and spectral normalisation (issue 17 trials)
# ---------------------------------------------------------------------------
def test_hinge_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.5, -1.0], dtype=D64), torch.tensor([-3.0, 0.0, 1.5], dtype=D64)
    # real: max(0, 1 - l) = 0, 0.5, 2 -> mean 2.5/3; fake: max(0, 1 + l) = 0, 1, 2.5 -> mean 3.5/3
    assert torch.isclose(L.hinge_discriminator_loss(real, fake), torch.tensor(6.0 / 3, dtype=D64))
    assert torch.isclose(L.hinge_generator_loss(fake), torch.tensor(-(-3.0 + 0.0 + 1.5) / 3, dtype=D64))


def test_r1_penalty_of_a_linear_and_a_quadratic_discriminator():
    # l(x) = <w, x>: grad = w for every sample, so E ||grad||^2 = ||w||^2
    w = torch.tensor([1.0, -2.0, 0.5], dtype=D64, requires_grad=True)
    x = torch.randn(7, 3, dtype=D64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    r1 = L.r1_penalty(x @ w, x)
    assert torch.isclose(r1, w.detach().square().sum())
    (gw,) = torch.autograd.grad(r1, w)                           # differentiable in D's parameters: d/dw ||w||^2
    assert torch.allclose(gw, 2 * w.detach())
    # l(x) = 0.5 ||x||^2: grad = x, so the penalty is the mean squared norm of the samples
    assert torch.isclose(L.r1_penalty(0.5 * x.square().sum(1), x), x.detach().square().sum(1).mean())
    with pytest.raises(ValueError, match="requires_grad"):
        L.r1_penalty(x.detach() @ w, x.detach())


def test_spectral_norm_discriminator_has_unit_spectral_norm_layers():
    torch.manual_seed(0)
    D = gan.DCDiscriminator(8, norm="none", spectral=True, deep=True, n_classes=10)
    D.train()
    x, y = torch.randn(4, 1, 28, 28), torch.arange(4)
    for _ in range(100):                                         # power iterations converge over forward passes
        D(x, y)
    D.eval()
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert len(layers) == 5                                      # 3 convolutions, the output layer, the embedding
    for m in layers:
        w = m.weight.detach().flatten(1).double()               # the normalised weight, as the layer uses it
        # power iteration underestimates sigma_max, so the normalised norm approaches 1 from above
        assert 1 - 1e-6 <= torch.linalg.matrix_norm(w, ord=2).item() < 1.01
    # the unnormalised network's largest singular values are far from 1 (N(0, 0.02) initialisation)
    plain = gan.DCDiscriminator(8, norm="none", deep=True)
    assert torch.linalg.matrix_norm(plain.features[0].weight.detach().flatten(1).double(), ord=2).item() < 0.5


@pytest.mark.parametrize("loss,r1", [("hinge", 0.0), ("non-saturating", 1.0), ("hinge", 2.0)])
def test_gan_step_hinge_and_r1_logs_and_updates(loss, r1):
    from gencourse.train import Trainer

    torch.manual_seed(0)
    G, D = gan.MLPGenerator(2, (2,), [8]), gan.MLPDiscriminator((2,), [8])
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 0.01), torch.optim.Adam(D.parameters(), 0.01)
    step = gan.gan_step(G, D, opt_g, opt_d, latent_dim=2, loss=loss, r1_weight=r1)
    tr = Trainer(step, lambda: torch.randn(16, 2), modules={"g": G, "d": D}, optimizers={"g": opt_g, "d": opt_d},
                 log_every=1, progress="off")
    hist = tr.fit(steps=3)
    assert ("r1" in hist.values) == bool(r1) and all(math.isfinite(v) for v in hist["d_loss"])
    if loss == "hinge" and not r1:   # the logged D loss is the hinge loss of the logged mean scores' batch
        assert all(v >= 0 for v in hist["d_loss"])
    with pytest.raises(ValueError, match="cross-entropy losses only"):
        gan.gan_step(G, D, opt_g, opt_d, latent_dim=2, loss="hinge", flip=0.1)
    with pytest.raises(ValueError, match="r1_weight must be >= 0"):
        gan.gan_step(G, D, opt_g, opt_d, latent_dim=2, r1_weight=-1.0)


def _one_d_update(r1_weight=0.0, *, r1_every=1, at_step=0, manual_weight=None):
    """D's parameters after one D update on a fixed real batch: through gan_step (at trainer.step = at_step), or,
    with manual_weight, with the loss written out by hand, BCE + manual_weight * R1 (the same fakes)."""
    from gencourse.train import Trainer

    torch.manual_seed(0)
    G, D = gan.MLPGenerator(2, (2,), [8]), gan.MLPDiscriminator((2,), [8])
    opt_g, opt_d = torch.optim.SGD(G.parameters(), 0.1), torch.optim.SGD(D.parameters(), 0.1)
    real = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    if manual_weight is not None:
        torch.manual_seed(5)
        fake = G(torch.randn(16, 2)).detach()
        x = real.clone().requires_grad_(True)
        lr_, lf = D(x), D(fake)
        loss = L.discriminator_loss(lr_, lf) + manual_weight * L.r1_penalty(lr_, x)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        return [p.detach().clone() for p in D.parameters()]
    step = gan.gan_step(G, D, opt_g, opt_d, latent_dim=2, r1_weight=r1_weight, r1_every=r1_every, d_steps=8)
    tr = Trainer(step, lambda: real, modules={"g": G, "d": D}, optimizers={"g": opt_g, "d": opt_d}, progress="off")
    tr.step = at_step
    torch.manual_seed(5)
    step(real, tr)
    return [p.detach().clone() for p in D.parameters()]


def _same(a, b):
    return all(torch.allclose(u, v, atol=1e-6) for u, v in zip(a, b))


def test_r1_in_gan_step_adds_half_gamma_times_the_penalty_to_the_discriminator_loss():
    """One D update with r1_weight = gamma against the same update with the loss written out by hand."""
    by_hand = _one_d_update(manual_weight=0.5 * 3.0)
    assert _same(by_hand, _one_d_update(3.0))
    assert not _same(by_hand, _one_d_update(0.0))


def test_lazy_r1_applies_k_times_the_weight_on_every_kth_update_and_nothing_between():
    """r1_every = k: on a step with trainer.step % k == 0 the D update equals the one written out by hand with
    k * gamma / 2 * R1; on the other steps it equals the update without any penalty."""
    by_hand = _one_d_update(manual_weight=0.5 * 3.0 * 4)
    assert _same(_one_d_update(3.0, r1_every=4), by_hand) and _same(_one_d_update(3.0, r1_every=4, at_step=8), by_hand)
    assert not _same(_one_d_update(3.0), by_hand)              # the eager penalty has a quarter of the weight
    between = _one_d_update(3.0, r1_every=4, at_step=1)
    assert _same(between, _one_d_update(0.0, at_step=1)) and not _same(between, by_hand)
    G, D = gan.MLPGenerator(2, (2,), [8]), gan.MLPDiscriminator((2,), [8])
    with pytest.raises(ValueError, match="r1_every must be an integer >= 1"):
        gan.gan_step(G, D, None, None, latent_dim=2, r1_weight=1.0, r1_every=0)


def test_a_step_resumed_between_two_generator_updates_trains_d_and_logs_no_stale_g_loss():
    """A WGAN-GP run stopped at step 7 resumes with a fresh step function at trainer.step = 7: its first calls
    (7 % 5 != 0) update the critic only, with no g_loss yet (this used to raise KeyError), then step 10 logs it."""
    from gencourse.train import Trainer

    torch.manual_seed(0)
    G, D = gan.MLPGenerator(2, (2,), [8]), gan.MLPDiscriminator((2,), [8])
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 0.01), torch.optim.Adam(D.parameters(), 0.01)
    step = gan.gan_step(G, D, opt_g, opt_d, latent_dim=2, loss="wgan-gp", d_steps=5)
    tr = Trainer(step, lambda: torch.randn(16, 2), modules={"g": G, "d": D}, optimizers={"g": opt_g, "d": opt_d},
                 progress="off")
    tr.step = 7
    g0, d0 = [p.detach().clone() for p in G.parameters()], [p.detach().clone() for p in D.parameters()]
    out = step(torch.randn(16, 2), tr)
    assert "g_loss" not in out and {"d_loss", "gp"} <= set(out)
    assert all(torch.equal(a, b) for a, b in zip(g0, G.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(d0, D.parameters()))
    tr.step = 10
    assert "g_loss" in step(torch.randn(16, 2), tr)


def test_spectral_hinge_recipe_smoke_and_mlp_rejects_spectral():
    cfg = dict(width=8, latent_dim=8, n_train=256, batch_size=32, steps=4, snapshots=1, eval_samples=50,
               d_spectral=True, d_norm="none", loss="hinge", r1_weight=1.0, r1_every=2)
    trainer, modules, cfg = recipes.build_trainer("dcgan-mnist", cfg, progress="off", log_every=2)
    hist = trainer.fit(steps=4)
    assert all(math.isfinite(v) for v in hist["d_loss"]) and "r1" in hist.values
    with pytest.raises(ValueError, match="arch='dcgan' only"):
        gan.build_gan(dict(gan.GAN_DEFAULTS, arch="mlp", d_spectral=True))
