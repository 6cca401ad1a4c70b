import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from gencourse import recipes, vae


def _tiny(latent=3, likelihood="bernoulli", **kw):
    torch.manual_seed(0)
    return vae.VAE(latent, (16,), likelihood=likelihood, **kw)


@pytest.mark.parametrize("arch,likelihood", [("mlp", "bernoulli"), ("mlp", "gaussian"), ("conv", "bernoulli")])
def test_shapes(arch, likelihood):
    torch.manual_seed(0)
    model = vae.VAE(4, (16,), arch=arch, likelihood=likelihood, channels=(4, 8))
    x = torch.rand(5, 1, 28, 28)
    mu, log_var = model.encode(x)
    assert mu.shape == log_var.shape == (5, 4)
    assert model.decode(torch.randn(3, 5, 4)).shape == (3, 5, 1, 28, 28)
    assert model.log_px_z(x, model.decode(mu)).shape == (5,)
    assert model.sample(6).shape == (6, 1, 28, 28)
    assert model.sample(2, mean=False, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)
    t = vae.elbo(model, x, beta=1.0, reduction="none")
    assert all(v.shape == (5,) for v in t)
    assert vae.iwae_bound(model, x, 7, chunk=3).shape == (5,)


def test_kl_closed_form_against_torch_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, generator=g, dtype=torch.float64)
    log_var = torch.randn(4, 3, generator=g, dtype=torch.float64)
    ref = kl_divergence(Normal(mu, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1)
    kl = vae.kl_diag_gaussian(mu, log_var)
    assert torch.allclose(kl, ref)
    assert (kl >= 0).all() and vae.kl_diag_gaussian(torch.zeros(3), torch.zeros(3)) == 0
    est, se = vae.kl_monte_carlo(mu, log_var, 20_000, generator=g)
    assert ((est - ref).abs() < 5 * se).all()


def test_log_normal_diag_against_torch():
    g = torch.Generator().manual_seed(1)
    z, mu, log_var = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    ref = Normal(mu, (0.5 * log_var).exp()).log_prob(z).sum(-1)
    assert torch.allclose(vae.log_normal_diag(z, mu, log_var), ref)


def test_reparameterize_moments_and_gradients():
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    log_var = torch.tensor([0.0, math.log(0.25)], dtype=torch.float64, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    z = vae.reparameterize(mu.expand(50_000, 2), log_var.expand(50_000, 2), generator=g)
    assert torch.allclose(z.mean(0), mu.detach(), atol=0.02)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 0.5], dtype=torch.float64), atol=0.01)  # sigma, not sigma^2
    # gradients: dz/dmu = 1 and dz/dlog_var = sigma * eps / 2, with eps recovered from the same generator
    g = torch.Generator().manual_seed(5)
    z = vae.reparameterize(mu, log_var, generator=g)
    eps = torch.randn(2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    gm, gv = torch.autograd.grad(z.sum(), [mu, log_var])
    sigma = (0.5 * log_var).exp().detach()
    assert torch.allclose(z.detach(), mu.detach() + sigma * eps)
    assert torch.allclose(gm, torch.ones(2, dtype=torch.float64))
    assert torch.allclose(gv, sigma * eps / 2)


def test_elbo_terms_against_torch_distributions():
    model = _tiny().double()
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    t = vae.elbo(model, x, beta=2.5, generator=torch.Generator().manual_seed(7), reduction="none")
    mu, log_var = model.encode(x)
    eps = torch.randn(1, *mu.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)[0]
    z = mu + (0.5 * log_var).exp() * eps
    rec = -Bernoulli(logits=model.decode(z)).log_prob(x).sum((1, 2, 3))
    kl = kl_divergence(Normal(mu, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(t.reconstruction, rec) and torch.allclose(t.kl, kl)
    assert torch.allclose(t.elbo, -rec - kl) and torch.allclose(t.loss, rec + 2.5 * kl)
    mean = vae.elbo(model, x, beta=2.5, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(mean.elbo, t.elbo.mean()) and mean.loss.dim() == 0
    with pytest.raises(TypeError):
        vae.elbo(model, x)  # beta must be explicit


def test_gaussian_decoder_log_likelihood_against_torch():
    model = _tiny(likelihood="gaussian", x_sigma=0.2).double()
    x, z = torch.rand(3, 1, 28, 28, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    out = model.decode(z)
    ref = Normal(torch.sigmoid(out), 0.2).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(model.log_px_z(x, out), ref)
    assert not model.log_x_sigma.requires_grad and _tiny(likelihood="gaussian").log_x_sigma.requires_grad


def test_iwae_is_above_the_elbo_and_below_the_exact_log_likelihood():
    # a 1-D latent, so log p(x) = log int p(x|z) N(z; 0, 1) dz is exact by quadrature on a fine grid
    model = _tiny(latent=1).double()
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.5, dtype=torch.float64), generator=g)
    zs = torch.linspace(-8, 8, 4001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        log_joint = model.log_px_z(x, model.decode(zs)[:, None]) + Normal(0.0, 1.0).log_prob(zs)  # (Z, 3)
        exact = torch.logsumexp(log_joint, 0) + math.log(float(zs[1] - zs[0]))
        elbo = torch.stack([vae.elbo(model, x, beta=1.0, generator=g, reduction="none").elbo for _ in range(200)])
        iwae = {k: torch.stack([vae.iwae_bound(model, x, k, generator=g) for _ in range(n)])
                for k, n in ((1, 200), (10, 40), (1000, 40))}
    mean = {k: v.mean(0) for k, v in iwae.items()}
    se = {k: v.std(0) / math.sqrt(len(v)) for k, v in iwae.items()}
    assert ((mean[1] - elbo.mean(0)).abs() < 4 * (se[1] + elbo.std(0) / math.sqrt(200))).all()  # L_1 is the ELBO
    assert (mean[10] > elbo.mean(0) + 1).all() and (mean[1000] > mean[10] - 3 * se[10]).all()
    assert (mean[1000] <= exact + 0.03).all() and (exact - mean[1000] < 0.05).all()


def test_gradient_estimators_are_unbiased_and_reparameterisation_has_lower_variance():
    c = torch.tensor([1.0, -0.5], dtype=torch.float64)
    mu = torch.tensor([0.3, 0.2], dtype=torch.float64)
    log_var = torch.tensor([0.1, -0.7], dtype=torch.float64)
    f = lambda z: (z - c).pow(2).sum(-1)  # E f = |mu - c|^2 + sum sigma^2  # noqa: E731
    truth = torch.cat([2 * (mu - c), log_var.exp()])  # d/dmu, d/dlog_var (d sigma^2 / d log_var = sigma^2)
    est = vae.gradient_estimates(f, mu, log_var, 200_000, generator=torch.Generator().manual_seed(0), baseline=True)
    for name, g in est.items():
        assert g.shape == (200_000, 4)
        se = g.std(0) / math.sqrt(len(g))
        assert ((g.mean(0) - truth).abs() < 5 * se + 1e-9).all(), name
    v = {k: g.var(0).sum() for k, g in est.items()}
    assert v["reparameterized"] < v["score_function_baseline"] < v["score_function"]


def test_binarize_and_active_units():
    g = torch.Generator().manual_seed(0)
    x = torch.full((2000, 4), 0.25)
    b = vae.binarize(x, generator=g)
    assert set(b.unique().tolist()) <= {0.0, 1.0} and abs(float(b.mean()) - 0.25) < 0.02
    act, order = vae.active_units(_tiny(latent=5), torch.rand(20, 1, 28, 28))
    assert act.shape == order.shape == (5,) and act[order[0]] == act.max()


@pytest.mark.parametrize("name", ["vae-mnist", "vae-fashion-2d"])
def test_recipes_smoke_train_evaluate_sample(name):
    cfg = dict(hidden=[32], n_train=256, batch_size=32, eval_n=20, eval_k=5, kl_warmup=5)
    trainer, modules, cfg = recipes.build_trainer(name, cfg, progress="off", log_every=5)
    hist = trainer.fit(steps=10)
    assert hist["loss"][-1] < hist["loss"][0]
    x = recipes.get(name).sample(modules, cfg, 6, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    m = recipes.get(name).evaluate(modules, cfg, torch.device("cpu"))
    assert m["test_iwae_nll_nats_k5"] <= -m["test_elbo_nats"] + 1.0 and "k=5" in m["protocol"]


def test_exercise_checks_accept_the_answer_and_name_the_usual_mistakes():
    from gencourse.checks import CheckFailed
    from gencourse.checks import vae as check

    assert check.kl_diag_gaussian(vae.kl_diag_gaussian)
    with pytest.raises(CheckFailed, match="sign is wrong"):
        check.kl_diag_gaussian(lambda mu, lv: -vae.kl_diag_gaussian(mu, lv))
    with pytest.raises(CheckFailed, match="sigma/sigma\\^2 confusion"):
        check.kl_diag_gaussian(lambda mu, lv: vae.kl_diag_gaussian(mu, 2 * lv))
    assert check.reparameterize(lambda mu, lv, eps: mu + torch.exp(0.5 * lv) * eps)
    with pytest.raises(CheckFailed, match="variance"):
        check.reparameterize(lambda mu, lv, eps: mu + torch.exp(lv) * eps)
    assert check.iwae_from_log_weights(lambda lw: torch.logsumexp(lw, 0) - math.log(len(lw)))
    with pytest.raises(CheckFailed, match="underflows"):
        check.iwae_from_log_weights(lambda lw: lw.exp().mean(0).log())
    with pytest.raises(CheckFailed, match="ELBO"):
        check.iwae_from_log_weights(lambda lw: lw.mean(0))

    def loss(logits, x, mu, lv, beta, pixels="sum"):
        rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1)
        rec = rec.sum(1) if pixels == "sum" else rec.mean(1)
        return (rec + beta * vae.kl_diag_gaussian(mu, lv)).mean()

    assert check.beta_vae_loss(loss)
    with pytest.raises(CheckFailed, match="784 times"):
        check.beta_vae_loss(lambda *a: loss(*a, pixels="mean"))


def test_grid_log_likelihood_matches_iwae_in_two_dimensions():
    model = _tiny(latent=2).double()
    x = torch.bernoulli(torch.full((2, 1, 28, 28), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(3))
    exact, grid, log_joint = vae.grid_log_likelihood(model, x, lim=5.0, n_grid=121)
    assert grid.shape == (121 * 121, 2) and log_joint.shape == (121 * 121, 2)
    iwae = torch.stack([vae.iwae_bound(model, x, 1000, generator=torch.Generator().manual_seed(i)) for i in range(2)]).mean(0)
    assert ((exact - iwae).abs() < 0.05).all(), (exact, iwae)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        vae.grid_log_likelihood(_tiny(latent=3), x.float())


def test_grid_log_likelihood_on_a_local_grid_agrees_with_the_global_one():
    model = _tiny(latent=2).double()
    x = torch.bernoulli(torch.full((1, 1, 28, 28), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(4))
    wide, _, _ = vae.grid_log_likelihood(model, x, lim=5.0, n_grid=121)
    with torch.no_grad():
        mu, _ = model.encode(x)
    local, grid, _ = vae.grid_log_likelihood(model, x, lim=2.5, n_grid=121, center=mu[0])
    assert torch.allclose(grid.mean(0), mu[0].float(), atol=1e-5) and torch.allclose(local, wide, atol=0.02)
