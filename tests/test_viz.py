import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from gencourse import viz  # noqa: E402
from gencourse.train import History  # noqa: E402


def test_image_grid_matches_make_grid():
    x = torch.rand(6, 1, 28, 28)
    grid = viz.image_grid(x, nrow=3)
    ref = make_grid(x, nrow=3, padding=2, pad_value=1.0).permute(1, 2, 0).numpy()
    assert grid.shape == ref.shape and abs(grid - ref).max() < 1e-6


def test_image_grid_accepts_layouts_and_ranges():
    flat = torch.rand(4, 784)
    assert viz.image_grid(flat, nrow=2).shape == viz.image_grid(flat.view(4, 28, 28), nrow=2).shape
    u8 = (torch.rand(4, 28, 28) * 255).to(torch.uint8)
    assert viz.image_grid(u8).max() <= 1.0
    signed = torch.full((1, 1, 4, 4), -1.0)
    assert viz.image_grid(signed, value_range=(-1, 1), padding=0).max() == 0.0
    with pytest.raises(ValueError, match="square"):
        viz.image_grid(torch.rand(2, 10))


def test_figures_build_without_display():
    ax = viz.show_images(torch.rand(8, 1, 28, 28), nrow=4, title="t")
    assert ax.get_title() == "t"
    h = History()
    for i in range(3):
        h.append(i, i * 0.1, {"loss": 1.0 / (i + 1)})
    assert len(viz.plot_history(h).lines) == 1
    ax = viz.latent_scatter(torch.randn(50, 2), torch.randint(0, 3, (50,)), class_names=["a", "b", "c"])
    assert len(ax.get_legend().get_texts()) == 3
    with pytest.raises(ValueError, match="shape \\(N, 2\\)"):
        viz.latent_scatter(torch.randn(5, 3))
    fig = viz.frame_strip([torch.rand(28, 28) for _ in range(4)], labels=list("abcd"))
    assert len(fig.axes) == 4
    grid = viz.frame_strip([torch.rand(28, 56) for _ in range(5)], labels=list("abcde"), ncols=2)
    axes = grid.axes
    assert len(axes) == 6 and [a.get_title() for a in axes] == list("abcde") + [""]   # 3 rows of 2, last empty
    assert axes[1].get_position().y0 == pytest.approx(axes[0].get_position().y0)        # a and b side by side
    assert axes[2].get_position().y0 < axes[0].get_position().y0                        # c below a
    w, h = grid.get_size_inches()
    assert w == pytest.approx(2 * 1.1) and h > 3 * 1.1 * 0.5                           # panels keep their aspect
    plt.close("all")


def test_animation_is_self_contained_html():
    html = viz.animate_frames([torch.rand(28, 28) for _ in range(3)], titles=["0", "1", "2"])
    text = html.data
    assert "<script" in text and "data:image/png;base64" in text
    assert "https://" not in text and "http://" not in text  # no CDN assets: works offline
    with pytest.raises(ValueError):
        viz.animate_frames([])
