"""Half-precision inference (issue 20, item 7): :func:`gencourse.train.amp.inference` is the one rule
for every sampling and evaluation forward (recipe samplers, the U-Net of Chapters 6 and 8 through
``unet.guided``, the feature classifier of the metrics).  On CUDA it autocasts to bf16 (fp16 on a T4);
on the CPU it changes nothing by default.  Here the T4's fp16 path runs on the CPU
(``set_inference_amp("fp16")``) and is compared with the float32 forward of the same draw."""
import pytest
import torch

from gencourse import data, metrics, recipes
from gencourse.train import amp


@pytest.fixture
def precision():
    previous = amp.set_inference_amp("auto")
    yield amp.set_inference_amp
    amp.set_inference_amp(previous)


def test_the_rule_float32_on_the_cpu_unless_forced(precision):
    assert amp.inference_dtype("cpu") is None
    precision("fp16")
    assert amp.inference_dtype("cpu") == torch.float16
    precision(False)
    assert amp.inference_dtype("cpu") is None
    with pytest.raises(ValueError, match="amp must be"):
        precision("fp8")


def _draw(name, n=64):
    modules, ck = recipes.load_pretrained(name)
    out = recipes.get(name).sample(modules, ck.config, n, "cpu", torch.Generator().manual_seed(0))
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", ["dcgan-mnist", "cgan-fashion", "vae-mnist"])
def test_recipe_samples_in_fp16_stay_close_to_float32(name, precision):
    precision(False)
    x32 = _draw(name)
    precision("auto")
    assert torch.equal(_draw(name), x32)       # the CPU default is float32, bit for bit
    precision("fp16")
    x16 = _draw(name)
    assert x16.dtype == torch.float32          # outputs come back in float32
    diff = (x16 - x32).abs()
    # fp16 keeps 11 significant bits (unit roundoff 4.9e-4); a few layers compound it to ~1e-3 per pixel
    assert 0 < float(diff.max()) < 0.05 and float(diff.mean()) < 5e-3, (float(diff.max()), float(diff.mean()))


def test_guided_unet_forward_in_fp16_matches_float32(precision):
    """Chapter 8's guided velocity (two predictions from one batched call) through unet.guided."""
    modules, ck = recipes.load_pretrained("fm-mnist")
    fm = modules["ema"] if "ema" in modules else next(iter(modules.values()))
    g = torch.Generator().manual_seed(0)
    x, t, y = torch.randn(8, 1, 28, 28, generator=g), torch.rand(8, generator=g), torch.arange(8) % 10
    precision(False)
    with torch.no_grad():
        v32 = fm.velocity(x, t, y, guidance_scale=1.5)
    precision("fp16")
    with torch.no_grad():
        v16 = fm.velocity(x, t, y, guidance_scale=1.5)
    assert v16.dtype == torch.float32
    rel = float((v16 - v32).norm() / v32.norm())
    assert 0 < rel < 1e-2, rel


def test_features_and_fid_in_fp16_match_float32(precision):
    train, _ = data.load("mnist", "train")
    test, _ = data.load("mnist", "test")
    fake, real = data.to_float(train[:500]), data.to_float(test[:500])
    out = {}
    for setting in (False, "fp16"):
        precision(setting)
        e_fake, e_real = metrics.embed(fake, "mnist"), metrics.embed(real, "mnist")
        out[setting] = (e_fake.features, metrics.fid(e_fake, "mnist", real=e_real).fid)
    f32, fid32 = out[False]
    f16, fid16 = out["fp16"]
    assert 0 < float((f16 - f32).norm() / f32.norm()) < 1e-2
    assert abs(fid16 - fid32) < 0.02 * fid32, (fid16, fid32)
