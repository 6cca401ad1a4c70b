import io

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from gencourse import viz, widgets  # noqa: E402


def decode(z):
    """A toy decoder: image brightness = sigmoid(first coordinate), plus a bar whose row is set by the second."""
    z = z.reshape(len(z), -1)
    img = torch.sigmoid(z[:, :1, None, None]).expand(len(z), 1, 28, 28).clone()
    rows = ((z[:, 1].clamp(-3, 3) + 3) / 6 * 27).long() if z.shape[1] > 1 else torch.zeros(len(z), dtype=torch.long)
    img[torch.arange(len(z)), 0, rows] = 1.0
    return img


def png_size(data: bytes):
    return Image.open(io.BytesIO(data)).size


def test_to_png_scales_the_grid():
    data = widgets.to_png(torch.rand(2, 1, 28, 28), nrow=2, scale=3)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = png_size(data)
    assert (w, h) == (3 * (2 * 28 + 3 * 2), 3 * (28 + 2 * 2))


def test_latent_sliders_decode_live_without_a_display():
    z0 = torch.tensor([0.0, 0.0, 0.5])
    ctl = widgets.latent_sliders(decode, z0, dims=[0, 1])
    assert set(ctl.controls) == {"z0", "z1"} and ctl.controls["z0"].value == 0.0
    first = ctl.image.value
    assert int(ctl.image.width) == png_size(first)[0]  # shown at the PNG's size, not stretched
    out = ctl.set(z0=2.0)  # moving a slider redraws
    assert ctl.image.value != first
    assert torch.allclose(out, decode(torch.tensor([[2.0, 0.0, 0.5]])))
    ctl.controls["z1"].value = -1.0  # the observer fires as in a browser
    assert torch.allclose(ctl.images, decode(torch.tensor([[2.0, -1.0, 0.5]])))
    frames = ctl.sweep("z0", [-1.0, 0.0, 1.0])
    assert len(frames) == 3 and torch.allclose(frames[2], decode(torch.tensor([[1.0, -1.0, 0.5]])))
    with pytest.raises(KeyError, match="z5"):
        ctl.set(z5=1.0)


def test_interpolation_slider_endpoints_and_paths():
    za, zb = torch.tensor([-2.0, 1.0]), torch.tensor([2.0, -1.0])
    ctl = widgets.interpolation_slider(decode, za, zb)
    imgs = ctl.set(t=0.0)
    assert imgs.shape == (3, 1, 28, 28) and torch.allclose(imgs[1], imgs[0])
    assert torch.allclose(ctl.set(t=1.0)[1], ctl.images[2])
    assert torch.allclose(widgets.lerp(za, zb, 0.25), torch.tensor([-1.0, 0.5]))
    s = widgets.slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]), 0.5)
    assert torch.allclose(s, torch.tensor([2**-0.5, 2**0.5]), atol=1e-6)  # on the arc, halfway in angle
    frames = widgets.interpolation_slider(decode, za, zb, spherical=True).sweep("t", [0.0, 0.5, 1.0])
    assert len(frames) == 3


def test_attribute_slider_moves_codes_along_the_vector():
    z = torch.zeros(4, 2)
    v = torch.tensor([1.0, 0.0])
    ctl = widgets.attribute_slider(decode, z, v)
    assert torch.allclose(ctl.set(alpha=1.5), decode(z + 1.5 * v))
    assert widgets.traversal(torch.zeros(3), 1, [0.5, 1.0]).tolist() == [[0, 0.5, 0], [0, 1.0, 0]]


def test_model_comparison_caches_and_sweeps_every_option():
    calls = []

    def make(b):
        def render():
            calls.append(b)
            return torch.full((2, 1, 28, 28), b / 10)
        return render

    ctl = widgets.model_comparison({str(b): make(b) for b in (1, 4, 9)}, label="beta",
                                   caption={"1": "one", "4": "four", "9": "nine"})
    assert ctl.text.value == "one"
    ctl.set(beta="9")
    ctl.set(beta="1")
    assert calls == [1, 9] and ctl.text.value == "one"
    frames = ctl.sweep("beta")
    assert [float(f[0, 0, 0, 0]) for f in frames] == pytest.approx([0.1, 0.4, 0.9])


def test_static_counterparts_render():
    ctl = widgets.latent_sliders(decode, torch.zeros(2))
    frames = ctl.sweep("z0", [-2.0, 0.0, 2.0])
    html = viz.animate_frames([f[0] for f in frames], titles=["a", "b", "c"])
    assert "data:image/png;base64" in html.data
    fig = viz.frame_strip([f[0] for f in frames], labels=["a", "b", "c"])
    assert len(fig.axes) == 3
    matplotlib.pyplot.close("all")
    with pytest.raises(ValueError, match="at least one control"):
        widgets.ImageControls(lambda: torch.zeros(1, 1, 2, 2), {})
