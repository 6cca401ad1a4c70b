"""gencourse.metrics against direct computations (numpy, brute force), and the shipped assets."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gencourse import classifiers, data, metrics, recipes


def emb(x, dataset="mnist", source="test set"):
    """An Embedding of given features (no classifier needed); logits from a fixed random projection."""
    x = torch.as_tensor(x, dtype=torch.float32)
    proj = torch.randn(x.shape[1], 10, generator=torch.Generator().manual_seed(7))
    return metrics.Embedding(x, x @ proj, dataset, source)


def gaussian(n, d, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g) / math.sqrt(d)
    return shift + scale * torch.randn(n, d, generator=g) @ (torch.eye(d) + a)


def np_frechet(mu1, s1, mu2, s2):
    """tr sqrtm(s1 s2) from the eigenvalues of the (non-symmetric) product: another route than the library's."""
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real.sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


# --- Fréchet distance, FID, KID, IS -----------------------------------------------------------
def test_frechet_distance_of_gaussians_with_known_answer():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    # diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum (sqrt v1 - sqrt v2)^2 = 5 + (1 + 1 + 0)
    got = metrics.frechet_distance(torch.tensor(mu1), torch.tensor(np.diag(v1)), torch.tensor(mu2),
                                   torch.tensor(np.diag(v2)))
    assert got == pytest.approx(7.0, abs=1e-10)
    # general covariances: the library's symmetric square root vs numpy's eigenvalues of the product
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    assert metrics.frechet_distance(m1, s1, m2, s2) == pytest.approx(np_frechet(m1, s1, m2, s2), rel=1e-9)
    assert metrics.frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="shapes"):
        metrics.frechet_distance(m1, s1, m2[:3], s2)


def test_fid_matches_direct_computation_and_is_zero_for_a_set_with_itself():
    real, fake = gaussian(600, 6, 0), gaussian(400, 6, 1, shift=0.3, scale=1.2)
    r = metrics.fid(emb(fake), "mnist", real=emb(real))
    f64r, f64f = real.double().numpy(), fake.double().numpy()
    want = np_frechet(f64f.mean(0), np.cov(f64f, rowvar=False), f64r.mean(0), np.cov(f64r, rowvar=False))
    assert r.fid == pytest.approx(want, rel=1e-6)
    assert r.value == r.fid and float(r) == r.fid
    assert "400 generated vs test set" in r.protocol and classifiers.FEATURE_LAYER in r.protocol
    assert abs(metrics.fid(emb(real), "mnist", real=emb(real)).fid) < 1e-6


def np_mmd2(x, y):
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * k(x, y).mean())


def test_kid_matches_direct_unbiased_mmd_and_torchmetrics():
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = gaussian(300, 4, 2), gaussian(200, 4, 3, shift=0.5)
    r = metrics.kid(emb(fake), "mnist", real=emb(real), blocks=4)
    assert r.kid == pytest.approx(np_mmd2(fake.double().numpy(), real.double().numpy()), rel=1e-5)
    assert r.kid_se > 0 and "4 disjoint subset pairs of 50" in r.protocol
    # equal sizes, one subset holding everything: torchmetrics' estimator is the same number
    with pytest.warns(UserWarning, match="save all extracted features"):
        tm = KernelInceptionDistance(feature=metrics.distances._Precomputed(4), subsets=1, subset_size=200)
    tm.update(real[:200], real=True)
    tm.update(fake, real=False)
    assert metrics.kid(emb(fake), "mnist", real=emb(real[:200])).kid == pytest.approx(float(tm.compute()[0]), rel=1e-4)
    halves = metrics.kid(emb(real[:150]), "mnist", real=emb(real[150:]))  # same distribution: ~0, either sign
    assert abs(halves.kid) < 0.1 * r.kid


def test_inception_score_matches_direct_computation():
    logits = torch.randn(500, 10, generator=torch.Generator().manual_seed(4)) * 3
    e = metrics.Embedding(torch.zeros(500, 2), logits, "mnist", "x")
    r = metrics.inception_score(e, "mnist", splits=1)
    p = torch.softmax(logits.double(), 1).numpy()
    want = math.exp((p * (np.log(p) - np.log(p.mean(0, keepdims=True)))).sum(1).mean())
    assert r.values["is"] == pytest.approx(want, rel=1e-6)
    # one-hot confident predictions spread evenly over 10 classes give the maximum, 10
    onehot = metrics.Embedding(torch.zeros(1000, 2), 50 * torch.eye(10).repeat(100, 1), "mnist", "x")
    assert metrics.inception_score(onehot, "mnist", splits=1).values["is"] == pytest.approx(10.0, rel=1e-6)


# --- precision / recall / density / coverage ----------------------------------------------------
def brute_force_manifold(real, fake, k):
    real, fake = real.double().numpy(), fake.double().numpy()
    dist = lambda a, b: np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    drr, dff, dfr = dist(real, real), dist(fake, fake), dist(fake, real)
    r_real = np.sort(drr, 1)[:, k]  # column 0 is the point itself; balls are open (<), as in the reference code
    r_fake = np.sort(dff, 1)[:, k]
    precision = np.mean([any(dfr[j, i] < r_real[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(dfr[j, i] < r_fake[j] for j in range(len(fake))) for i in range(len(real))])
    density = sum((dfr[j] < r_real).sum() for j in range(len(fake))) / (k * len(fake))
    coverage = np.mean([dfr[:, i].min() < r_real[i] for i in range(len(real))])
    return dict(precision=precision, recall=recall, density=density, coverage=coverage)


def test_precision_recall_density_coverage_match_brute_force():
    real = gaussian(60, 3, 5)
    fake = torch.cat([gaussian(40, 3, 6, scale=0.5), gaussian(20, 3, 7, shift=4.0)])  # narrow + outliers
    want = brute_force_manifold(real, fake, k=3)
    pr = metrics.precision_recall(emb(fake), "mnist", real=emb(real), k=3)
    dc = metrics.density_coverage(emb(fake), "mnist", real=emb(real), k=3)
    got = {**pr.values, **dc.values}
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert 0.5 < got["precision"] < 0.8 and "k = 3" in pr.protocol and "60 generated" in dc.protocol


def test_prdc_balls_are_open_like_the_reference_code():
    # two identical sets: each real ball holds its own centre and, strictly inside, k - 1 neighbours, so
    # density is exactly 1 (the reference code's value); closed balls would add the k-th neighbour, (k + 1) / k
    x = gaussian(200, 4, 11)
    same = metrics.prdc(x, x.clone(), k=5)
    assert same == {"precision": 1.0, "recall": 1.0, "density": pytest.approx(1.0, abs=1e-12), "coverage": 1.0}
    # a grid with ties: on the integer lattice many neighbours sit exactly at the k-th distance
    grid = torch.cartesian_prod(torch.arange(6.0), torch.arange(6.0))
    got = metrics.prdc(grid, grid + 0.0, k=4)
    want = brute_force_manifold(grid, grid, k=4)
    assert got["density"] == pytest.approx(want["density"], abs=1e-12)
    closed = sum(int((torch.cdist(grid[j:j + 1], grid)[0] <= torch.cdist(grid, grid).sort(1).values[:, 4]).sum())
                 for j in range(len(grid))) / (4 * len(grid))
    assert got["density"] < closed                       # the ties on the sphere are left out


def test_manifold_metrics_use_an_equal_size_real_subset():
    real, fake = gaussian(500, 3, 8), gaussian(100, 3, 9)
    m = metrics.manifold_metrics(emb(fake), "mnist", real=emb(real))
    assert m["n_real"] == m["n_fake"] == 100 and "random subset, seed 0" in m["source"]


# --- modes on the ring ---------------------------------------------------------------------------
def test_count_modes_on_the_ring():
    g = torch.Generator().manual_seed(0)
    centres, std = data.ring_modes(8, 2.0), 0.05
    x, mode = data.ring_of_gaussians(4000, std=std, generator=g)
    full = metrics.count_modes(x, centres, std)
    assert full.covered == 8 and full.high_quality > 0.98 and sum(full.counts) == round(full.high_quality * 4000)
    keep = mode < 6                                    # a sampler that dropped two modes ...
    x2 = torch.cat([x[keep], x[~keep][:10], 3 * torch.randn(500, 2, generator=g)])  # ... but for 10 points, + junk
    part = metrics.count_modes(x2, centres, std)
    assert part.covered == 6 and part.modes == 8 and part.high_quality < 0.9
    assert "covered with >=" in part.protocol
    with pytest.raises(ValueError, match="expected samples"):
        metrics.count_modes(torch.zeros(5, 3), centres, std)


# --- shipped classifiers and everything that uses them -------------------------------------------
@pytest.mark.parametrize("dataset,minimum", [("mnist", 0.99), ("fashion", 0.91)])
def test_shipped_classifier_reaches_its_recorded_accuracy(dataset, minimum):
    model = metrics.load_classifier(dataset)
    recorded = model.checkpoint.metrics["test_accuracy"]
    images, labels = data.load(dataset, "test")
    acc, per_class = classifiers.accuracy(model, images, labels)
    assert acc >= minimum and recorded >= minimum
    assert acc == pytest.approx(recorded, abs=6e-4)  # recorded with the float16-rounded weights
    assert model.checkpoint.meta["command"].startswith(f"python -m gencourse train classifier-{dataset}")
    assert model.features(images[:3].float() / 255).shape == (3, 128) and not model.training
    side = json.loads((recipes.weights_path(f"classifier-{dataset}").parent / f"classifier-{dataset}.pt.json").read_text())
    assert side["file_bytes"] < 1_000_000 and len(side["file_sha256"]) == 64


def test_evaluate_reports_every_metric_with_its_protocol():
    images, labels = data.load("mnist", "train")
    x, y = data.to_float(images[:300]), labels[:300]
    rep = metrics.evaluate(x, "mnist", labels=y)
    d = rep.as_dict()
    for key in ["fid", "kid", "kid_se", "is", "is_std", "precision", "recall", "density", "coverage",
                "class_accuracy"]:
        assert key in d and math.isfinite(d[key]), key
    assert d["class_accuracy"] > 0.97 and d["is"] > 8 and d["precision"] > 0.6
    assert all("300 generated" in p or "300 conditional" in p for p in rep.protocols().values())
    text = str(rep)
    assert "real floor" in text and "fc1+ReLU" in text and "mnist test split, 10000 images" in text
    assert rep.floor is not None and rep.floor["fid"] == pytest.approx(d["fid"], rel=0.5)
    acc = metrics.class_accuracy(x, y, "mnist")
    assert len(acc.details["per_class"]) == 10 and acc.class_accuracy == d["class_accuracy"]


def test_metrics_order_the_sensitivity_cases():
    cases = metrics.sensitivity_cases("mnist", 400)
    r = {name: metrics.evaluate(x, "mnist", labels=y, floor=False).as_dict() for name, (x, y) in cases.items()}
    for bad in ["blur", "noise", "half the classes", "one class", "copies", "pure noise"]:
        assert r[bad]["fid"] > 2 * r["real"]["fid"], bad
    assert r["pure noise"]["fid"] > r["noise"]["fid"] > r["real"]["fid"]
    assert r["pure noise"]["precision"] < 0.05 and r["pure noise"]["coverage"] < 0.05
    # dropping classes: precision stays high, recall and coverage fall; IS falls with the number of classes
    assert r["half the classes"]["precision"] > 0.8 * r["real"]["precision"]
    assert r["half the classes"]["recall"] < 0.7 * r["real"]["recall"]
    assert r["one class"]["is"] < 2 < r["half the classes"]["is"] < r["real"]["is"]
    # memorised copies: realistic (precision) but no diversity (recall, coverage)
    assert r["copies"]["precision"] > 0.8 and r["copies"]["recall"] < 0.1 and r["copies"]["coverage"] < 0.2


def test_recorded_floors_are_consistent():
    for ds in classifiers.DATASETS:
        floors = metrics.real_floor(ds)
        assert set(floors) == set(metrics.FLOOR_SIZES), ds
        assert floors[1000]["fid"] > floors[10_000]["fid"] > 0  # FID's small-sample bias
        assert 0.9 < floors[10_000]["density"] < 1.1 and floors[10_000]["precision"] > 0.6
        assert "training images" in floors[10_000]["protocol"]


# --- leaderboard ---------------------------------------------------------------------------------
def _toy_sampler_recipe():
    def sample(modules, cfg, n, device, generator):
        images, labels = data.load("mnist", "test")
        idx = torch.randperm(len(labels), generator=generator)[:n]
        return data.to_float(images[idx]), labels[idx]
    return recipes.Recipe(name="toy-sampler", description="test images as 'samples' (tests only)",
                          defaults=dict(dataset="mnist"), build=lambda cfg: {"model": nn.Linear(1, 1)},
                          optimizers=lambda m, c: {}, data=lambda *a: None, step=lambda *a: None, sample=sample)


def test_leaderboard_scores_shipped_models_and_skips_the_rest(tmp_path, monkeypatch):
    import shutil

    for f in ["classifier-mnist.pt", "classifier-mnist.pt.json"]:  # the metrics need the shipped classifier
        shutil.copy(recipes.weights_path("classifier-mnist").parent / f, tmp_path / f)
    monkeypatch.setattr(recipes, "WEIGHTS_DIR", tmp_path)
    recipe = recipes.register(_toy_sampler_recipe())
    try:
        empty = metrics.leaderboard(n=200, verbose=False)
        assert empty.rows == [] and "no model scored yet" in str(empty)
        recipes.save_pretrained("toy-sampler", recipe.build({}), recipe.config(),
                                metrics={"test_elbo_nats": -90.5, "protocol": "made up"})
        fast = metrics.leaderboard(["toy-sampler"], n=200, use_cache=False, compute_missing=False, floors=False)
        assert fast.rows == [] and "not scored" in fast.skipped["toy-sampler"]
        assert fast.likelihoods == [{"model": "toy-sampler", "data": "mnist: see the protocol",
                                     "estimate": "-ELBO (upper bound)", "nll_nats": 90.5, "protocol": "made up"}]
        board = metrics.leaderboard(["toy-sampler", "no-such-model"], n=200, use_cache=False, verbose=False)
    finally:
        recipes._RECIPES.pop("toy-sampler", None)
    rows = {r["model"]: r for r in board.rows}
    assert set(rows) == {"toy-sampler", "real data (mnist train subset)"}, board.skipped
    assert "test_elbo_nats" not in rows["toy-sampler"] and rows["toy-sampler"]["class_accuracy"] > 0.97
    assert "no-such-model" in board.skipped
    text = str(board)
    assert "toy-sampler" in text and "90.50" in text and "made up" in text and "lower is better" in text


def test_leaderboard_likelihoods_are_nlls_kept_apart_by_data():
    """One convention (NLL in nats per image, lower is better), the data variant and protocol on every row,
    and the RBM's 40,000-distribution AIS figure rather than the recipe's optimistic 14,500-distribution one."""
    rows = {m: metrics.board.likelihood_rows(m, recipes.shipped_meta(m)) for m in ("vae-mnist", "rbm-mnist",
                                                                                     "vae-mnist-beta1")}
    side = {m: recipes.shipped_meta(m)["metrics"] for m in rows}
    vae = {r["estimate"]: r for r in rows["vae-mnist"]}
    assert vae["-ELBO (upper bound)"]["nll_nats"] == -side["vae-mnist"]["test_elbo_nats"]
    assert vae["-IWAE, k = 1000 (upper bound)"]["nll_nats"] == side["vae-mnist"]["test_iwae_nll_nats_k1000"]
    assert vae["-ELBO (upper bound)"]["nll_nats"] > vae["-IWAE, k = 1000 (upper bound)"]["nll_nats"] > 0
    (rbm,) = rows["rbm-mnist"]
    assert rbm["nll_nats"] == -side["rbm-mnist"]["ais_test_ll_40000_betas"] and rbm["stderr"] == 0.26
    assert "40,000" in rbm["estimate"] and "14,500" in rbm["protocol"]
    assert "thresholded" in rbm["data"] and "binarised" in vae["-ELBO (upper bound)"]["data"]
    assert len({rows[m][0]["data"] for m in rows}) == 3          # three data variants: never in one table
    assert all(r["protocol"] for rs in rows.values() for r in rs)


def test_every_shipped_model_is_on_the_board_or_listed_with_its_reason():
    board = metrics.leaderboard(n=1000, compute_missing=False, verbose=False)
    shipped = {p.stem for p in recipes.WEIGHTS_DIR.glob("*.pt")}
    on_board = {r["model"] for r in board.rows}
    assert shipped <= on_board | set(board.skipped), shipped - on_board - set(board.skipped)
    assert not on_board & set(board.skipped)                      # never both
    assert all(board.skipped[m] for m in shipped - on_board)
    assert "translator" in board.skipped["pix2pix-edges-fashion"] and "classifier" in board.skipped["classifier-mnist"]


# --- input checks and the optional Inception-FID ------------------------------------------------
def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        metrics.embed(torch.rand(4, 3, 28, 28), "mnist")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.embed(torch.rand(4, 1, 28, 28) * 2 - 1, "mnist")
    with pytest.raises(ValueError, match="no domain classifier"):
        metrics.load_classifier("cifar10")
    with pytest.raises(ValueError, match="intended labels"):
        metrics.class_accuracy(emb(torch.randn(5, 3)), torch.zeros(4), "mnist")


def test_inception_fid_says_clearly_when_it_cannot_run():
    try:
        import torch_fidelity  # noqa: F401
        pytest.skip("torch-fidelity is installed: the test would need the network")
    except ImportError:
        pass
    with pytest.raises(metrics.InceptionUnavailable, match="torch-fidelity"):
        metrics.inception_fid(torch.rand(4, 1, 28, 28), "mnist")


# --- the exercise checks -------------------------------------------------------------------------
def test_exercise_checks_accept_the_answers_and_name_the_usual_mistakes():
    from gencourse import likelihood
    from gencourse.checks import CheckFailed
    from gencourse.checks import evaluation as check

    assert check.frechet_distance(metrics.frechet_distance)
    with pytest.raises(CheckFailed, match="factor 2"):
        check.frechet_distance(lambda m1, s1, m2, s2: metrics.frechet_distance(m1, s1, m2, s2)
                               + float(torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()))
    with pytest.raises(CheckFailed, match="matrix square root|elementwise"):
        check.frechet_distance(lambda m1, s1, m2, s2: ((m1 - m2) ** 2).sum() + s1.trace() + s2.trace()
                               - 2 * (s1 @ s2).sqrt().trace())
    assert check.bits_per_dim(lambda nats, dims, levels: likelihood.bits_per_dim(nats, dims, levels=levels))
    with pytest.raises(CheckFailed, match="dequantisation"):
        check.bits_per_dim(lambda nats, dims, levels: likelihood.bits_per_dim(nats, dims))

    def pr(real, fake, k):
        m = metrics.manifold_metrics(emb(fake), "mnist", real=emb(real), k=k)["values"]
        return m["precision"], m["recall"]
    assert check.precision_recall(pr)
    with pytest.raises(CheckFailed, match="swapped"):
        check.precision_recall(lambda r, f, k: pr(r, f, k)[::-1])

    def inception_score(p):
        return (p * (p.log() - p.mean(0, keepdim=True).log())).sum(1).mean().exp()
    assert check.inception_score(inception_score)
    with pytest.raises(CheckFailed, match="exponential"):
        check.inception_score(lambda p: inception_score(p).log())


def test_floor_command_records_and_real_floor_reads_it(tmp_path, monkeypatch):
    path = tmp_path / "floor.json"
    monkeypatch.setattr(metrics.protocol, "FLOOR_PATH", path)
    assert metrics.main(["floor", "--n", "60", "--dataset", "mnist"]) == 0
    rec = json.loads(path.read_text())
    assert rec["datasets"]["mnist"]["classifier_sha256"] == metrics.classifier_sha256("mnist")
    floors = metrics.real_floor("mnist")
    assert set(floors) == {60} and floors[60]["fid"] > 0 and "60 random mnist training images" in floors[60]["protocol"]
    assert metrics.real_floor("mnist", 60)[60] == floors[60]  # recorded: read, not recomputed
    rec["datasets"]["mnist"]["classifier_sha256"] = "other weights"
    path.write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match="other mnist classifier weights"):
        assert metrics.real_floor("mnist") == {}


def test_leaderboard_cache_is_keyed_by_the_weights_and_drops_rows_of_replaced_weights():
    """A row stays valid when only a checkpoint's metadata changes (same tensors), and is pruned
    when the weights are replaced or the model is no longer shipped."""
    import json as _json

    side = _json.loads((recipes.WEIGHTS_DIR / "vae-mnist.pt.json").read_text())
    key = metrics.board._board_key("vae-mnist", side, 1000, 0)
    assert side["tensors_sha256"][:16] in key and metrics.board._current(key)
    assert metrics.board._board_key("vae-mnist", dict(side, file_sha256="0" * 64), 1000, 0) == key  # metadata only
    assert not metrics.board._current(key.replace(side["tensors_sha256"][:16], "f" * 16))
    assert not metrics.board._current("no-such-model|0123456789abcdef|n=1000|seed=0")
