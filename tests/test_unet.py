"""The noise-prediction U-Net: time embedding, shapes, class conditioning with label dropout."""
import math

import pytest
import torch

from gencourse.unet import UNet, timestep_embedding


def test_timestep_embedding_against_the_formula():
    t = torch.tensor([0, 1, 37, 999])
    dim = 8
    emb = timestep_embedding(t, dim)
    assert emb.shape == (4, 8)
    for b, tb in enumerate(t.tolist()):
        for k in range(dim // 2):
            w = 10_000 ** (-k / (dim // 2))
            assert math.isclose(emb[b, k].item(), math.sin(tb * w), abs_tol=1e-5)
            assert math.isclose(emb[b, dim // 2 + k].item(), math.cos(tb * w), abs_tol=1e-5)
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(t, 7)


def _randomised(net: UNet) -> UNet:
    """Undo the zero initialisations so every path carries signal (for the tests below)."""
    torch.manual_seed(0)
    for name, p in net.named_parameters():
        if p.abs().sum() == 0 and p.dim() > 1:
            torch.nn.init.normal_(p, std=0.05)
    return net


def test_shapes_and_zero_initial_output():
    net = UNet(channels=8, channel_mults=(1, 2, 2))
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999])
    out = net(x, t)
    assert out.shape == (3, 1, 28, 28)
    assert out.abs().max() == 0, "the last convolution starts at zero: an untrained net predicts no noise"
    assert UNet(channels=8, channel_mults=(1, 2))(x, t).shape == (3, 1, 28, 28)


def test_every_parameter_gets_a_gradient_and_time_matters():
    net = _randomised(UNet(channels=8, channel_mults=(1, 2, 2), num_classes=10))
    x = torch.randn(2, 1, 28, 28)
    out = net(x, torch.tensor([10, 10]), torch.tensor([1, 2]))
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
    with torch.no_grad():
        assert not torch.allclose(net(x, torch.tensor([10, 10])), net(x, torch.tensor([900, 900])))


def test_class_conditioning_null_label_and_label_dropout():
    net = _randomised(UNet(channels=8, channel_mults=(1, 2), num_classes=10, class_dropout=1.0)).eval()
    x, t = torch.randn(4, 1, 28, 28), torch.full((4,), 300)
    y = torch.tensor([0, 3, 3, 9])
    with torch.no_grad():
        cond, none, null = net(x, t, y), net(x, t), net(x, t, torch.full((4,), 10))
        assert torch.equal(none, null), "y=None means the null label"
        assert not torch.allclose(cond, none), "in eval mode the labels are used"
        net.train()  # class_dropout = 1: every label is dropped
        assert torch.allclose(net(x, t, y), none, atol=1e-6)
        net.class_dropout = 0.0
        assert torch.allclose(net(x, t, y), cond, atol=1e-6)
        net.class_dropout = 0.5  # about half of many labels are dropped
        torch.manual_seed(1)
        emb = net.embed(torch.zeros(4000, dtype=torch.long), torch.full((4000,), 3))
        dropped = (emb - net.embed(torch.zeros(1, dtype=torch.long), torch.tensor([10]))).abs().sum(1) < 1e-6
        assert 0.45 < dropped.float().mean().item() < 0.55


def test_bad_inputs_are_explained():
    uncond = UNet(channels=8, channel_mults=(1, 2))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="unconditional"):
        uncond(x, t, torch.tensor([1, 2]))
    cond = UNet(channels=8, channel_mults=(1, 2), num_classes=10).eval()
    with pytest.raises(ValueError, match="0..10"):
        cond(x, t, torch.tensor([1, 11]))
    with pytest.raises(ValueError, match="expected images"):
        cond(torch.randn(2, 3, 28, 28), t)


def test_default_recipe_size():
    net = UNet(1, 16, (1, 2, 4), num_classes=10)
    n = sum(p.numel() for p in net.parameters())
    assert 300_000 < n < 2_000_000
