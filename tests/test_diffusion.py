"""Chapter 6: schedules, the forward process, DDPM/DDIM steps, guidance and the recipe.

References: closed forms, repeated single steps, Monte Carlo moments, the exact
noise predictor of a Gaussian data distribution, and values stored from a run of
huggingface diffusers 0.31.0 (``DDPMScheduler`` / ``DDIMScheduler`` with
``beta_schedule="squaredcos_cap_v2"``, ``timestep_spacing="trailing"``,
``clip_sample=True``; DDIM with ``set_alpha_to_one=True``, ``use_clipped_model_output=True``).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import diffusion as D
from gencourse import recipes


# -- schedules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "quadratic", "cosine"])
def test_schedules_are_monotone_with_the_right_end_points(name):
    betas = D.make_betas(name, 1000)
    abar = D.alphas_cumprod(betas)
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert (betas > 0).all() and (betas < 1).all()
    assert (betas[1:] >= betas[:-1]).all(), "noise per step never decreases"
    assert (abar[1:] < abar[:-1]).all(), "alpha-bar strictly decreases"
    assert abar[0] > 0.9998 and abar[-1] < 1e-3, "starts at (almost) clean data, ends at (almost) pure noise"
    s = D.snr(abar)
    assert (s[1:] < s[:-1]).all()


def test_schedule_end_points_by_name():
    lin, quad = D.linear_beta_schedule(1000), D.quadratic_beta_schedule(1000)
    for b in (lin, quad):
        assert math.isclose(b[0].item(), 1e-4, rel_tol=1e-9) and math.isclose(b[-1].item(), 0.02, rel_tol=1e-9)
    assert (quad[1:-1] < lin[1:-1]).all(), "quadratic adds less noise in between"
    # alpha-bar_T = prod(1 - beta) = exp(sum log(1 - beta)) ~ exp(-sum beta - sum beta^2 / 2) (about exp(-10.1))
    for b in (lin, quad):
        approx = math.exp(-(b.sum() + (b ** 2).sum() / 2).item())
        assert math.isclose(D.alphas_cumprod(b)[-1].item(), approx, rel_tol=0.01)
    cos = D.cosine_beta_schedule(1000)
    u = torch.tensor(0.5, dtype=torch.float64)
    f = lambda v: torch.cos((v + 0.008) / 1.008 * math.pi / 2) ** 2
    assert math.isclose(D.alphas_cumprod(cos)[499].item(), (f(u) / f(torch.tensor(0.0, dtype=torch.float64))).item(), rel_tol=1e-9)
    assert cos[-1].item() == pytest.approx(0.999)  # clipped


def test_schedule_errors():
    with pytest.raises(ValueError, match="unknown schedule"):
        D.make_betas("sigmoid", 10)
    with pytest.raises(ValueError, match="positive int"):
        D.linear_beta_schedule(0)


# -- forward process ---------------------------------------------------------------------------
def test_closed_form_matches_repeated_single_steps(gen):
    """q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) vs t steps of q(x_t | x_{t-1}), empirically."""
    betas = D.linear_beta_schedule(1000)
    x0 = torch.tensor([0.8, -0.3, 0.0], dtype=torch.float64).repeat(40_000, 1)   # (N, 3)
    x = x0.clone()
    t = 300
    for s in range(t + 1):                                                      # steps 0..t
        x = (1 - betas[s]).sqrt() * x + betas[s].sqrt() * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    abar = D.alphas_cumprod(betas)[t]
    assert torch.allclose(x.mean(0), abar.sqrt() * x0[0], atol=0.015)
    assert torch.allclose(x.var(0), (1 - abar).expand(3), rtol=0.03)


def test_add_noise_moments(gen):
    sched = D.DDPMScheduler(1000, "cosine")
    x0 = torch.tensor([[-1.0, 0.5]]).repeat(50_000, 1)
    t = torch.full((50_000,), 400)
    xt = sched.add_noise(x0, torch.randn(x0.shape, generator=gen), t)
    abar = sched.alphas_cumprod[400]
    assert torch.allclose(xt.mean(0), abar.sqrt() * x0[0], atol=0.01)
    assert torch.allclose(xt.var(0), (1 - abar).expand(2), rtol=0.03)
    with pytest.raises(ValueError, match="timesteps must be in"):
        sched.add_noise(x0[:1], x0[:1], torch.tensor([1000]))


def test_constants_are_buffers_that_move_but_are_not_saved():
    sched = D.DDPMScheduler(50, "linear")
    assert {"betas", "alphas", "alphas_cumprod"} <= set(dict(sched.named_buffers()))
    assert sched.to(torch.float64).alphas_cumprod.dtype == torch.float64
    diff = D.GaussianDiffusion(torch.nn.Conv2d(1, 1, 1), timesteps=50)
    assert not any("alphas" in k or "betas" in k for k in diff.state_dict())


# -- reverse steps -----------------------------------------------------------------------------
def test_set_timesteps_trailing():
    s = D.DDPMScheduler(1000)
    assert s.set_timesteps(10).tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert s.previous_timestep(99) == -1 and s.previous_timestep(999) == 899
    assert s.set_timesteps(1000).tolist() == list(range(999, -1, -1))
    with pytest.raises(ValueError):
        s.set_timesteps(0)


def test_ddpm_posterior_mean_matches_eq_11():
    """Without clipping, mu_tilde(x_t, x0_hat(eps)) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)."""
    s = D.DDPMScheduler(1000, "linear", clip_sample=False)
    x, eps = torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randn(4, 1, 3, 3, dtype=torch.float64)
    t = 500
    x0 = s.predict_x0(eps, t, x)
    mean, var = s.posterior(x0, t, x)
    b, a, abar = s.betas[t].double(), s.alphas[t].double(), s.alphas_cumprod[t].double()
    assert torch.allclose(mean, (x - b / (1 - abar).sqrt() * eps) / a.sqrt(), atol=1e-5)
    assert math.isclose(float(var), float((1 - s.alphas_cumprod[t - 1]) / (1 - abar) * b), rel_tol=1e-5)


@pytest.mark.parametrize("schedule,steps", [("cosine", 10), ("cosine", 1000), ("linear", 10), ("quadratic", 50)])
def test_ddpm_posterior_coefficients_match_a_float64_evaluation(schedule, steps):
    """Eq. 7's coefficients against eq. 7 evaluated in float64 from the float64 schedule: within 1e-6
    relative (float32 rounding of the result) at every visited step.  On the cosine schedule with 10 steps
    the first step has alpha_bar_t / alpha_bar_prev = 1.0e-7, where sqrt(1 - beta) in float32 was 8.7% off."""
    s = D.DDPMScheduler(1000, schedule)
    s.set_timesteps(steps)
    abar = D.alphas_cumprod(D.make_betas(schedule, 1000))                   # float64
    for t in s.timesteps.tolist():
        tp = s.previous_timestep(t)
        a_t, a_p = abar[t], (abar[tp] if tp >= 0 else torch.ones((), dtype=torch.float64))
        beta = 1 - a_t / a_p
        want_x0 = a_p.sqrt() * beta / (1 - a_t)
        want_xt = (a_t / a_p).sqrt() * (1 - a_p) / (1 - a_t)
        got_x0, var = s.posterior(torch.ones(1), t, torch.zeros(1))
        got_xt, _ = s.posterior(torch.zeros(1), t, torch.ones(1))
        assert float(got_xt) == pytest.approx(float(want_xt), rel=1e-6, abs=1e-12), (t, "x_t coefficient")
        assert float(got_x0) == pytest.approx(float(want_x0), rel=1e-6), (t, "x0 coefficient")
        assert float(var) == pytest.approx(float((1 - a_p) / (1 - a_t) * beta), rel=1e-6, abs=1e-30)


def test_ddpm_step_with_perfect_noise_predictor_recovers_a_known_x0(gen):
    """Data = one known image: eps*(x_t, t) = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) makes every x0_hat exact."""
    s = D.DDPMScheduler(1000, "cosine")
    x0 = torch.tensor([[[[0.9, -0.4], [0.0, -1.0]]]]).repeat(3, 1, 1, 1)
    x = torch.randn(x0.shape, generator=gen)
    for t in s.timesteps.tolist():
        abar = s.alphas_cumprod[t]
        out = s.step((x - abar.sqrt() * x0) / (1 - abar).sqrt(), t, x, generator=gen)
        if t < 900:  # (at the very first steps abar ~ 0 and the division loses precision)
            assert torch.allclose(out.pred_original_sample, x0, atol=1e-3)
        x = out.prev_sample
    assert torch.allclose(x, x0, atol=1e-4)


@pytest.mark.parametrize("sampler,steps,tol", [("ddpm", 1000, 0.01), ("ddim", 1000, 0.01), ("ddim", 200, 0.01)])
def test_samplers_recover_gaussian_data_statistics(gen, sampler, steps, tol):
    """For x0 ~ N(mu, s^2) the optimal predictor is E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2),
    a = sqrt(abar_t), b = sqrt(1 - abar_t); sampling with it must give mean mu and std s."""
    mu, sd = 0.3, 0.2
    cls = D.DDPMScheduler if sampler == "ddpm" else D.DDIMScheduler
    s = cls(1000, "linear", clip_sample=False)
    s.set_timesteps(steps)
    abar = s.alphas_cumprod.double()
    x = torch.randn(8000, 1, generator=gen, dtype=torch.float64)
    for t in s.timesteps.tolist():
        a, b = abar[t].sqrt(), (1 - abar[t]).sqrt()
        x = s.step(b * (x - a * mu) / (a ** 2 * sd ** 2 + b ** 2), t, x, generator=gen).prev_sample
    assert abs(x.mean().item() - mu) < tol and abs(x.std().item() - sd) < tol


def test_ddim_with_eta_1_is_the_ddpm_step():
    """DDIM eq. 16 with eta = 1 gives sigma^2 = beta-tilde and the DDPM posterior mean."""
    ddpm, ddim = D.DDPMScheduler(1000, "cosine"), D.DDIMScheduler(1000, "cosine", eta=1.0)
    for s in (ddpm, ddim):
        s.set_timesteps(20)
    x, eps, z = (torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(3))
    for t in (949, 499, 49):
        a, b = ddpm.step(eps, t, x, noise=z), ddim.step(eps, t, x, noise=z)
        assert torch.allclose(a.prev_sample, b.prev_sample, atol=1e-5)
        assert torch.allclose(a.pred_original_sample, b.pred_original_sample)


# Values from diffusers 0.31.0 (see the module docstring) on a fixed 8-number tensor.
def _toy_model(x, t):
    return 0.5 * x + 0.1 * torch.sin(torch.tensor(t / 100.0)) - 0.05


_X0 = torch.linspace(-1.2, 1.3, 8).reshape(2, 1, 2, 2)
_DIFFUSERS = {
    "abar": [0.99995869, 0.84701222, 0.49384347, 0.1442721, 0.0],  # t = 0, 249, 499, 749, 999
    "add_noise": [-1.181807, -0.835385, -0.483883, -0.11184, -0.301028, 0.114743, -0.93679, 0.925077],
    "ddpm10": [-0.180817, 0.177969, -0.690705, -0.235561, -0.83184, 0.409004, 0.441169, -0.153769],
    "ddim10": [-1.0, -1.0, -0.890455, 0.095565, 0.72722, 0.998237, 1.0, 1.0],
}


def test_scheduler_against_stored_diffusers_values():
    s = D.DDPMScheduler(1000, "cosine")
    abar = s.alphas_cumprod[[0, 249, 499, 749, 999]]
    assert torch.allclose(abar, torch.tensor(_DIFFUSERS["abar"]), atol=2e-6)
    noise = torch.randn(_X0.shape, generator=torch.Generator().manual_seed(1))
    got = s.add_noise(_X0, noise, torch.tensor([10, 700])).flatten()
    assert torch.allclose(got, torch.tensor(_DIFFUSERS["add_noise"]), atol=1e-5)
    for cls, key in [(D.DDPMScheduler, "ddpm10"), (D.DDIMScheduler, "ddim10")]:
        sched, x, g = cls(1000, "cosine"), _X0.clone(), torch.Generator().manual_seed(5)
        sched.set_timesteps(10)
        for t in sched.timesteps.tolist():
            x = sched.step(_toy_model(x, t), t, x, generator=g).prev_sample
        assert torch.allclose(x.flatten(), torch.tensor(_DIFFUSERS[key]), atol=1e-4), key


# -- loss, guidance and the process ------------------------------------------------------------
def test_epsilon_loss_is_mse_mean_over_pixels_and_batch():
    a, b = torch.randn(3, 1, 5, 5), torch.randn(3, 1, 5, 5)
    assert torch.allclose(D.epsilon_loss(a, b), F.mse_loss(a, b))
    with pytest.raises(ValueError, match="shape"):
        D.epsilon_loss(a, b[:2])


class _LabelModel(torch.nn.Module):
    """A fake noise predictor: eps = x + label (the null label 10 predicts x - 1)."""
    null_label = 10

    def forward(self, x, t, y=None):
        y = torch.full((x.shape[0],), 10) if y is None else y
        shift = torch.where(y == 10, torch.full_like(y, -1), y).float()
        return x + shift[:, None, None, None]


def test_classifier_free_guidance_formula():
    diff = D.GaussianDiffusion(_LabelModel(), timesteps=10)
    x, y = torch.zeros(2, 1, 2, 2), torch.tensor([3, 5])
    cond, uncond = torch.tensor([3.0, 5.0])[:, None, None, None], -1.0
    for s in (0.0, 1.0, 2.5):
        got = diff.predict_noise(x, 4, y, guidance_scale=s)
        assert torch.allclose(got, (uncond + s * (cond - uncond)).expand_as(got)), s


def test_forward_is_algorithm_1():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    diff = D.GaussianDiffusion(lambda_wrapper(net), timesteps=100)
    x0 = torch.rand(4, 1, 6, 6)
    loss = diff(x0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 100, (4,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    abar = D.alphas_cumprod(D.cosine_beta_schedule(100)).float()[t][:, None, None, None]
    xt = abar.sqrt() * (2 * x0 - 1) + (1 - abar).sqrt() * eps
    assert torch.allclose(loss, ((net(xt) - eps) ** 2).mean(), atol=1e-6)


def lambda_wrapper(net):
    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, t, y=None):
            return self.net(x)
    return Wrap()


def test_ddim_eta_0_is_deterministic_given_the_seed():
    torch.manual_seed(0)
    diff = D.GaussianDiffusion(lambda_wrapper(torch.nn.Conv2d(1, 1, 3, padding=1)), timesteps=100,
                               image_shape=(1, 8, 8))
    a = diff.sample(3, steps=10, generator=torch.Generator().manual_seed(7))
    b = diff.sample(3, steps=10, generator=torch.Generator().manual_seed(7))
    c = diff.sample(3, steps=10, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
    # eta = 0: given x_T, the generator no longer matters; DDPM keeps drawing noise
    x_T = torch.randn(3, 1, 8, 8)
    d = diff.sample(3, steps=10, x_T=x_T, generator=torch.Generator().manual_seed(1))
    e = diff.sample(3, steps=10, x_T=x_T, generator=torch.Generator().manual_seed(2))
    f = diff.sample(3, steps=10, x_T=x_T, sampler="ddpm", generator=torch.Generator().manual_seed(2))
    assert torch.equal(d, e) and not torch.equal(d, f)
    # chunking does not change the result; frames are returned on request
    g, frames = diff.sample(3, steps=10, x_T=x_T, batch_size=2, frames=4)
    assert torch.allclose(g, d, atol=1e-6)
    assert [t for t, _, _ in frames] == [99, 69, 39, 9] and frames[0][1].shape == (3, 1, 8, 8)


# -- the recipe --------------------------------------------------------------------------------
def test_recipe_smoke_training_sampling_and_checkpoint(tmp_path):
    cfg = dict(channels=8, channel_mults=[1, 2], n_train=200, batch_size=20, timesteps=50, warmup=2)
    trainer, modules, cfg = recipes.build_trainer("ddpm-mnist", cfg, log_every=2, progress=False)
    before = [p.clone() for p in modules["ema"].parameters()]
    hist = trainer.fit(steps=4)
    assert len(hist["loss"]) == 2 and all(math.isfinite(v) for v in hist["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, modules["ema"].parameters())), "EMA updated"
    recipe = recipes.get("ddpm-mnist")
    x, y = recipe.sample(modules, dict(cfg, sample_steps=3), 12, "cpu", torch.Generator().manual_seed(0))
    assert x.shape == (12, 1, 28, 28) and x.min() >= 0 and x.max() <= 1 and y.tolist() == [i % 10 for i in range(12)]
    path = recipes.save_pretrained("ddpm-mnist", modules, cfg, metrics={"note": "test"}, path=tmp_path / "d.pt")
    loaded, ck = recipes.load_pretrained("ddpm-mnist", path=path)
    assert ck.metrics["note"] == "test" and not loaded["ema"].training
    assert torch.allclose(loaded["ema"].scheduler.alphas_cumprod, modules["ema"].scheduler.alphas_cumprod)


# -- widgets (built without a display) ---------------------------------------------------------
def test_widgets_build_and_sweep():
    from gencourse import widgets

    x0 = torch.rand(2, 1, 28, 28)
    abars = {k: D.alphas_cumprod(D.make_betas(k, 1000)) for k in ("linear", "cosine")}
    ex = widgets.schedule_explorer(x0, abars, t=0, generator=torch.Generator().manual_seed(0))
    assert ex.images.shape == (4, 1, 28, 28) and "SNR" in ex.text.value
    clean, noisy = ex.sweep("t", [0, 999])
    assert (clean - x0.repeat(2, 1, 1, 1)).abs().max() < 0.05, "at t = 0 the images are (almost) clean"
    assert (noisy - x0.repeat(2, 1, 1, 1)).abs().mean() > 0.2
    net = D.build_model(dict(D.DDPM_DEFAULTS, channels=8, channel_mults=[1, 2])).eval()
    gs = widgets.guidance_slider(net, torch.arange(3), scales=(0.0, 2.0), steps=2, nrow=3,
                                 generator=torch.Generator().manual_seed(0))
    frames = gs.sweep("scale")
    assert len(frames) == 2 and frames[0].shape == (3, 1, 28, 28)
    _, snaps = net.sample(3, labels=torch.arange(3), steps=3, frames=2)
    assert "<script" in widgets.denoising_animation(snaps).data


# -- exercise checks reject the usual mistakes -------------------------------------------------
def test_checks_accept_answers_and_name_mistakes():
    from gencourse.checks import CheckFailed
    from gencourse.checks import diffusion as check

    def q(x0, t, n, ab):
        a = ab[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * n

    def pm(x0, xt, t, betas):
        al = 1 - betas
        ab = torch.cumprod(al, 0)
        ap = ab[t - 1] if t > 0 else torch.tensor(1.0, dtype=betas.dtype)
        return ap.sqrt() * betas[t] / (1 - ab[t]) * x0 + al[t].sqrt() * (1 - ap) / (1 - ab[t]) * xt

    def ddim(xt, eps, at, ap):
        return ap.sqrt() * (xt - (1 - at).sqrt() * eps) / at.sqrt() + (1 - ap).sqrt() * eps

    assert check.alpha_bar(lambda b: torch.cumprod(1 - b, 0))
    assert check.q_sample(q) and check.posterior_mean(pm) and check.ddim_step(ddim)
    assert check.guided_noise(lambda c, u, s: u + s * (c - u))
    mistakes = [
        (check.alpha_bar, lambda b: torch.cumprod(b, 0), "cumulative product of the betas"),
        (check.q_sample, lambda x0, t, n, ab: ab[t][:, None] * x0 + (1 - ab[t][:, None]) * n, "square roots"),
        (check.q_sample, lambda x0, t, n, ab: ab[t][:, None].sqrt() * x0 + (1 - ab[t][:, None]) * n, "variance"),
        (check.posterior_mean, lambda x0, xt, t, b: pm(xt, x0, t, b), "swapped"),
        (check.ddim_step, lambda xt, eps, at, ap: ap.sqrt() * xt + (1 - ap).sqrt() * eps, "predict x0"),
        (check.guided_noise, lambda c, u, s: (1 + s) * c - s * u, "other convention"),
    ]
    for chk, fn, words in mistakes:
        with pytest.raises(CheckFailed, match=words):
            chk(fn)


def test_large_n_table_is_added_to_the_metrics_without_touching_the_weights(tmp_path):
    from gencourse import checkpoint, diffusion_report, recipes

    rows = [{"sampler": "ddim", "steps": 50, "fid": 1.0}, {"sampler": "ddpm", "steps": 1000, "fid": 0.5}]
    dest = diffusion_report.add_large_n(64, rows, ship=False, out=tmp_path / "ddpm.pt")
    new, old = checkpoint.load(dest), checkpoint.load(recipes.weights_path("ddpm-mnist"))
    assert new.metrics["sampler_table_n64"] == rows
    assert {k: v for k, v in new.metrics.items() if k != "sampler_table_n64"} == old.metrics
    assert checkpoint.tensors_sha256(new.state) == checkpoint.tensors_sha256(old.state)
    assert new.meta["command"].endswith("--large-n 64")


def test_compare_samplers_takes_ddim_eta_and_eta_1_scores_like_ddpm():
    """Rows may give DDIM's eta; with eta = 1 DDIM takes the DDPM step with the same noise draws,
    so the two rows see the same images and get the same FID (eta 0 gives other images)."""
    torch.manual_seed(0)
    net = D.build_model(dict(D.DDPM_DEFAULTS, channels=8, channel_mults=[1, 2])).eval()
    rows = D.compare_samplers(net, settings=(("ddpm", 4), ("ddim", 4, 1.0), ("ddim", 4)), n=40, batch_size=20)
    assert [r.get("eta") for r in rows] == [None, 1.0, 0.0]
    assert rows[0]["fid"] == pytest.approx(rows[1]["fid"], rel=1e-4)
    assert rows[2]["fid"] != pytest.approx(rows[0]["fid"], rel=1e-3)
