import math

import pytest
import torch
import torch.nn.functional as F

from gencourse import autoencoder as ae
from gencourse import recipes
from gencourse.train import Trainer


def test_shapes_of_every_autoencoder():
    x = torch.rand(5, 1, 28, 28)
    for model, d in [(ae.LinearAutoencoder(3), 3), (ae.MLPAutoencoder(2, (32, 16)), 2), (ae.ConvAutoencoder(4, (4, 8)), 4)]:
        z = model.encode(x)
        assert z.shape == (5, d)
        assert model.decode(z).shape == x.shape == model.reconstruct(x).shape == model.images(z).shape
        kind = "mse" if isinstance(model, ae.LinearAutoencoder) else "bce"
        assert model.loss(x, kind=kind).shape == (5,)


def test_losses_are_sums_over_pixels_against_torch():
    g = torch.Generator().manual_seed(0)
    logits, x = torch.randn(3, 1, 28, 28, generator=g), torch.rand(3, 1, 28, 28, generator=g)
    ref = torch.stack([F.binary_cross_entropy(torch.sigmoid(logits[i]), x[i], reduction="sum") for i in range(3)])
    assert torch.allclose(ae.bce_loss(logits, x), ref, rtol=1e-4)
    assert torch.allclose(ae.mse_loss(x, torch.zeros_like(x)), (x**2).sum((1, 2, 3)))
    with pytest.raises(ValueError, match="bce"):
        ae.LinearAutoencoder(2).loss(x, kind="bce")


def test_corrupt():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(200, 1, 28, 28)
    masked = ae.corrupt(x, "mask", 0.3, generator=g)
    assert abs(float((masked == 0).float().mean()) - 0.3) < 0.01
    noisy = ae.corrupt(x * 0.5, "gaussian", 0.2, generator=g)
    assert noisy.min() >= 0 and noisy.max() <= 1 and abs(float((noisy - 0.5).std()) - 0.2) < 0.01
    assert ae.corrupt(x, "none") is x
    with pytest.raises(ValueError, match="noise kind"):
        ae.corrupt(x, "salt")


def test_principal_angles_of_known_subspaces():
    t1, t2 = 0.3, 1e-5
    e = torch.eye(6, dtype=torch.float64)
    a = torch.stack([e[0], e[1]], 1)
    b = torch.stack([math.cos(t1) * e[0] + math.sin(t1) * e[2], math.cos(t2) * e[1] + math.sin(t2) * e[3]], 1)
    ang = ae.principal_angles(a, b * torch.tensor([2.0, -3.0], dtype=torch.float64))  # scaling does not matter
    assert torch.allclose(ang, torch.tensor([t2, t1], dtype=torch.float64), atol=1e-10)
    # a subspace inside a bigger one: all angles zero; orthogonal subspaces: pi / 2
    assert ae.principal_angles(e[:, :1], e[:, :3]).abs().max() < 1e-12
    assert torch.allclose(ae.principal_angles(e[:, :2], e[:, 2:4]), torch.full((2,), math.pi / 2, dtype=torch.float64))


def test_pca_against_the_covariance_eigendecomposition():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    mean, comps, var = ae.pca(x, 2)
    evals, evecs = torch.linalg.eigh(torch.cov(x.T))
    assert torch.allclose(var, evals.flip(0)[:2])
    assert ae.principal_angles(comps.T, evecs[:, -2:]).max() < 1e-8
    assert torch.allclose(comps @ comps.T, torch.eye(2, dtype=torch.float64), atol=1e-10)


def test_linear_autoencoder_learns_the_pca_subspace():
    g = torch.Generator().manual_seed(0)
    # 20-D data with a clear spectrum: 3 strong directions and weak isotropic noise
    basis = torch.linalg.qr(torch.randn(20, 3, generator=g)).Q
    x = (torch.randn(500, 3, generator=g) * torch.tensor([3.0, 2.0, 1.5])) @ basis.T + 0.1 * torch.randn(500, 20, generator=g)
    x = x + 1.0  # a non-zero mean, learned by the biases
    torch.manual_seed(0)
    model = ae.LinearAutoencoder(3, in_dim=20)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for _ in range(300):
        loss = model.loss(x, kind="mse").mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, comps, _ = ae.pca(x, 3)
    angles = ae.principal_angles(model.decoder_basis(), comps.T)
    assert angles.max() < 0.02, angles


def test_code_gaussian_and_encode_all():
    model = ae.MLPAutoencoder(2, (16,))
    u8 = torch.randint(0, 256, (30, 28, 28), dtype=torch.uint8)
    z = ae.encode_all(model, u8, batch_size=7)
    assert z.shape == (30, 2)
    gauss = ae.fit_code_gaussian(z)
    assert torch.allclose(gauss.loc, z.double().mean(0))
    assert torch.allclose(gauss.covariance_matrix, torch.cov(z.double().T), atol=1e-5)


@pytest.mark.parametrize("name,overrides", [
    ("ae-fashion-2d", dict(hidden=[32], noise="mask")),
    ("ae-fashion-conv", dict(channels=[4, 8], noise="gaussian", noise_level=0.2, latent_dim=4)),
])
def test_recipes_smoke_train_evaluate_sample(name, overrides):
    cfg = dict(overrides, n_train=256, batch_size=32)
    trainer, modules, cfg = recipes.build_trainer(name, cfg, progress="off", log_every=5)
    assert isinstance(trainer, Trainer)
    hist = trainer.fit(steps=10)
    assert hist["loss"][-1] < hist["loss"][0]
    x = recipes.get(name).sample(modules, cfg, 6, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    metrics = recipes.get(name).evaluate(modules, cfg, torch.device("cpu"))
    assert metrics["test_bce_per_image"] > 0 and "protocol" in metrics


def test_exercise_checks_accept_the_answer_and_name_the_usual_mistakes():
    from gencourse.checks import CheckFailed
    from gencourse.checks import autoencoders as check

    assert check.reconstruction_bce(lambda logits, x: ae.bce_loss(logits, x))
    with pytest.raises(CheckFailed, match="averaged over pixels"):
        check.reconstruction_bce(lambda logits, x: ae.bce_loss(logits, x) / 784)
    with pytest.raises(CheckFailed, match="sigmoid twice"):
        check.reconstruction_bce(lambda logits, x: ae.bce_loss(torch.sigmoid(logits), x))

    def reconstruct(x, k, centre=True):
        mean, comps, _ = ae.pca(x, k)
        mean = mean if centre else torch.zeros_like(mean)
        return (x - mean) @ comps.T @ comps + mean

    assert check.pca_reconstruct(reconstruct)
    with pytest.raises(CheckFailed, match="add the mean back"):
        check.pca_reconstruct(lambda x, k: reconstruct(x, k) - x.mean(0))
    assert check.principal_angles(ae.principal_angles)
    with pytest.raises(CheckFailed, match="degrees"):
        check.principal_angles(lambda a, b: ae.principal_angles(a, b) * 180 / math.pi)


def test_nearest_codes_against_brute_force():
    g = torch.Generator().manual_seed(0)
    codes, points = torch.randn(50, 2, generator=g), torch.randn(7, 2, generator=g)
    d, i = ae.nearest_codes(points, codes, chunk=3)
    full = ((points[:, None] - codes[None]) ** 2).sum(-1).sqrt()
    assert torch.allclose(d, full.min(1).values, atol=1e-5) and (i == full.argmin(1)).all()
    d_self, i_self = ae.nearest_codes(codes, codes, exclude_self=True, chunk=16)
    assert (i_self != torch.arange(50)).all() and (d_self > 0).all()
