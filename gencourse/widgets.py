"""Interactive widgets (``ipywidgets``) for exploring generative models, and their static counterparts.

The generic piece is :class:`ImageControls`: a set of controls (sliders,
dropdowns) whose values go to a ``render(**values) -> images`` function, the
images being redrawn live as a PNG. Everything a chapter needs is a ``render``
function plus controls, e.g. a guidance-scale slider for diffusion or a
latent-walk for a GAN. Widgets are built without a display (they are plain
Python objects until shown), so they can be tested.

A widget only moves in a live kernel; the book shows its saved state. Each
widget therefore has :meth:`ImageControls.sweep`, which renders a list of frames
along one control, for :func:`gencourse.viz.animate_frames` (a scrubbable
animation without a kernel) or :func:`gencourse.viz.frame_strip`.

Latent-variable helpers (Chapters 1-2, reusable for any decoder ``z -> images``):
:func:`latent_sliders`, :func:`interpolation_slider`, :func:`attribute_slider`,
:func:`model_comparison`, and :func:`lerp` / :func:`slerp` / :func:`traversal`.
"""
from __future__ import annotations

import io
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["to_png", "ImageControls", "lerp", "slerp", "traversal", "latent_sliders", "interpolation_slider",
           "attribute_slider", "model_comparison"]

Decoder = Callable[[Tensor], Tensor]  # codes (B, d) -> images (B, C, H, W) in [0, 1]


def to_png(images: Tensor, *, nrow: int = 8, scale: int = 3, value_range: tuple = (0.0, 1.0)) -> bytes:
    """PNG bytes of a grid of images (any layout :func:`gencourse.viz.image_grid` accepts), enlarged ``scale`` times."""
    from PIL import Image

    from .viz import image_grid

    grid = image_grid(images, nrow=nrow, value_range=value_range)          # (H, W, C) in [0, 1]
    arr = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class ImageControls:
    """Controls whose values are passed to ``render(**values)``; the returned images are shown live.

    Parameters
    ----------
    render:
        Function of the controls' values (by name) returning images (N, C, H, W) in ``value_range``.
    controls:
        ``{name: ipywidget}`` with a ``.value`` (e.g. ``FloatSlider``, ``SelectionSlider``).
    caption:
        Optional function of the values returning a line of text shown under the images.

    ``widget`` is the ipywidgets container; displaying the object displays it.
    """

    def __init__(self, render: Callable[..., Tensor], controls: Mapping[str, object], *, nrow: int = 8,
                 scale: int = 3, value_range: tuple = (0.0, 1.0), title: str | None = None,
                 caption: Callable[[dict], str] | None = None):
        import ipywidgets as w

        if not controls:
            raise ValueError("ImageControls needs at least one control")
        self.render, self.controls = render, dict(controls)
        self.nrow, self.scale, self.value_range, self.caption = nrow, scale, value_range, caption
        self.image = w.Image(format="png")
        self.text = w.HTML()
        for c in self.controls.values():
            c.observe(self._changed, names="value")
        head = [w.HTML(f"<b>{title}</b>")] if title else []
        self.widget = w.VBox(head + [w.VBox(list(self.controls.values())), self.image, self.text])
        self.images: Tensor | None = None
        self.update()

    @property
    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def _changed(self, change) -> None:
        self.update()

    @torch.no_grad()
    def update(self) -> Tensor:
        """Render with the current values and show the result; returns the images."""
        values = self.values
        self.images = self.render(**values).detach().cpu()
        png = to_png(self.images, nrow=self.nrow, scale=self.scale, value_range=self.value_range)
        self.image.value = png
        self.image.width = str(int.from_bytes(png[16:20], "big"))   # the PNG's own width (IHDR), not the page's
        if self.caption is not None:
            self.text.value = self.caption(values)
        return self.images

    def set(self, **values) -> Tensor:
        """Set controls by name (as a user would) and return the redrawn images."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise KeyError(f"no control(s) {unknown}; this widget has {sorted(self.controls)}")
        for k, v in values.items():
            self.controls[k].value = v
        return self.update()

    @torch.no_grad()
    def sweep(self, name: str, values: Sequence | None = None, **fixed) -> list[Tensor]:
        """Frames along control ``name`` (default: every option of a selection control), the
        others at their current values or ``fixed``: the static counterpart of the widget."""
        if name not in self.controls:
            raise KeyError(f"no control {name!r}; this widget has {sorted(self.controls)}")
        if values is None:
            options = getattr(self.controls[name], "options", None)
            if options is None:
                raise ValueError(f"give the values of {name!r} to sweep over")
            values = [o[1] if isinstance(o, tuple) else o for o in options]
        base = dict(self.values, **fixed)
        return [self.render(**dict(base, **{name: v})).detach().cpu() for v in values]

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------- latent paths
def lerp(z_a: Tensor, z_b: Tensor, t: float | Tensor) -> Tensor:
    """Straight line ``(1 - t) z_a + t z_b``."""
    return (1 - t) * z_a + t * z_b


def slerp(z_a: Tensor, z_b: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation along the last dimension: keeps the norm typical of Gaussian codes."""
    a, b = z_a / z_a.norm(dim=-1, keepdim=True), z_b / z_b.norm(dim=-1, keepdim=True)
    omega = torch.arccos((a * b).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * z_a + (torch.sin(t * omega) / so) * z_b


def traversal(z0: Tensor, dim: int, values: Sequence[float]) -> Tensor:
    """Copies of the code ``z0`` (d,) with coordinate ``dim`` set to each value: shape (len(values), d)."""
    z = z0.reshape(1, -1).repeat(len(values), 1)
    z[:, dim] = torch.as_tensor(list(values), dtype=z.dtype)
    return z


def _slider(name, lo, hi, step, value):
    import ipywidgets as w

    return w.FloatSlider(value=value, min=lo, max=hi, step=step, description=name, continuous_update=True,
                         readout_format=".2f", layout=w.Layout(width="340px"))


def latent_sliders(decode: Decoder, z0: Tensor, dims: Sequence[int] | None = None, *, lim: float = 3.0,
                   names: Sequence[str] | None = None, scale: int = 5) -> ImageControls:
    """One slider per latent dimension in ``dims`` (default all), starting at ``z0`` (d,); decodes live.

    The sweep of control ``"z<j>"`` is a traversal of dimension j.
    """
    z0 = z0.detach().reshape(-1).cpu().float()
    dims = list(range(z0.numel())) if dims is None else [int(d) for d in dims]
    keys = [f"z{j}" for j in dims]
    labels = list(names) if names is not None else keys
    controls = {k: _slider(lab, -lim, lim, 0.05, float(z0[j])) for k, lab, j in zip(keys, labels, dims)}

    def render(**vals):
        z = z0.clone()
        for k, j in zip(keys, dims):
            z[j] = vals[k]
        return decode(z[None])

    return ImageControls(render, controls, nrow=1, scale=scale, title="latent sliders")


def interpolation_slider(decode: Decoder, z_a: Tensor, z_b: Tensor, *, spherical: bool = False,
                         steps: int = 20, scale: int = 5) -> ImageControls:
    """Slider ``t`` in [0, 1] morphing from code ``z_a`` (t = 0) to ``z_b`` (t = 1), with the endpoints shown."""
    z_a, z_b = z_a.detach().reshape(-1).cpu().float(), z_b.detach().reshape(-1).cpu().float()
    path = slerp if spherical else lerp
    ends = None

    def render(t):
        nonlocal ends
        if ends is None:
            ends = decode(torch.stack([z_a, z_b]))
        return torch.cat([ends[:1], decode(path(z_a, z_b, float(t))[None]), ends[1:]])

    return ImageControls(render, {"t": _slider("t", 0.0, 1.0, 1.0 / steps, 0.0)}, nrow=3, scale=scale,
                         title="interpolation (start, z(t), end)")


def attribute_slider(decode: Decoder, z: Tensor, v: Tensor, *, lim: float = 2.0, scale: int = 4,
                     name: str = "alpha") -> ImageControls:
    """Slider ``alpha`` decoding ``z + alpha * v`` for a batch of codes ``z`` (B, d) and a direction ``v`` (d,)."""
    z, v = z.detach().reshape(-1, v.numel()).cpu().float(), v.detach().reshape(1, -1).cpu().float()
    return ImageControls(lambda alpha: decode(z + alpha * v), {"alpha": _slider(name, -lim, lim, 0.1, 0.0)},
                         nrow=min(len(z), 8), scale=scale, title="z + alpha * v")


def model_comparison(renders: Mapping[str, Callable[[], Tensor]], *, label: str = "model", nrow: int = 8,
                     scale: int = 2, caption: Mapping[str, str] | None = None) -> ImageControls:
    """A selection slider over named models; ``renders[name]()`` returns that model's images.

    Used for the beta comparison of Chapter 2 (one VAE per beta). Renders are cached.
    """
    import ipywidgets as w

    names = list(renders)
    cache: dict = {}

    def render(**vals):
        key = vals[label]
        if key not in cache:
            cache[key] = renders[key]()
        return cache[key]

    control = w.SelectionSlider(options=names, value=names[0], description=label, continuous_update=True)
    cap = (lambda vals: caption.get(vals[label], "")) if caption is not None else None
    return ImageControls(render, {label: control}, nrow=nrow, scale=scale, caption=cap)


# ===========================================================================================
# Chapter 6: diffusion (schedule explorer, guidance-scale slider, denoising animation).
# Appended by the diffusion chapter; it uses only ImageControls from the part above.
# ===========================================================================================
def _noised(x0: Tensor, eps: Tensor, abar: float) -> Tensor:
    """q(x_t | x_0) for images in [0, 1] (mapped to [-1, 1]), shown back in [0, 1] (clamped)."""
    x_t = abar ** 0.5 * (2 * x0 - 1) + (1 - abar) ** 0.5 * eps
    return ((x_t + 1) / 2).clamp(0, 1)


def schedule_explorer(x0: Tensor, alpha_bars: Mapping[str, Tensor], *, noise: Tensor | None = None,
                      t: int = 250, scale: int = 3, generator: torch.Generator | None = None) -> ImageControls:
    """A slider over the step ``t``: images ``x0`` (N, 1, H, W) in [0, 1] noised to step t by
    ``q(x_t | x_0)`` under each schedule (one row per entry of ``alpha_bars``, name -> (T,)), all
    with the same noise; the caption gives alpha-bar_t and the SNR of each schedule.

    ``explorer.sweep("t", [0, 100, ...])`` gives the frames of the static counterpart.
    """
    import ipywidgets as w

    x0 = x0.detach().float().cpu()
    names = list(alpha_bars)
    abars = {k: torch.as_tensor(v).double().cpu() for k, v in alpha_bars.items()}
    T = len(abars[names[0]])
    eps = torch.randn(x0.shape, generator=generator) if noise is None else noise.detach().float().cpu()

    def render(t):
        return torch.cat([_noised(x0, eps, float(abars[k][int(t)])) for k in names])   # (len(names) * N, 1, H, W)

    def caption(values):
        t_ = int(values["t"])
        parts = []
        for k in names:
            a = float(abars[k][t_])
            snr = a / (1 - a) if a < 1 else float("inf")
            parts.append(f"<b>{k}</b>: &#x101;<sub>t</sub> = {a:.3f}, SNR = {snr:.3g} ({10 * np.log10(max(snr, 1e-12)):.1f} dB)")
        return f"t = {t_} (rows: {', '.join(names)})<br>" + "<br>".join(parts)

    slider = w.IntSlider(value=t, min=0, max=T - 1, step=1, description="t", continuous_update=True,
                         layout=w.Layout(width="420px"))
    return ImageControls(render, {"t": slider}, nrow=len(x0), scale=scale, caption=caption,
                         title="forward process: x_t ~ q(x_t | x_0) per schedule")


def guidance_slider(diffusion, labels: Tensor, scales: Sequence[float] = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0), *,
                    steps: int = 20, x_T: Tensor | None = None, generator: torch.Generator | None = None,
                    nrow: int = 10, scale: int = 2) -> ImageControls:
    """A selection slider over classifier-free guidance scales: samples of ``diffusion``
    (a :class:`gencourse.diffusion.GaussianDiffusion`) for ``labels`` with DDIM (``steps``, eta 0)
    from the *same* starting noise, so only the scale changes.  Renders are cached.
    ``sweep("scale")`` gives one frame per scale (the static counterpart)."""
    import ipywidgets as w

    labels = torch.as_tensor(labels).long()
    if x_T is None:
        x_T = torch.randn((len(labels), *diffusion.image_shape), generator=generator)
    cache: dict = {}

    def render(scale):
        s = float(scale)
        if s not in cache:
            cache[s] = diffusion.sample(len(labels), labels=labels, guidance_scale=s, sampler="ddim",
                                        steps=steps, x_T=x_T).cpu()
        return cache[s]

    control = w.SelectionSlider(options=[float(s) for s in scales], value=float(scales[0]),
                                description="guidance", continuous_update=False)
    return ImageControls(render, {"scale": control}, nrow=nrow, scale=scale,
                         caption=lambda v: f"eps = eps(x, null) + {v['scale']:g} (eps(x, y) - eps(x, null)); "
                                           f"labels {labels.tolist()[:nrow]}{' ...' if len(labels) > nrow else ''}")


def denoising_animation(frames: Sequence, *, interval: int = 200, figsize=(7.0, 1.9)):
    """Kernel-free animation of the reverse process from ``sample(..., frames=k)`` snapshots
    ``(t, x_t, x0_hat)``: the top row is x_t, the bottom row the current prediction of x_0."""
    from .viz import animate_frames, image_grid

    if not frames:
        raise ValueError("no frames: call diffusion.sample(..., frames=k) with k > 0")

    def draw(ax, frame):
        t, x_t, x0 = frame
        ax.imshow(image_grid(torch.cat([x_t, x0]), nrow=len(x_t)), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"step t = {t}: x_t (top), predicted x_0 (bottom)", fontsize=9)

    return animate_frames(list(frames), draw=draw, interval=interval, figsize=figsize)


__all__ += ["schedule_explorer", "guidance_slider", "denoising_animation"]


# ===========================================================================================
# Chapter 3: restricted Boltzmann machines (Gibbs-chain stepper and its static animation).
# Appended by the RBM chapter; it uses only ImageControls from the first part of this file.
# ===========================================================================================
class _GibbsTape:
    """The states of block-Gibbs chains, computed one sweep at a time on demand and kept, so
    moving a slider back and forth always shows the same chain."""

    def __init__(self, rbm, v0: Tensor, generator: torch.Generator | None):
        self.rbm, self.generator = rbm, generator
        v0 = v0.flatten(1).to(rbm.W.dtype)
        self.v = [v0]                 # binary states after each sweep, (B, D)
        self.mean = [v0]              # p(v | h) of each sweep (sweep 0: the start itself)

    @torch.no_grad()
    def at(self, t: int) -> tuple[Tensor, Tensor]:
        while len(self.v) <= t:
            h = self.rbm.sample_hidden(self.v[-1], self.generator)
            p = self.rbm.visible_probs(h)
            self.v.append(torch.bernoulli(p, generator=self.generator))
            self.mean.append(p)
        return self.v[t], self.mean[t]


def gibbs_stepper(rbm, v0: Tensor, *, max_sweeps: int = 1000, generator: torch.Generator | None = None,
                  image_shape: tuple = (1, 28, 28), nrow: int = 8, scale: int = 2) -> ImageControls:
    """Step block-Gibbs chains of an RBM (:class:`gencourse.rbm.RBM`) started at ``v0`` (B, D).

    Controls: a ``sweep`` slider (0 .. ``max_sweeps``), buttons that add 1, 10 or 100 sweeps,
    and ``show``: the mean image p(v | h) of the sweep or the binary sample v.  Each sweep is
    computed once with ``generator`` and kept, so the slider can go back.  ``sweep("sweep",
    values)`` gives frames for :func:`gibbs_animation` (the static counterpart).
    """
    import ipywidgets as w

    tape = _GibbsTape(rbm, v0, generator)

    def render(sweep, show):
        v, mean = tape.at(int(sweep))
        x = mean if show == "mean p(v|h)" else v
        return x.reshape(-1, *image_shape).float().clamp(0, 1)

    def caption(values):
        v, _ = tape.at(int(values["sweep"]))
        f = float(rbm.free_energy(v).mean())
        return (f"sweep {int(values['sweep'])} of v -> h ~ p(h|v) -> v ~ p(v|h); "
                f"mean free energy F(v) of the chains = {f:.1f} nats")

    slider = w.IntSlider(value=0, min=0, max=max_sweeps, description="sweep", continuous_update=False,
                         layout=w.Layout(width="420px"))
    show = w.ToggleButtons(options=["mean p(v|h)", "binary sample v"], value="mean p(v|h)", description="show")
    controls = ImageControls(render, {"sweep": slider, "show": show}, nrow=nrow, scale=scale, caption=caption,
                             title="Gibbs chains of an RBM")
    buttons = []
    for n in (1, 10, 100):
        b = w.Button(description=f"+{n} sweep{'s' if n > 1 else ''}", layout=w.Layout(width="110px"))
        b.on_click(lambda _, n=n: setattr(slider, "value", min(slider.value + n, max_sweeps)))
        buttons.append(b)
    controls.buttons = buttons
    controls.widget.children = (w.HBox(buttons),) + tuple(controls.widget.children)
    return controls


def gibbs_animation(rbm, v0: Tensor, sweeps: Sequence[int], *, generator: torch.Generator | None = None,
                    image_shape: tuple = (1, 28, 28), interval: int = 300, figsize=(4.0, 4.0)):
    """The static counterpart of :func:`gibbs_stepper`: a kernel-free animation of the chains'
    mean images p(v | h) at the given sweep numbers (sweep 0 shows ``v0``)."""
    from .viz import animate_frames

    stepper = gibbs_stepper(rbm, v0, max_sweeps=max(sweeps), generator=generator, image_shape=image_shape)
    frames = stepper.sweep("sweep", list(sweeps))
    return animate_frames(frames, titles=[f"Gibbs sweep {s}" for s in sweeps], interval=interval, figsize=figsize)


__all__ += ["gibbs_stepper", "gibbs_animation"]


# ===========================================================================================
# Chapter 4: GANs (latent interpolation, with a class control for conditional generators).
# Appended by the GAN chapter; it uses only ImageControls, lerp and slerp from the first part.
# ===========================================================================================
def _gan_decoder(generator) -> Callable:
    """codes (N, d) [+ labels] -> images in [0, 1]: the generator in eval mode, tanh output mapped to [0, 1]."""

    @torch.no_grad()
    def decode(z: Tensor, labels: Tensor | None = None) -> Tensor:
        generator.eval()
        dev = next(generator.parameters()).device
        x = generator(z.to(dev), None if labels is None else labels.to(dev))
        return ((x.float().cpu() + 1) / 2).clamp(0, 1)

    return decode


def gan_interpolation_grid(generator, z_a: Tensor, z_b: Tensor, ts: Sequence[float], *, labels: Tensor | None = None,
                           spherical: bool = True) -> Tensor:
    """Images along the paths from ``z_a`` (N, d) to ``z_b`` (N, d) at the values ``ts`` in [0, 1]:
    shape (N * len(ts), 1, H, W), row i = pair i, column j = ``ts[j]`` (show with ``nrow=len(ts)``).
    ``labels`` (N,) for a class-conditional generator (each row keeps its class).  The static
    picture of :func:`gan_interpolation`."""
    decode, path = _gan_decoder(generator), (slerp if spherical else lerp)
    z_a, z_b = z_a.detach().float().cpu(), z_b.detach().float().cpu()
    ts_ = torch.as_tensor(list(ts), dtype=torch.float32)
    z = torch.stack([path(z_a, z_b, float(t)) for t in ts_], 1)              # (N, T, d)
    y = None if labels is None else torch.as_tensor(labels).long().repeat_interleave(len(ts_))
    return decode(z.reshape(-1, z.shape[-1]), y)


def gan_interpolation(generator, z_a: Tensor, z_b: Tensor, *, labels: Tensor | None = None,
                      class_names: Sequence[str] | None = None, spherical: bool = True, steps: int = 20,
                      scale: int = 3) -> ImageControls:
    """A slider ``t`` in [0, 1] walking ``N`` pairs of codes from ``z_a`` (N, d) to ``z_b`` (N, d) at once:
    one image per pair, ``G(slerp(z_a, z_b, t))`` (``lerp`` with ``spherical=False``).

    For a class-conditional generator (``generator.n_classes > 0``) a ``label`` control chooses
    the class of every image ("as given" keeps ``labels``, default ``i % n_classes``): the
    same walk through z then changes the style within one class.  ``sweep("t", ts)`` gives the
    frames of the static counterpart (:func:`gencourse.viz.animate_frames`), and
    :func:`gan_interpolation_grid` the whole path as one picture.
    """
    import ipywidgets as w

    decode, path = _gan_decoder(generator), (slerp if spherical else lerp)
    z_a, z_b = z_a.detach().float().cpu(), z_b.detach().float().cpu()
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f"z_a and z_b must both be (N, d), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    k = int(getattr(generator, "n_classes", 0) or 0)
    controls = {"t": w.FloatSlider(value=0.0, min=0.0, max=1.0, step=1.0 / steps, description="t",
                                   continuous_update=True, readout_format=".2f", layout=w.Layout(width="340px"))}
    given = None
    if k:
        given = (torch.arange(len(z_a)) % k) if labels is None else torch.as_tensor(labels).long().cpu()
        names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
        controls["label"] = w.Dropdown(options=[("as given", -1)] + [(n, c) for c, n in enumerate(names)], value=-1,
                                       description="class")

    def render(t, label=-1):
        y = None if not k else (given if int(label) < 0 else torch.full((len(z_a),), int(label)))
        return decode(path(z_a, z_b, float(t)), y)

    return ImageControls(render, controls, nrow=min(len(z_a), 10), scale=scale,
                         title=f"latent interpolation: G({'slerp' if spherical else 'lerp'}(z_a, z_b, t))",
                         caption=lambda v: f"t = {float(v['t']):.2f}: t = 0 shows G(z_a), t = 1 shows G(z_b)")


__all__ += ["gan_interpolation", "gan_interpolation_grid"]
