"""Flow matching (Chapter 8) against independent references: closed-form ODE solutions,
closed-form velocity fields of Gaussian paths, brute-force optimal transport and Chapter 6's
forward process."""
import itertools
import math

import pytest
import torch

from gencourse import diffusion, flow, recipes


def test_interpolate_ends_and_target():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.equal(flow.interpolate(x0, x1, torch.zeros(5)), x0)
    assert torch.equal(flow.interpolate(x0, x1, torch.ones(5)), x1)
    t = torch.rand(5, generator=g)
    xt = flow.interpolate(x0.double(), x1.double(), t.double())         # float64: the difference quotient is exact
    # finite difference of the path in t equals the target velocity (the path is linear)
    h = 1e-3
    fd = (flow.interpolate(x0.double(), x1.double(), t.double() + h) - xt.double()) / h
    assert torch.allclose(fd, flow.target_velocity(x0, x1).double(), atol=1e-4)
    with pytest.raises(ValueError, match="same shape"):
        flow.interpolate(x0, x1[:, :2], t)
    with pytest.raises(ValueError, match="shape"):
        flow.interpolate(x0, x1, torch.rand(4))


def test_cfm_loss_is_a_mean_over_coordinates_and_samples():
    x0, x1, v = torch.randn(4, 1, 2, 3), torch.randn(4, 1, 2, 3), torch.randn(4, 1, 2, 3)
    by_hand = sum(((v[i] - (x1[i] - x0[i])) ** 2).sum() for i in range(4)) / (4 * 6)
    assert flow.cfm_loss(v, x0, x1).item() == pytest.approx(by_hand.item(), rel=1e-6)


@pytest.mark.parametrize("method, amplification", [("euler", lambda z: 1 + z), ("heun", lambda z: 1 + z + z * z / 2),
                                                   ("midpoint", lambda z: 1 + z + z * z / 2)])
def test_integrators_on_a_linear_ode_match_their_closed_forms(method, amplification):
    # dx/dt = a x: one step multiplies x by R(a h) exactly (the method's stability function)
    a, steps, x = -1.3, 7, torch.tensor([[2.0], [-0.5]], dtype=torch.float64)
    out = flow.integrate(lambda z, t: a * z, x, steps, method)
    assert torch.allclose(out, x * amplification(a / steps) ** steps, rtol=1e-12)


def test_convergence_orders_against_the_exact_solution():
    # dx/dt = cos(t) x has x(1) = x(0) exp(sin 1): errors shrink like h (Euler) and h^2 (Heun, midpoint)
    x = torch.ones(1, 1, dtype=torch.float64)
    exact = math.exp(math.sin(1.0))
    field = lambda z, t: torch.cos(t).reshape(-1, 1) * z  # noqa: E731
    for method, order in (("euler", 1), ("heun", 2), ("midpoint", 2)):
        e1, e2 = (abs(flow.integrate(field, x, n, method).item() - exact) for n in (20, 40))
        assert math.log2(e1 / e2) == pytest.approx(order, abs=0.15), method


def test_nfe_counts_network_calls():
    calls = []
    x = torch.zeros(3, 2)
    for method, steps in (("euler", 5), ("heun", 4), ("midpoint", 3)):
        calls.clear()
        flow.integrate(lambda z, t: calls.append(1) or z, x, steps, method)
        assert len(calls) == flow.nfe(method, steps)
    with pytest.raises(ValueError, match="method"):
        flow.nfe("rk4", 2)
    with pytest.raises(ValueError, match="positive integer"):
        flow.integrate(lambda z, t: z, x, 0)


def _gaussian_velocity(m, s):
    """The marginal velocity E[x1 - x0 | x_t = x] for x0 ~ N(0, I), x1 ~ N(m, s^2 I), independent:
    x_t ~ N(t m, sigma_t^2 I) with sigma_t^2 = (1 - t)^2 + t^2 s^2 and
    u(x, t) = m + (t s^2 - (1 - t)) / sigma_t^2 (x - t m)."""
    def u(x, t):
        t = t.reshape(-1, 1).to(x.dtype)
        var = (1 - t) ** 2 + t ** 2 * s ** 2
        return m + (t * s ** 2 - (1 - t)) / var * (x - t * m)
    return u


def test_closed_form_gaussian_field_transports_noise_to_the_target():
    m, s = torch.tensor([1.5, -2.0], dtype=torch.float64), 0.5
    x0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x1 = flow.integrate(_gaussian_velocity(m, s), x0, 200, "heun")
    se = s / math.sqrt(len(x1))
    assert torch.allclose(x1.mean(0), m, atol=5 * se)
    assert x1.std(0).sub(s).abs().max() < 0.02
    # the flow is x_t = t m + sigma_t x0: each sample lands at m + s x0 ...
    assert torch.allclose(x1, m + s * x0, atol=1e-4)
    # ... along a curve (sigma_t is not affine in t), whose straightness the solver's path reproduces
    path = flow.integrate(_gaussian_velocity(m, s), x0[:100], 100, "heun", trajectory=True)
    ts = torch.linspace(0, 1, 101, dtype=torch.float64)
    exact = [t * m + ((1 - t) ** 2 + t ** 2 * s ** 2).sqrt() * x0[:100] for t in ts]
    assert torch.allclose(flow.straightness(path), flow.straightness(exact), atol=1e-5)
    assert flow.straightness(exact).max() > 0.01


def test_learned_toy_field_approaches_the_closed_form():
    m, s = torch.tensor([1.0, 0.5]), 0.5
    torch.manual_seed(0)
    model, hist = flow.train_toy_flow(lambda n: m + s * torch.randn(n, 2), steps=600, batch_size=512, lr=3e-3)
    u = _gaussian_velocity(m.double(), s)
    g = torch.Generator().manual_seed(3)
    errs = []
    for t in (0.2, 0.5, 0.8):
        tt = torch.full((400,), t)
        x = flow.interpolate(torch.randn(400, 2, generator=g), m + s * torch.randn(400, 2, generator=g), tt)
        with torch.no_grad():
            errs.append((model(x, tt).double() - u(x.double(), tt)).norm(dim=1).mean().item())
    scale = u(torch.zeros(1, 2, dtype=torch.float64), torch.tensor([0.5])).norm().item()
    assert max(errs) < 0.15 * max(scale, 1.0), errs
    assert hist.values["loss"][-1] < hist.values["loss"][0]


def test_ot_pairing_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x0, x1 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
        cost = lambda p: sum(float(((x0[p[i]] - x1[i]) ** 2).sum()) for i in range(6))  # noqa: E731
        best = min(itertools.permutations(range(6)), key=cost)
        perm = flow.ot_pairing(x0, x1)
        assert cost(perm.tolist()) == pytest.approx(cost(best), rel=1e-9)
        assert sorted(perm.tolist()) == list(range(6))
    assert torch.equal(flow.pair(x0, x1, "independent"), x0)
    with pytest.raises(ValueError, match="coupling"):
        flow.pair(x0, x1, "sinkhorn")


def test_straightness_of_a_quarter_circle():
    theta = torch.linspace(0, math.pi / 2, 2001, dtype=torch.float64)
    path = [torch.stack([torch.cos(a), torch.sin(a)]).reshape(1, 2) for a in theta]
    expected = 1 - math.sqrt(2) / (math.pi / 2)
    assert flow.straightness(path).item() == pytest.approx(expected, abs=1e-6)


def test_conversions_agree_with_chapter_6_forward_process():
    g = torch.Generator().manual_seed(0)
    x1, eps = torch.randn(8, 1, 4, 4, generator=g), torch.randn(8, 1, 4, 4, generator=g)
    t = torch.rand(8, generator=g) * 0.98 + 0.01
    xt = flow.interpolate(eps, x1, t)
    v = flow.target_velocity(eps, x1)
    assert torch.allclose(flow.velocity_to_eps(xt, v, t), eps, atol=1e-5)
    assert torch.allclose(flow.velocity_to_x1(xt, v, t), x1, atol=1e-5)
    assert torch.allclose(flow.eps_to_velocity(xt, eps, t), v, atol=1e-4)
    # the same noisy image in Chapter 6's terms: x_t / scale = sqrt(abar) x1 + sqrt(1 - abar) eps (eq. 4)
    abar, scale = flow.fm_to_ddpm(t)
    ddpm_xt = diffusion.q_sample(x1.double(), torch.arange(8), eps.double(), abar)
    assert torch.allclose(xt.double() / scale.reshape(-1, 1, 1, 1), ddpm_xt, atol=1e-6)
    # same signal-to-noise ratio as Chapter 6's snr(alpha_bar)
    assert torch.allclose(diffusion.snr(abar), (t.double() / (1 - t.double())) ** 2, rtol=1e-9)
    with pytest.raises(ValueError, match="t > 0"):
        flow.eps_to_velocity(xt, eps, torch.zeros(8))


def _tiny_fm(**kw):
    cfg = dict(flow.FM_DEFAULTS, channels=8, channel_mults=[1, 2], attention=False, **kw)
    torch.manual_seed(0)
    return flow.build_model(cfg)


def test_process_loss_sampling_and_guidance():
    fm = _tiny_fm()
    x = torch.rand(6, 1, 28, 28)
    y = torch.arange(6) % 10
    loss = fm(x, y, generator=torch.Generator().manual_seed(0))
    # at initialisation the U-Net predicts 0, so the loss is E||x1 - x0||^2 per coordinate
    x1 = x * 2 - 1
    assert loss.item() == pytest.approx(float((x1 ** 2).mean() + 1), rel=0.1)
    fm.eval()
    a = fm.sample(4, labels=torch.arange(4), steps=2, generator=torch.Generator().manual_seed(5))
    b = fm.sample(4, labels=torch.arange(4), steps=2, generator=torch.Generator().manual_seed(5))
    assert a.shape == (4, 1, 28, 28) and torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    c = fm.sample(4, labels=torch.arange(4), steps=2, generator=torch.Generator().manual_seed(5), batch_size=3)
    assert torch.allclose(a, c, atol=1e-6)
    imgs, frames = fm.sample(2, labels=torch.arange(2), steps=4, frames=3, generator=torch.Generator().manual_seed(1))
    assert [f[0] for f in frames] == [0.0, 0.5, 1.0] and torch.allclose(frames[-1][1], imgs)
    # guidance: v = v_u + s (v_c - v_u), from one batched call
    z, tt = torch.randn(3, 1, 28, 28), torch.full((3,), 0.3)
    lab = torch.tensor([1, 2, 3])
    with torch.no_grad():
        for p in fm.model.conv_out.parameters():  # make the output depend on the label
            p.normal_()
        v_c, v_u = fm.velocity(z, tt, lab, 1.0), fm.velocity(z, tt, lab, 0.0)
        assert torch.allclose(fm.velocity(z, tt, lab, 3.0), v_u + 3.0 * (v_c - v_u), atol=1e-5)
    with pytest.raises(ValueError, match="one label per image"):
        fm.sample(3, labels=torch.arange(2))


def test_recipe_smoke_and_rows():
    tr, mods, cfg = recipes.build_trainer("fm-mnist-indep-2k", {"n_train": 256, "channels": 8,
                                                                "channel_mults": [1, 2], "attention": False},
                                          progress="off", log_every=1)
    hist = tr.fit(steps=2)
    assert len(hist.values["loss"]) == 2 and all(math.isfinite(v) for v in hist.values["loss"])
    assert cfg["coupling"] == "independent" and recipes.get("fm-mnist").defaults["coupling"] == "class-ot"
    # fm-mnist has no more budget than ddpm-mnist had: the same network and batch, at most its steps
    ddpm = recipes.shipped_meta("ddpm-mnist")["config"]
    fm = recipes.get("fm-mnist").defaults
    assert (fm["batch_size"], fm["channels"], fm["channel_mults"]) == \
        (ddpm["batch_size"], ddpm["channels"], ddpm["channel_mults"])
    assert fm["steps"] <= ddpm["steps"]


def test_time_power_draws_times_with_density_k_t_to_the_k_minus_1():
    # with the U-Net replaced by a recorder, the times the loss sees are U^(1/k): mean k / (k + 1)
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x, t, y=None):
            seen.append(t / 1000.0)
            return torch.zeros_like(x)

    for k in (1.0, 3.0):
        seen.clear()
        fm = flow.FlowMatching(Recorder(), coupling="independent", time_power=k)
        fm(torch.rand(20_000, 1, 2, 2), generator=torch.Generator().manual_seed(0))
        t = torch.cat(seen).double()
        se = t.std().item() / math.sqrt(len(t))
        assert abs(t.mean().item() - k / (k + 1)) < 4 * se
    with pytest.raises(ValueError, match="time_power"):
        flow.FlowMatching(Recorder(), time_power=0)


def test_class_ot_pairs_within_each_class_only():
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(12, 3, generator=g), torch.randn(12, 3, generator=g)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2, 1, 0, 1, 2])
    paired = flow.pair(x0, x1, "class-ot", labels)
    for c in range(3):
        idx = (labels == c).nonzero().squeeze(1)
        group0, group1 = x0[idx], x1[idx]
        # the class's own noise rows, reordered: the noise handed to class c is unchanged as a set
        match = torch.cdist(paired[idx], group0).argmin(1)
        assert torch.equal(paired[idx], group0[match]) and sorted(match.tolist()) == list(range(len(idx)))
        cost = lambda p: sum(float(((group0[p[i]] - group1[i]) ** 2).sum()) for i in range(len(idx)))  # noqa: E731
        assert cost(match.tolist()) == pytest.approx(min(cost(p) for p in itertools.permutations(range(len(idx)))))
    with pytest.raises(ValueError, match="one label per image"):
        flow.pair(x0, x1, "class-ot")


def test_seed_table_repeats_the_stored_rows_at_seed_0_and_varies_with_the_noise():
    # the target's comparison over noise seeds (flow_report --seeds): seed 0 must be the two tables' own rows
    fm_meta, ddpm_meta = recipes.shipped_meta("fm-mnist")["metrics"], recipes.shipped_meta("ddpm-mnist")["metrics"]
    rows = fm_meta["seed_table_n2000"]
    assert sorted({r["seed"] for r in rows}) == [0, 1, 2]
    fm0 = next(r for r in rows if r["model"] == "fm-mnist" and r["seed"] == 0)
    table = next(r for r in fm_meta["sampler_table_n2000"] if (r["sampler"], r["steps"]) == (fm0["sampler"], fm0["steps"]))
    assert fm0["fid"] == table["fid"] and fm0["nfe"] <= 20
    best20 = min(r["fid"] for r in fm_meta["sampler_table_n2000"] if r["nfe"] <= 20)
    assert table["fid"] == best20                                  # the compared row is the best within 20 NFE
    dd0 = next(r for r in rows if r["model"] == "ddpm-mnist" and r["seed"] == 0)
    best50 = min(r["fid"] for r in ddpm_meta["sampler_table_n2000"] if r["sampler"] == "ddim" and r["steps"] == 50)
    assert abs(dd0["fid"] - best50) < 1e-9 and dd0["eta"] == 1.0
    for model in ("fm-mnist", "ddpm-mnist"):                      # other seeds draw other noise
        assert len({r["fid"] for r in rows if r["model"] == model}) >= 2
