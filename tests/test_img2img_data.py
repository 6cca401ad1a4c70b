"""Chapter 5 tasks: edge maps against a hand-computed step edge, colours against the standard library's
HSV conversion, the restyling undone exactly, and determinism and disjointness of the built datasets."""
import colorsys

import pytest
import torch

from gencourse import data
from gencourse.img2img import tasks as T


def test_edge_map_of_a_vertical_step():
    x = torch.zeros(1, 1, 28, 28)
    x[..., 14:] = 1.0                                   # a vertical step between columns 13 and 14
    e = T.edge_map(x)
    assert e.shape == (1, 1, 28, 28) and set(e.unique().tolist()) <= {0.0, 1.0}
    # Sobel x / 4 on the step: (1 + 2 + 1) / 4 = 1 at columns 13 and 14, 0 elsewhere (interior rows) but at
    # the right border, where the ones meet the zero padding
    inner = e[0, 0, 1:-1]
    assert inner[:, [13, 14, 27]].eq(1).all() and inner[:, :13].eq(0).all() and inner[:, 15:27].eq(0).all()
    # a constant image has no interior edges
    assert T.edge_map(torch.full((1, 1, 28, 28), 0.7))[..., 1:-1, 1:-1].eq(0).all()


def test_edge_map_accepts_uint8_like_float():
    imgs, _ = data.load("mnist", "test")
    assert torch.equal(T.edge_map(imgs[:8]), T.edge_map(data.to_float(imgs[:8])))


def test_edges_to_images_is_deterministic_and_aligned():
    p1 = T.edges_to_images("fashion", "test", 200, seed=3)
    p2 = T.edges_to_images("fashion", "test", 200, seed=3)
    p3 = T.edges_to_images("fashion", "test", 200, seed=4)
    assert torch.equal(p1.source, p2.source) and torch.equal(p1.target, p2.target) and torch.equal(p1.labels, p2.labels)
    assert not torch.equal(p1.indices, p3.indices)
    assert p1.source.shape == p1.target.shape == (200, 1, 28, 28) and len(p1) == 200
    assert p1.target.min() >= 0 and p1.target.max() <= 1 and set(p1.source.unique().tolist()) <= {0.0, 1.0}
    images, labels = data.load("fashion", "test")
    assert torch.equal(p1.target, data.to_float(images[p1.indices])) and torch.equal(p1.labels, labels[p1.indices])
    assert torch.equal(p1.source, T.edge_map(p1.target))
    full = T.edges_to_images("mnist", "test")
    assert len(full) == 10_000 and torch.equal(full.indices, torch.arange(10_000))


def test_hue_to_rgb_matches_colorsys():
    hue = torch.tensor([0.0, 0.1, 1 / 6, 0.33, 0.5, 0.61, 0.8, 0.999], dtype=torch.float64)
    ref = torch.tensor([colorsys.hsv_to_rgb(float(h), 1.0, 1.0) for h in hue], dtype=torch.float64)
    got = T.hue_to_rgb(hue)
    assert torch.allclose(got, ref, atol=1e-12)
    assert torch.allclose(got.amax(1), torch.ones(8, dtype=torch.float64))


def test_restyle_is_undone_by_to_classifier():
    imgs, _ = data.load("mnist", "test")
    x = data.to_float(imgs[:16])
    hue = torch.rand(16, generator=torch.Generator().manual_seed(0))
    b = T.restyle(imgs[:16], hue)
    assert b.shape == (16, 3, 28, 28) and b.min() >= 0 and b.max() <= 1
    assert torch.allclose(b / T.hue_to_rgb(hue)[:, :, None, None].clamp_min(1e-12) * (b > 0), x.expand_as(b) * (b > 0))
    assert torch.allclose(T.to_classifier(b, "B"), x)                           # undone exactly
    r = T.restyle(imgs[:16], hue, rotate=True)
    assert not torch.allclose(r.amax(1, keepdim=True), x)                        # rotated ...
    assert torch.allclose(r.amax(1, keepdim=True), torch.rot90(x, 1, (2, 3)))  # ... anticlockwise
    assert torch.allclose(T.to_classifier(r, "B", rotate=True), x)
    assert torch.allclose(T.to_classifier(T.grey_to_rgb(x), "A"), x)
    # colour direction: a red digit has only a red channel
    red = T.restyle(imgs[:1], torch.zeros(1))
    assert red[:, 1:].eq(0).all() and red[:, 0].max() == 1
    with pytest.raises(ValueError, match="domain"):
        T.to_classifier(b, "C")
    with pytest.raises(ValueError, match="one hue per image"):
        T.restyle(imgs[:4], torch.zeros(3))


def test_unpaired_mnist_is_deterministic_and_disjoint():
    u1 = T.unpaired_mnist("test", 300, seed=1)
    u2 = T.unpaired_mnist("test", 300, seed=1)
    u3 = T.unpaired_mnist("test", 300, seed=2)
    assert torch.equal(u1.a, u2.a) and torch.equal(u1.b, u2.b) and torch.equal(u1.b_hue, u2.b_hue)
    assert not torch.equal(u1.a_indices, u3.a_indices)
    assert u1.a.shape == u1.b.shape == (300, 3, 28, 28) and len(u1) == 300
    assert torch.equal(u1.a[:, 0], u1.a[:, 1]) and torch.equal(u1.a[:, 1], u1.a[:, 2])     # grey in 3 channels
    full = T.unpaired_mnist("test", seed=0)
    ia, ib = set(full.a_indices.tolist()), set(full.b_indices.tolist())
    assert len(ia) == len(ib) == 5000 and not ia & ib                                       # disjoint images
    images, labels = data.load("mnist", "test")
    assert torch.equal(full.b_labels, labels[full.b_indices])
    assert torch.allclose(T.to_classifier(full.b[:50], "B"), data.to_float(images[full.b_indices[:50]]))
    with pytest.raises(ValueError, match="share no image"):
        T.unpaired_mnist("test", 6000)
