"""Seeding, device choice and the FAST/FULL run mode, in one place.

Every notebook starts with :func:`setup`, which seeds all generators, picks the
device and prints what it chose.  Budgets (training steps, sample counts, ...)
come from :func:`budget`, so the same notebook runs in seconds on a laptop CPU
(FAST) and trains properly on a GPU (FULL).
"""
from __future__ import annotations

import contextlib
import os
import random
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import torch

MODES = ("fast", "full")


class UsageError(Exception):
    """A mistake in how a command was called: reported as one line, without a traceback."""
MODE_ENV = "GENCOURSE_MODE"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and every CUDA device).

    Returns a fresh CPU ``torch.Generator`` seeded with ``seed`` for code that
    wants an explicit ``generator=`` argument.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


# -- random draws with an explicit generator: one rule everywhere ---------------------------
# A sampler takes ``generator=`` on any device.  Noise is drawn *on the generator's own device*
# (the global RNG of the target device without one) and then moved to where it is used, so a
# CPU generator works with a model on the GPU, a CUDA generator with tensors on the CPU, and one
# seed on one device gives the same draws wherever the model lives.


def _draw_device(generator: torch.Generator | None, device) -> torch.device:
    return generator.device if generator is not None else torch.device(device if device is not None else "cpu")


def randn(shape, *, generator: torch.Generator | None = None, device=None, dtype: torch.dtype | None = None
          ) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device`` (default: the generator's device, else the CPU),
    drawn with ``generator`` on its own device, then moved."""
    x = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return x if device is None else x.to(device)


def rand(shape, *, generator: torch.Generator | None = None, device=None, dtype: torch.dtype | None = None
         ) -> torch.Tensor:
    """Uniform [0, 1) noise of ``shape``, by the same rule as :func:`randn`."""
    x = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, device), dtype=dtype)
    return x if device is None else x.to(device)


def bernoulli(p: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary samples with probabilities ``p`` (same shape, dtype and device), drawn with ``generator``
    on its own device (``p`` is copied there and the result back when the two differ)."""
    if generator is None or generator.device == p.device:
        return torch.bernoulli(p, generator=generator)
    return torch.bernoulli(p.to(generator.device), generator=generator).to(p.device)


@contextlib.contextmanager
def one_thread():
    """Run the block with one intra-op CPU thread, then restore the previous count.  For loops of many
    tiny operations (toy networks, MCMC chains), where handing each one to a second thread costs more
    than the arithmetic it saves, and much more when another process is busy on the other core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _worker_init() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # an interrupt reaches the parent, which stops the workers
    torch.set_num_threads(1)


def _seeded_call(job, seed: int):
    torch.manual_seed(seed)
    return job()


def _pickled_seeded_call(job, seed: int) -> bytes:
    import pickle

    return pickle.dumps(_seeded_call(job, seed))   # plain pickling: tensors travel as bytes, not shared memory


def parallel_workers(n_jobs: int) -> int:
    """How many worker processes :func:`run_parallel` uses by default for ``n_jobs`` jobs: one per CPU core
    this process may run on, at most one per job; 1 (no workers: the jobs run here) where fork is not the
    safe way to start them (not Linux) or a GPU is present (the jobs then run on it, one after another)."""
    import sys

    if not sys.platform.startswith("linux") or torch.cuda.is_available():
        return 1
    return max(1, min(n_jobs, len(os.sched_getaffinity(0))))


def run_parallel(jobs: Mapping[str, Any], *, seed: int = 0, workers: int | None = None) -> dict:
    """Call every job of ``jobs`` (name -> a picklable callable without arguments, such as
    ``functools.partial(gan.train_toy_gan, seeds, steps, lr_d=5e-4)``), each right after
    ``torch.manual_seed(seed)``, in ``workers`` processes forked from this one with one torch thread each;
    returns name -> result in the order of ``jobs``.  The results are the ones the same calls give one after
    another in this process with one thread (the toy trainers run with :func:`one_thread`), so a notebook's
    numbers do not depend on the core count.  Jobs are handed out in order: list the longest first.
    ``workers`` defaults to :func:`parallel_workers`; 1 runs the jobs here, one after another.  A job's
    exception is raised here; an interrupt stops every worker.
    """
    import multiprocessing
    import pickle

    names = list(jobs)
    workers = parallel_workers(len(names)) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1:
        return {name: _seeded_call(jobs[name], seed) for name in names}
    if torch.cuda.is_initialized():
        raise RuntimeError("run_parallel forks its workers, which cannot use CUDA once this process has: "
                           "pass workers=1 to run the jobs here, on the GPU")
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init)
    try:
        pending = [pool.apply_async(_pickled_seeded_call, (jobs[name], seed)) for name in names]
        out = {name: pickle.loads(p.get()) for name, p in zip(names, pending)}
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return out


def configure_device(device: torch.device | str) -> None:
    """The speed settings for ``device``, in one place (called by :func:`setup` and the ``train`` command).
    CUDA: TF32 tensor cores for float32 matrix products and convolutions (Ampere and newer; 10 bits of
    mantissa instead of 23, the PyTorch default for convolutions already) and ``cudnn.benchmark`` (the
    fastest convolution algorithm for each input shape, chosen once).  Nothing changes on the CPU."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA when available, else Apple MPS, else CPU.

    Any other value is passed to ``torch.device``; asking for CUDA on a machine
    without it is an error that says so, rather than a failure later on.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} was requested but torch sees no CUDA GPU. "
            "Use device='auto' (falls back to the CPU) or, on Colab, choose "
            "Runtime > Change runtime type > GPU."
        )
    return dev


def run_mode() -> str:
    """The run mode: ``GENCOURSE_MODE`` if set, else ``full`` with a CUDA GPU, else ``fast``."""
    value = os.environ.get(MODE_ENV, "").strip().lower()
    if value:
        if value not in MODES:
            raise ValueError(
                f"{MODE_ENV}={value!r} is not a run mode; expected one of {MODES}. "
                f"Unset it to choose automatically (full on a CUDA GPU, fast otherwise)."
            )
        return value
    return "full" if torch.cuda.is_available() else "fast"


class Budget(Mapping[str, Any]):
    """Read-only settings for the current mode; use ``b.steps`` or ``b["steps"]``."""

    def __init__(self, mode: str, values: Mapping[str, Any]):
        self._mode = mode
        self._values = MappingProxyType(dict(values))

    mode = property(lambda self: self._mode)
    fast = property(lambda self: self._mode == "fast")

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"budget has no setting {name!r}; it has {sorted(self._values)}"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Budget(mode={self._mode!r}, {items})"


def budget(*, fast: Mapping[str, Any], full: Mapping[str, Any], mode: str | None = None) -> Budget:
    """Pick the settings for the current run mode.

    ``fast`` and ``full`` must name the same keys, so a notebook can never read a
    setting that exists in one mode only::

        B = budget(fast=dict(steps=200, n_samples=500), full=dict(steps=8000, n_samples=10_000))
        fit(..., steps=B.steps)
    """
    if set(fast) != set(full):
        raise ValueError(
            "fast and full budgets must have the same keys; "
            f"only in fast: {sorted(set(fast) - set(full))}, only in full: {sorted(set(full) - set(fast))}"
        )
    mode = run_mode() if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return Budget(mode, fast if mode == "fast" else full)


def setup(seed: int = 0, device: str | torch.device = "auto", *, quiet: bool = False) -> torch.device:
    """Notebook header: seed everything, choose the device, set the figure style.

    Prints one line with the device, the run mode and the library versions.
    """
    from . import __version__
    from .viz import set_style

    seed_everything(seed)
    dev = get_device(device)
    configure_device(dev)
    set_style()
    if not quiet:
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        print(
            f"gencourse {__version__} | torch {torch.__version__} | device: {name} | "
            f"mode: {run_mode().upper()} | seed: {seed}"
        )
    return dev
