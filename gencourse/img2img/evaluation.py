"""Using and measuring a translator (Chapter 5): :func:`translate`, sharpness (:func:`gradient_energy`),
content preservation read by the MNIST classifier, and the held-out metrics of the recipes
(:func:`evaluate_pix2pix`, :func:`evaluate_cyclegan`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import tasks
from .losses import psnr
from .networks import to_signed, to_unit


@torch.no_grad()
def translate(generator: nn.Module, images: Tensor, *, device: torch.device | str | None = None,
              batch_size: int = 1000) -> Tensor:
    """Run ``generator`` on images in [0, 1] (N, C, 28, 28), in eval mode; returns [0, 1] images on the CPU."""
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    out = [to_unit(generator(to_signed(images[i:i + batch_size].to(device))).float()).cpu()
           for i in range(0, images.shape[0], batch_size)]
    generator.train(was_training)
    return torch.cat(out)


def gradient_energy(images: Tensor) -> Tensor:
    """Sharpness of each image: the mean squared difference between horizontally and vertically adjacent
    pixels (a finite-difference gradient energy).  Images (N, C, H, W) in [0, 1]; returns (N,).
    Blurring lowers it; compare a model's outputs with the real images of the same inputs."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).square().flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).square().flatten(1).mean(1)
    return dx + dy


def content_preservation(translated: Tensor, labels: Tensor, domain: str, *, rotate: bool = False,
                         device: torch.device | str = "cpu"):
    """Share of translated images whose digit the MNIST domain classifier reads as the input's label.

    ``translated``: images of ``domain`` ("A" or "B"), (N, 3, 28, 28) in [0, 1]; ``labels``:
    the digits of the *inputs*.  Converted with :func:`gencourse.img2img.tasks.to_classifier`
    (grey = max over channels; a rotated domain B, ``rotate=True``, is turned back), scored by
    :func:`gencourse.metrics.class_accuracy` (returns its :class:`~gencourse.metrics.Result`;
    chance is about 0.1).
    """
    from ..metrics import distances

    return distances.class_accuracy(tasks.to_classifier(translated, domain, rotate=rotate), labels, "mnist",
                                    device=device)


@torch.no_grad()
def evaluate_pix2pix(generator: nn.Module, pairs: tasks.PairedSet, *, fid: bool = True,
                     device: torch.device | str = "cpu") -> dict:
    """Held-out metrics of an edges -> image generator on ``pairs`` (use the test split):

    ``l1`` (mean |G(x) - y| over pixels and images, images in [0, 1]), ``psnr`` (dB, mean of the
    per-image PSNR), ``sharpness_ratio`` (mean :func:`gradient_energy` of the outputs over that of
    the true images: 1 is as sharp as real, blur gives < 1), and ``fid`` of the outputs against
    the dataset's test split in the domain classifier's feature space (:func:`gencourse.metrics.fid`)
    with its real-vs-real ``fid_floor`` at the same n (skipped with ``fid=False``: the test-set
    features take some seconds on a CPU the first time).  ``protocol`` says all this in one string.
    """
    from ..metrics import distances
    from ..metrics.protocol import real_floor

    out = translate(generator, pairs.source, device=device)
    target = pairs.target
    n = len(pairs)
    res = {"l1": float((out - target).abs().mean()), "psnr": float(psnr(out, target).mean()),
           "sharpness_ratio": float(gradient_energy(out).mean() / gradient_energy(target).mean()), "eval_n": n}
    protocol = (f"{n} held-out {pairs.dataset} {pairs.split} pairs (edges -> image), images in [0, 1]: L1 = mean "
                "|G(x) - y| over pixels and images; PSNR = mean over images of 10 log10(1 / MSE_i) dB; "
                "sharpness ratio = mean gradient energy of outputs / of true images")
    if fid:
        f = distances.fid(out, pairs.dataset, device=device)
        res.update(fid=float(f), fid_floor=float(real_floor(pairs.dataset, n, device=device)[n]["fid"]))
        protocol += "; " + f.protocol
    res["protocol"] = protocol
    return res


@torch.no_grad()
def evaluate_cyclegan(g_ab: nn.Module, g_ba: nn.Module, test: tasks.UnpairedSet, *, rotate: bool = False,
                      device: torch.device | str = "cpu") -> dict:
    """Content preservation on held-out digits (``test``: :func:`~gencourse.img2img.tasks.unpaired_mnist` of the
    test split): the share of translations whose digit the MNIST classifier reads as the input's label,
    A -> B (``content_ab``), B -> A (``content_ba``) and after the round trip A -> B -> A (``content_aba``),
    plus the round trip's L1 (``cycle_l1_a``, images in [0, 1]).  Chance is about 0.1."""
    fake_b = translate(g_ab, test.a, device=device)
    fake_a = translate(g_ba, test.b, device=device)
    rec_a = translate(g_ba, fake_b, device=device)
    acc = lambda x, y, d: float(content_preservation(x, y, d, rotate=rotate, device=device))  # noqa: E731
    n = len(test)
    return {
        "content_ab": acc(fake_b, test.a_labels, "B"), "content_ba": acc(fake_a, test.b_labels, "A"),
        "content_aba": acc(rec_a, test.a_labels, "A"), "cycle_l1_a": float((rec_a - test.a).abs().mean()),
        "eval_n": n,
        "protocol": (f"{n} held-out MNIST test digits per domain (disjoint halves of the test split); translated "
                     "images converted to grey (max over RGB)" + (" and domain B turned upright" if rotate else "")
                     + ", then scored by classifier-mnist: share read as the input's digit (chance ~0.1)"),
    }
