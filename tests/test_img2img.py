"""Chapter 5 (image-to-image translation): U-Net shapes and skip connections, PatchGAN output size and
receptive field against torch's own convolutions and autograd, the losses against hand computations and
torch's reference losses, the image buffer, the unpaired batches, smoke training of every recipe, the
exercise checks and the shipped checkpoints."""
import json
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gencourse import checks, data, img2img as I, recipes
from gencourse.img2img import tasks as T
from gencourse.checks import img2img as check

D64 = torch.float64


# ---------------------------------------------------------------------------
# U-Net
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("c_in,c_out,width,depth", [(1, 1, 16, 4), (3, 3, 8, 4), (2, 3, 4, 2), (1, 1, 4, 5)])
def test_unet_shapes_and_range(c_in, c_out, width, depth):
    torch.manual_seed(0)
    net = I.UNet(c_in, c_out, width=width, depth=depth)
    y = net(torch.rand(3, c_in, 28, 28) * 2 - 1)
    assert y.shape == (3, c_out, 28, 28) and y.abs().max() <= 1
    assert net.channels == [min(width * 2 ** i, 64) for i in range(depth)]


def test_unet_feature_shapes_follow_the_docstring():
    net = I.UNet(1, 1, width=16, depth=4)
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for m in [*net.downs, *net.ups]]
    net(torch.zeros(2, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert shapes == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2),       # encoder
                      (2, 64, 4, 4), (2, 32, 8, 8), (2, 16, 16, 16), (2, 1, 32, 32)]      # decoder (before the crop)
    # each decoder level but the first takes the level below concatenated with the skip
    assert [u[0].in_channels if isinstance(u, nn.Sequential) else u.in_channels for u in net.ups] == [64, 128, 64, 32]
    plain = I.UNet(1, 1, width=16, depth=4, skips=False)
    assert [u[0].in_channels if isinstance(u, nn.Sequential) else u.in_channels for u in plain.ups] == [64, 64, 32, 16]


def _with_dead_bottleneck(net):
    """Zero the innermost encoder output, so that information can only pass through the skips."""
    return net.downs[-1].register_forward_hook(lambda m, i, o: torch.zeros_like(o))


def test_skip_connections_carry_information_past_the_bottleneck():
    torch.manual_seed(0)
    x1, x2 = torch.rand(2, 1, 1, 28, 28) * 2 - 1
    for skips, depends in ((True, True), (False, False)):
        net = I.UNet(1, 1, width=8, depth=4, skips=skips, norm="none").eval()
        h = _with_dead_bottleneck(net)
        y1, y2 = net(x1), net(x2)
        h.remove()
        assert (not torch.allclose(y1, y2)) == depends
    # and the gradient of one output pixel reaches the input pixel right under it through the first skip
    net = I.UNet(1, 1, width=8, depth=4, norm="none")
    h = _with_dead_bottleneck(net)
    x = torch.zeros(1, 1, 28, 28, requires_grad=True)
    net(x)[0, 0, 10, 10].backward()
    h.remove()
    assert x.grad[0, 0, 10, 10] != 0 and x.grad[0, 0, 0, 27] == 0


def test_unet_rejects_wrong_inputs():
    with pytest.raises(ValueError, match=r"\(B, 3, 28, 28\)"):
        I.UNet(3, 3)(torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="halvings"):
        I.UNet(1, 1, depth=6)


# ---------------------------------------------------------------------------
# PatchGAN
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_down,n_extra,side,rf", [(2, 0, 6, 22), (2, 1, 5, 34), (1, 0, 13, 10), (3, 0, 2, 46)])
def test_patch_discriminator_output_size(n_down, n_extra, side, rf):
    d = I.PatchDiscriminator(2, width=8, n_down=n_down, n_extra=n_extra)
    out = d(torch.zeros(4, 2, 28, 28))
    assert out.shape == (4, 1, side, side) == (4, 1, d.output_size(28), d.output_size(28))
    assert d.receptive_field() == rf


@pytest.mark.parametrize("layers", [[(4, 2, 1), (4, 2, 1), (4, 1, 1)], [(3, 1, 0), (4, 2, 1), (5, 3, 2)],
                                    [(4, 2, 1)] * 3 + [(4, 1, 1)] * 2])
def test_geometry_against_torch_and_autograd(layers):
    convs = nn.Sequential(*[nn.Conv2d(1, 1, k, s, p, bias=False) for k, s, p in layers])
    for c in convs:
        nn.init.constant_(c.weight, 1.0)
    for size in (28, 33, 64):
        assert convs(torch.zeros(1, 1, size, size)).shape[-1] == I.conv_output_size(size, layers)
    x = torch.zeros(1, 1, 128, 128, requires_grad=True)
    y = convs(x)
    c = y.shape[-1] // 2
    y[0, 0, c, c].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    assert int(rows.max() - rows.min() + 1) == I.receptive_field(layers)


def test_patch_discriminator_receptive_field_by_gradient():
    torch.manual_seed(0)
    d = I.PatchDiscriminator(1, width=4, n_down=2, n_extra=1, norm="none")   # no norm: it would mix all pixels
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    y = d(x)
    c = y.shape[-1] // 2
    y[0, 0, c, c].backward()
    cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero()
    assert int(cols.max() - cols.min() + 1) == d.receptive_field() == 34


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------
def test_l1_and_psnr_by_hand():
    a = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]], dtype=D64)
    b = torch.tensor([[[[0.1, 0.5], [0.8, 0.25]]]], dtype=D64)
    assert float(I.l1_loss(a, b)) == pytest.approx((0.1 + 0 + 0.2 + 0) / 4)
    mse = (0.01 + 0.04) / 4
    assert float(I.psnr(a, b)[0]) == pytest.approx(10 * math.log10(1 / mse))
    # an MSE of 0.01 is 20 dB, per image, whatever the other images do
    x = torch.zeros(2, 1, 4, 4)
    y = torch.stack([torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.01)])
    assert torch.allclose(I.psnr(y, x), torch.tensor([20.0, 40.0]), atol=1e-4)
    assert torch.isinf(I.psnr(x, x)).all()
    with pytest.raises(ValueError, match="shapes differ"):
        I.l1_loss(x, x[:1])


def test_pix2pix_loss_against_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 6, 6, generator=g, dtype=D64)
    fake, target = torch.rand(2, 3, 1, 28, 28, generator=g, dtype=D64)
    total, adv, l1 = I.pix2pix_generator_loss(logits, fake, target, lam=100.0)
    ref_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    assert torch.allclose(adv, ref_adv) and torch.allclose(l1, F.l1_loss(fake, target))
    assert torch.allclose(total, ref_adv + 100 * F.l1_loss(fake, target))


def test_lsgan_losses_by_hand():
    real, fake = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    assert float(I.lsgan_discriminator_loss(real, fake)) == pytest.approx(0.5 * ((0 + 0.25) / 2 + (0 + 1) / 2))
    assert float(I.lsgan_generator_loss(fake)) == pytest.approx((1 + 0) / 2)
    assert torch.allclose(I.adversarial_d_loss(real, fake, "bce"),
                          F.binary_cross_entropy_with_logits(real, torch.ones(2))
                          + F.binary_cross_entropy_with_logits(fake, torch.zeros(2)))
    with pytest.raises(ValueError, match="lsgan"):
        I.adversarial_g_loss(fake, "hinge")


def test_cycle_loss_is_zero_for_identity_maps_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 4, 3, 28, 28, generator=g)
    ident = nn.Identity()
    assert float(I.cycle_consistency_loss(a, ident(ident(a)))) == 0.0
    # an invertible pair (scale and its inverse) is also exact; a non-inverse pair is not
    G, Fm = (lambda x: 2 * x + 1), (lambda x: (x - 1) / 2)
    assert float(I.cycle_consistency_loss(a, Fm(G(a)))) == pytest.approx(0.0, abs=1e-6)
    c = float(I.cycle_consistency_loss(a, G(G(a))))
    assert c > 0 and c == pytest.approx(float((3 * a + 3).abs().mean()), rel=1e-6)
    # the full objective: only the adversarial terms remain for identity maps
    scores = torch.zeros(4, 1, 6, 6)
    total, parts = I.cyclegan_generator_loss(scores, scores, a, b, a, b, lambda_cycle=10.0, lambda_identity=5.0,
                                             idt_a=a, idt_b=b)
    assert parts["cycle_a"] == 0 and parts["cycle_b"] == 0 and parts["identity_a"] == 0
    assert float(total) == pytest.approx(2.0)                      # two LSGAN terms mean (0 - 1)^2 = 1
    total, parts = I.cyclegan_generator_loss(scores, scores, a, b, a + 0.1, b, lambda_cycle=10.0)
    assert float(parts["cycle_a"]) == pytest.approx(0.1, rel=1e-5) and float(total) == pytest.approx(3.0, rel=1e-5)
    with pytest.raises(ValueError, match="idt_a"):
        I.cyclegan_generator_loss(scores, scores, a, b, a, b, lambda_cycle=1.0, lambda_identity=1.0)


# ---------------------------------------------------------------------------
# image buffer
# ---------------------------------------------------------------------------
def test_image_buffer_fills_then_mixes_past_fakes():
    assert torch.equal(I.ImageBuffer(0).query(torch.ones(3, 1, 2, 2)), torch.ones(3, 1, 2, 2))
    buf = I.ImageBuffer(10, generator=torch.Generator().manual_seed(0))
    first = torch.arange(8.0).reshape(8, 1, 1, 1)
    assert torch.equal(buf.query(first), first) and len(buf) == 8       # filling: the new images come back
    second = 100 + torch.arange(8.0).reshape(8, 1, 1, 1)
    out = buf.query(second)
    assert torch.equal(out[:2], second[:2]) and len(buf) == 10          # two fill the pool, six may be swapped
    seen = set(first.flatten().tolist()) | set(second.flatten().tolist())
    assert set(out.flatten().tolist()) <= seen
    # in the long run half the returned images are old ones, and the pool keeps only images it was given
    old = 0
    for t in range(200):
        new = 1000 * (t + 1) + torch.arange(8.0).reshape(8, 1, 1, 1)
        old += int((buf.query(new) != new).sum())
    assert abs(old / 1600 - 0.5) < 0.05
    assert buf.images.shape == (10, 1, 1, 1) and (buf.images >= 0).all()
    # nothing is lost or duplicated: the returned images plus the pool are the old pool plus the new batch
    before = buf.images.flatten().tolist()
    new = -1 - torch.arange(8.0).reshape(8, 1, 1, 1)
    out = buf.query(new)
    assert sorted(out.flatten().tolist() + buf.images.flatten().tolist()) == sorted(before + new.flatten().tolist())
    # p = 0: always the new images; p = 1: always old ones once full
    assert torch.equal(I.ImageBuffer(2, p=0.0).query(first), first)
    full = I.ImageBuffer(8, p=1.0)
    full.query(first)
    assert not (full.query(second) >= 100).any()


# ---------------------------------------------------------------------------
# data for the recipes
# ---------------------------------------------------------------------------
def test_unpaired_batches_are_disjoint_resumable_and_restyled():
    imgs, _ = data.load("mnist", "test")
    ia, ib = T.unpaired_split(10_000, 64, 0)
    hue = T.domain_b_hues(64, 0)
    it = I.UnpairedBatches(imgs[ia], imgs[ib], hue, batch_size=16, device="cpu")
    assert len(it) == 4
    batches = list(it.batches(0))
    assert len(batches) == 4
    a, b = batches[0]
    assert a.shape == b.shape == (16, 3, 28, 28) and a.min() >= -1 and b.max() <= 1
    # each A batch is grey digits of A's images, each B batch restyled digits of B's
    grey = ((I.to_unit(a[:, 0]) * 255).round().to(torch.uint8))                        # (16, 28, 28)
    assert (grey[:, None] == imgs[ia][None]).flatten(2).all(2).any(1).all()
    back = ((T.to_classifier(I.to_unit(b), "B")[:, 0]) * 255).round().to(torch.uint8)
    assert (back[:, None] == imgs[ib][None]).flatten(2).all(2).any(1).all()
    assert not (back[:, None] == imgs[ia][None]).flatten(2).all(2).any(1).any()
    # resuming mid-epoch gives the same batches
    again = list(it.batches(0, 2))
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(again, batches[2:]))
    # the benchmark interface: one raw MNIST batch -> both domains
    a2, b2 = it.transform(imgs[:5])
    assert a2.shape == b2.shape == (5, 3, 28, 28)
    assert torch.allclose(T.to_classifier(I.to_unit(b2), "B"), data.to_float(imgs[:5]), atol=1e-5)


# ---------------------------------------------------------------------------
# recipes: smoke training and evaluation
# ---------------------------------------------------------------------------
TINY_P2P = dict(n_train=64, batch_size=16, width=4, depth=3, max_width=8, d_width=4, eval_n=32, eval_fid=False)
TINY_CYC = dict(n_train=64, batch_size=8, width=4, depth=3, max_width=8, d_width=4, eval_n=32, buffer=4)


@pytest.mark.parametrize("name,tiny", [("pix2pix-edges-fashion", TINY_P2P), ("pix2pix-edges-fashion-l1", TINY_P2P),
                                       ("cyclegan-mnist", TINY_CYC), ("cyclegan-mnist-nocycle", TINY_CYC)])
def test_recipes_train_and_evaluate(name, tiny, tmp_path):
    assert recipes._OWNERS[name] == "gencourse.img2img.recipes"
    torch.manual_seed(0)
    trainer, mods, cfg = recipes.build_trainer(name, tiny, log_every=2, progress=False)
    hist = trainer.fit(steps=4)
    assert len(hist) == 2 and all(math.isfinite(v) for vals in hist.values.values() for v in vals)
    for m in mods.values():
        m.eval()
    res = recipes.get(name).evaluate(mods, cfg, "cpu")
    assert res["eval_n"] == 32 and isinstance(res["protocol"], str)
    if name.startswith("pix2pix"):
        assert set(mods) == ({"generator", "discriminator"} if cfg["adversarial"] else {"generator"})
        assert 0 < res["l1"] < 1 and res["psnr"] > 0 and res["sharpness_ratio"] > 0 and "fid" not in res
    else:
        assert 0 <= res["content_ab"] <= 1 and 0 <= res["content_ba"] <= 1 and "cycle_a" in hist.values
        assert (cfg["lambda_cycle"] == 0) == name.endswith("nocycle")
    recipes.save_pretrained(name, mods, cfg, metrics=res, path=tmp_path / f"{name}.pt")
    back, ck = recipes.load_pretrained(name, path=tmp_path / f"{name}.pt")
    assert set(back) == set(mods) and ck.metrics["eval_n"] == 32


def test_cyclegan_recipe_data_follows_the_global_batch():
    cfg = recipes.get("cyclegan-mnist").config(n_train=64, batch_size=16)
    assert cfg["dataset"] == "mnist"
    it0 = recipes.get("cyclegan-mnist").data(cfg, torch.device("cpu"), 0, 2)
    it1 = recipes.get("cyclegan-mnist").data(cfg, torch.device("cpu"), 1, 2)
    (a0, _), (a1, _) = next(iter(it0)), next(iter(it1))
    assert a0.shape == (8, 3, 28, 28) and not torch.equal(a0, a1)


def test_content_preservation_of_the_true_translation():
    """The exact restyling (the 'perfect translator') preserves almost every digit; shuffling labels gives chance."""
    test = T.unpaired_mnist("test", 500, seed=0)
    images, _ = data.load("mnist", "test")
    exact_b = T.restyle(images[test.a_indices], torch.rand(500, generator=torch.Generator().manual_seed(0)))
    acc = float(I.content_preservation(exact_b, test.a_labels, "B"))
    assert acc > 0.97
    perm = torch.randperm(500, generator=torch.Generator().manual_seed(1))
    assert float(I.content_preservation(exact_b, test.a_labels[perm], "B")) < 0.2
    # a rotated domain B must be turned back before the classifier reads it
    rot_b = T.restyle(images[test.a_indices], torch.rand(500), rotate=True)
    assert float(I.content_preservation(rot_b, test.a_labels, "B", rotate=True)) > 0.97
    assert float(I.content_preservation(rot_b, test.a_labels, "B")) < 0.5


def test_gradient_energy_drops_with_blur():
    imgs, _ = data.load("fashion", "test")
    x = data.to_float(imgs[:64])
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    assert (I.gradient_energy(blurred) < I.gradient_energy(x)).all()
    assert float(I.gradient_energy(torch.full((1, 1, 5, 5), 0.3))) == 0.0


# ---------------------------------------------------------------------------
# exercise checks: the right answers pass, the usual mistakes get named
# ---------------------------------------------------------------------------
def test_checks_accept_correct_answers():
    assert check.cycle_loss(lambda a, b, g, f: I.cycle_consistency_loss(a, f(g(a))) + I.cycle_consistency_loss(b, g(f(b))))
    assert check.patch_geometry(lambda size, layers: (I.conv_output_size(size, layers), I.receptive_field(layers)))
    assert check.psnr(lambda out, tgt: I.psnr(out, tgt))
    assert check.pix2pix_loss(lambda logits, fake, target, lam: I.pix2pix_generator_loss(logits, fake, target, lam)[0])


def test_checks_name_the_usual_mistakes():
    with pytest.raises(checks.CheckFailed, match="only the A -> B -> A"):
        check.cycle_loss(lambda a, b, g, f: (f(g(a)) - a).abs().mean())
    with pytest.raises(checks.CheckFailed, match="L1"):
        check.cycle_loss(lambda a, b, g, f: (f(g(a)) - a).square().mean() + (g(f(b)) - b).square().mean())
    with pytest.raises(checks.CheckFailed, match="padding"):
        check.patch_geometry(lambda size, layers: (I.conv_output_size(size, [(k, s, 0) for k, s, _ in layers]),
                                                   I.receptive_field(layers)))
    with pytest.raises(checks.CheckFailed, match="strides"):
        check.patch_geometry(lambda size, layers: (I.conv_output_size(size, layers), 1 + sum(k - 1 for k, _, _ in layers)))
    with pytest.raises(checks.CheckFailed, match="log10"):
        check.psnr(lambda out, tgt: 10 * torch.log(1 / (out - tgt).square().flatten(1).mean(1)))
    with pytest.raises(checks.CheckFailed, match="one PSNR per image"):
        check.psnr(lambda out, tgt: 10 * torch.log10(1 / (out - tgt).square().mean()))
    with pytest.raises(checks.CheckFailed, match="lambda is missing"):
        check.pix2pix_loss(lambda logits, fake, target, lam: I.pix2pix_generator_loss(logits, fake, target, 1.0)[0])
    with pytest.raises(checks.CheckFailed, match="not written yet"):
        check.psnr(lambda out, tgt: (_ for _ in ()).throw(NotImplementedError()))


# ---------------------------------------------------------------------------
# shipped checkpoints
# ---------------------------------------------------------------------------
SHIPPED = ["pix2pix-edges-fashion", "pix2pix-edges-fashion-l1", "cyclegan-mnist", "cyclegan-mnist-nocycle"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoints_load_and_record_their_numbers(name):
    path = recipes.weights_path(name)
    assert path.is_file(), f"{path.name} is missing: train it with `python -m gencourse train {name} --ship`"
    mods, ck = recipes.load_pretrained(name)
    side = json.loads(path.with_name(path.name + ".json").read_text())
    assert side["metrics"]["device"] and side["command"] and path.stat().st_size < 5_000_000
    assert "protocol" in ck.metrics
    if name == "cyclegan-mnist":
        assert ck.metrics["content_ab"] >= 0.95


def test_load_or_train_trains_with_the_seed_in_full_mode():
    mods, cfg, info = I.load_or_train("cyclegan-mnist", 3, train=True, **TINY_CYC, steps=2)
    assert cfg["init_seed"] == 3 and info["steps"] == 2 and info["device"] == "cpu"
    assert not any(m.training for m in mods.values())
    assert I.pretrained_path("cyclegan-mnist", 0) == recipes.weights_path("cyclegan-mnist")
    assert I.pretrained_path("cyclegan-mnist", 2).name == "cyclegan-mnist-seed2.pt"
