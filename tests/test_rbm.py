"""Chapter 3: RBM equations against brute-force enumeration, AIS against exact log Z, samplers, recipe, checks."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import rbm as R
from gencourse.checks import CheckFailed
from gencourse.checks import rbm as check


def random_rbm(D, K, seed=0, scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    m = R.RBM(D, K, init_std=scale, generator=g, dtype=dtype)
    with torch.no_grad():
        m.b.normal_(generator=g)
        m.c.normal_(generator=g)
    return m


def joint_log_probs(m):
    """log p(v, h) for every pair, (2^D, 2^K), straight from the energy."""
    V, H = R.all_binary_states(m.n_visible), R.all_binary_states(m.n_hidden)
    with torch.no_grad():
        E = -(V @ m.W @ H.T) - (V @ m.b)[:, None] - (H @ m.c)[None, :]
    return V, H, -E - torch.logsumexp(-E.flatten(), 0)


def test_all_binary_states_lists_every_vector_once():
    S = R.all_binary_states(4)
    assert S.shape == (16, 4) and len({tuple(r.tolist()) for r in S}) == 16
    assert torch.equal(R.all_binary_states(4, 5, 9), S[5:9])


def test_energy_and_free_energy_against_enumeration():
    m = random_rbm(5, 4)
    V, H, _ = joint_log_probs(m)
    with torch.no_grad():
        E = torch.stack([m.energy(V, h.expand(len(V), -1)) for h in H], 1)  # (2^D, 2^K)
        by_hand = -(V @ m.W @ H.T) - (V @ m.b)[:, None] - (H @ m.c)[None, :]
        assert torch.allclose(E, by_hand)
        assert torch.allclose(m.free_energy(V), -torch.logsumexp(-E, 1))


def test_conditionals_against_the_joint():
    m = random_rbm(5, 4, seed=1)
    V, H, logp = joint_log_probs(m)
    p = logp.exp()
    p_h_given_v = p / p.sum(1, keepdim=True)                  # (2^D, 2^K)
    p_v_given_h = p / p.sum(0, keepdim=True)
    with torch.no_grad():
        assert torch.allclose(m.hidden_probs(V), p_h_given_v @ H)        # E[h | v] = p(h = 1 | v)
        assert torch.allclose(m.visible_probs(H), p_v_given_h.T @ V)
        # the corrected errata: the hidden conditional uses c, the visible one uses b
        assert torch.allclose(m.hidden_probs(V), torch.sigmoid(V @ m.W + m.c))
        assert torch.allclose(m.visible_probs(H), torch.sigmoid(H @ m.W.T + m.b))


@pytest.mark.parametrize("D,K", [(6, 3), (3, 7)])
def test_exact_log_partition_enumerates_the_smaller_layer(D, K):
    m = random_rbm(D, K, seed=D)
    V, H, _ = joint_log_probs(m)
    with torch.no_grad():
        E = -(V @ m.W @ H.T) - (V @ m.b)[:, None] - (H @ m.c)[None, :]
    ref = float(torch.logsumexp(-E.flatten(), 0))
    assert math.isclose(R.log_partition_exact(m, chunk=8), ref, rel_tol=1e-12)
    ll = R.log_likelihood_exact(m, V)
    assert math.isclose(float(torch.logsumexp(ll, 0)), 0.0, abs_tol=1e-10)  # p(v) sums to 1
    with pytest.raises(ValueError, match="ais_log_partition"):
        R.log_partition_exact(m, max_units=2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gibbs_keeps_shapes_dtypes_and_is_reproducible(dtype):
    m = random_rbm(12, 5, dtype=dtype)
    v0 = torch.zeros(7, 12, dtype=dtype)
    a = m.gibbs(v0, 10, generator=torch.Generator().manual_seed(3))
    b = m.gibbs(v0, 10, generator=torch.Generator().manual_seed(3))
    c = m.gibbs(v0, 10, generator=torch.Generator().manual_seed(4))
    assert a.shape == (7, 12) and a.dtype == dtype and set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, c)
    v, frames = m.gibbs(v0, 9, keep_every=3, generator=torch.Generator().manual_seed(3))
    assert len(frames) == 3 and all(f.shape == (7, 12) and f.dtype == dtype for f in frames)
    h = m.sample_hidden(v0, torch.Generator().manual_seed(0))
    assert h.shape == (7, 5) and h.dtype == dtype
    with pytest.raises(ValueError, match=r"shape \(B, 12\)"):
        m.gibbs(torch.zeros(7, 28, 28, dtype=dtype), 1)


def test_gibbs_chains_reach_the_model_distribution():
    m = random_rbm(4, 3, seed=2)
    V, _, logp = joint_log_probs(m)
    p_v = logp.exp().sum(1)                                   # exact p(v), (16,)
    v = m.gibbs(torch.zeros(4000, 4, dtype=torch.float64), 30, generator=torch.Generator().manual_seed(0))
    idx = (v * 2 ** torch.arange(4, dtype=torch.float64)).sum(1).long()
    empirical = torch.bincount(idx, minlength=16).double() / len(v)
    assert 0.5 * (empirical - p_v).abs().sum() < 0.05        # total variation distance


def test_cd_gradients_equal_autograd_of_the_free_energy_difference():
    m = random_rbm(8, 5, seed=3)
    g = torch.Generator().manual_seed(0)
    v_data = torch.bernoulli(torch.full((10, 8), 0.3, dtype=torch.float64), generator=g)
    v_model = m.gibbs(v_data, 1, generator=g)
    m.zero_grad()
    R.cd_loss(m, v_data, v_model).backward()
    manual = R.cd_gradients(m, v_data, v_model)
    for name in "Wbc":
        assert torch.allclose(getattr(m, name).grad, manual[name]), name


def test_ais_is_exact_when_the_base_is_the_model():
    m = random_rbm(10, 6, seed=4)
    with torch.no_grad():
        m.W.zero_()
        m.c.zero_()
    exact = float(F.softplus(m.b.detach()).sum() + 6 * math.log(2))
    assert math.isclose(R.log_partition_exact(m), exact, rel_tol=1e-12)
    res = R.ais_log_partition(m, 20, 50, base_bias=m.b.detach(), generator=torch.Generator().manual_seed(0))
    assert math.isclose(res.log_z, exact, rel_tol=1e-12) and res.stderr < 1e-12  # every weight is 1
    res = R.ais_log_partition(m, 200, 200, generator=torch.Generator().manual_seed(0))  # uniform base
    assert abs(res.log_z - exact) < 3 * res.stderr + 1e-3


def test_ais_agrees_with_exact_log_partition_on_a_tiny_random_model():
    m = random_rbm(12, 8, seed=5, scale=1.0)
    exact = R.log_partition_exact(m)
    res = R.ais_log_partition(m, 200, 1000, generator=torch.Generator().manual_seed(1))
    assert res.stderr < 0.1 and abs(res.log_z - exact) < 3 * res.stderr, (res, exact)
    lo, hi = res.interval
    assert lo < res.log_z < hi
    v = R.all_binary_states(12)[:5]
    assert torch.allclose(res.log_likelihood(m, v), R.log_likelihood_exact(m, v, exact) + exact - res.log_z)


def test_beta_schedule_and_base_rates():
    betas = R.beta_schedule(145)
    assert len(betas) == 146 and betas[0] == 0 and betas[-1] == 1 and (betas.diff() > 0).all()
    assert (betas <= 0.5).sum() == 6 and (betas > 0.9).sum() == 100   # most steps near beta = 1
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    p = torch.sigmoid(R.base_rate_bias(v, pseudocount=1.0))
    assert torch.allclose(p, torch.tensor([4 / 5, 2 / 5]))


def test_recipe_smoke_train_evaluate_sample_and_resume_state():
    from gencourse import recipes

    cfg = dict(n_hidden=16, n_train=300, batch_size=50, n_chains=20, steps=6, ais_chains=4, ais_betas=20,
               n_test=100, sample_steps=3)
    trainer, modules, cfg = recipes.build_trainer("rbm-mnist", cfg, device="cpu", log_every=3, progress=False)
    chains0 = modules["chains"].v.clone()
    W0 = modules["rbm"].W.detach().clone()
    trainer.fit(steps=6)
    assert trainer.history.steps == [3, 6] and math.isfinite(trainer.history.last("free_energy_gap"))
    assert not torch.equal(modules["rbm"].W, W0) and not torch.equal(modules["chains"].v, chains0)
    assert "chains" in trainer.state_dict()["modules"]        # persistent chains are resumed with the weights
    recipe = recipes.get("rbm-mnist")
    metrics = recipe.evaluate(modules, cfg, torch.device("cpu"))
    assert math.isfinite(metrics["ais_test_ll"]) and metrics["ais_test_ll"] < 0
    assert "100 thresholded (>127) MNIST test images" in metrics["ais_protocol"]
    x = recipe.sample(modules, cfg, 5, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1


# --- exercise checks: the reference answers pass, the usual mistakes get named ------------------
def _cond(v, h, W, b, c):
    return torch.sigmoid(v @ W + c), torch.sigmoid(h @ W.T + b)


def _free_energy(v, W, b, c):
    return -(v @ b) - F.softplus(v @ W + c).sum(1)


def _cd_update(vd, vm, W, b, c):
    pd, pm = torch.sigmoid(vd @ W + c), torch.sigmoid(vm @ W + c)
    return vd.T @ pd / len(vd) - vm.T @ pm / len(vm), vd.mean(0) - vm.mean(0), pd.mean(0) - pm.mean(0)


def _cd_update_summed(vd, vm, W, b, c):
    pd, pm = torch.sigmoid(vd @ W + c), torch.sigmoid(vm @ W + c)
    return vd.T @ pd - vm.T @ pm, vd.sum(0) - vm.sum(0), pd.sum(0) - pm.sum(0)


def _log_partition(W, b, c):
    H = R.all_binary_states(W.shape[1])
    return torch.logsumexp(H @ c + F.softplus(H @ W.T + b).sum(1), 0)


def test_checks_accept_correct_answers(capsys):
    assert check.conditionals(_cond) and check.free_energy(_free_energy)
    assert check.cd_update(_cd_update) and check.log_partition(_log_partition)
    assert capsys.readouterr().out.count("Correct!") == 4


@pytest.mark.parametrize("fn,chk,msg", [
    (lambda v, h, W, b, c: (torch.sigmoid(v @ W + b), torch.sigmoid(h @ W.T + c)), "conditionals", "swapped"),
    (lambda v, h, W, b, c: (v @ W + c, torch.sigmoid(h @ W.T + b)), "conditionals", "forgot the sigmoid"),
    (lambda v, h, W, b, c: (torch.sigmoid(v @ W + c), torch.sigmoid(h @ W + b)), "conditionals", "wrong way round"),
    (lambda v, W, b, c: -_free_energy(v, W, b, c), "free_energy", "sign is flipped"),
    (lambda v, W, b, c: -F.softplus(v @ W + c).sum(1), "free_energy", "-b\\^T v is missing"),
    (lambda v, W, b, c: -(v @ b) - (v @ W + c).sum(1), "free_energy", "softplus"),
    (lambda *a: tuple(-t for t in _cd_update(*a)), "cd_update", "sign is flipped"),
    (_cd_update_summed, "cd_update", "summed over the batch"),
    (lambda W, b, c: _log_partition(W, b, c).exp(), "log_partition", "returned Z itself"),
    (lambda W, b, c: torch.logsumexp(F.softplus(R.all_binary_states(W.shape[1]) @ W.T + b).sum(1), 0),
     "log_partition", "c\\^T h is missing"),
])
def test_checks_name_the_usual_mistakes(fn, chk, msg):
    with pytest.raises(CheckFailed, match=msg):
        getattr(check, chk)(fn)


def test_gibbs_stepper_widget_and_its_static_animation():
    from gencourse import widgets

    m = random_rbm(784, 10, dtype=torch.float32, scale=0.3)
    st = widgets.gibbs_stepper(m, torch.zeros(3, 784), max_sweeps=30, generator=torch.Generator().manual_seed(0))
    first = st.set(sweep=4)
    st.buttons[1].click()                                      # "+10 sweeps"
    assert st.values["sweep"] == 14 and "sweep 14" in st.text.value
    assert torch.equal(st.set(sweep=4), first) and first.shape == (3, 1, 28, 28)  # going back shows the same chain
    binary = st.set(show="binary sample v")
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    html = widgets.gibbs_animation(m, torch.zeros(3, 784), [0, 1, 5], generator=torch.Generator().manual_seed(0))
    assert html.data.count("data:image/png;base64") == 3 and "http" not in html.data  # no CDN links


def test_resuming_restores_the_persistent_chains():
    from gencourse import recipes

    cfg = dict(n_hidden=8, n_train=200, batch_size=50, n_chains=10, steps=4)
    a, mods_a, _ = recipes.build_trainer("rbm-mnist", cfg, device="cpu", log_every=2, progress=False)
    a.fit(steps=2)
    state = copy.deepcopy(a.state_dict())                     # what the CLI writes to state.pt (RNG included)
    a.fit(steps=2)                                             # the uninterrupted run
    b, mods_b, _ = recipes.build_trainer("rbm-mnist", cfg, device="cpu", log_every=2, progress=False)
    b.load_state_dict(state)                                   # the resumed run
    assert torch.equal(mods_b["chains"].v, state["modules"]["chains"]["v"]) and b.step == 2
    b.fit(steps=2)
    assert torch.allclose(mods_a["rbm"].W, mods_b["rbm"].W) and torch.equal(mods_a["chains"].v, mods_b["chains"].v)


def test_shipped_checkpoint_loads_and_meets_the_target():
    from gencourse import data, recipes

    mods, ck = recipes.load_pretrained("rbm-mnist")
    assert ck.metrics["ais_test_ll"] >= -100 and "14500 intermediate distributions" in ck.metrics["ais_protocol"]
    digits = R.binarise(data.load("mnist", "test")[0][:200])
    noise = torch.bernoulli(digits.mean().expand_as(digits).contiguous(), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert mods["rbm"].free_energy(digits).mean() < mods["rbm"].free_energy(noise).mean() - 100
