"""The training loop: :class:`Trainer` runs a chapter's step function for a budget of steps or
seconds (see :mod:`gencourse.train` for what it does on the way); what it saves and restores is
in :mod:`gencourse.train.state`."""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import validate
from . import distributed
from .amp import amp_dtype
from .history import History
from .state import TrainerState


class NonFiniteLossError(FloatingPointError):
    """A logged value became NaN or infinite; the weights were restored to the last good log point."""


def _progress_mode(progress: bool | str) -> str:
    if progress in (False, "off"):
        return "off"
    env = os.environ.get("GENCOURSE_PROGRESS", "").lower()
    if progress in (True, "auto") and env in ("summary", "off", "bar"):
        return env
    return "bar"


class Trainer(TrainerState):
    """Runs ``step_fn(batch, trainer)`` over ``data`` for a budget of steps or seconds.

    Parameters
    ----------
    step_fn:
        Performs one update and returns a dict of scalar tensors to log.
    data:
        An iterable of batches (re-iterated at the end of each epoch, e.g. a
        :class:`gencourse.data.BatchIterator` or a ``DataLoader``), or a callable
        returning a fresh batch on each call (e.g. toy data sampled per step).
    modules, optimizers:
        Named modules and optimizers; the trainer puts the modules in training
        mode, snapshots them for NaN recovery and saves them in ``state_dict``.
    amp:
        ``"auto"`` (default), ``"bf16"``, ``"fp16"`` or ``False``; see :func:`amp_dtype`.
    log_every:
        Steps between copies of the logged values to the host (one sync each).
    grad_clip:
        If set, :meth:`optimize` clips the gradient norm of each optimizer's parameters.
    stop_signals:
        Signals that end :meth:`fit` at the end of the current step (default Ctrl-C's SIGINT;
        the command line adds SIGTERM); :attr:`stopped_by` names the one that did.
    device:
        Must exist on this machine (a CUDA or MPS device that torch cannot see is an error).
    """

    def __init__(self, step_fn: Callable[[Any, "Trainer"], Mapping[str, Tensor]],
                 data: Iterable | Callable[[], Any], *,
                 modules: Mapping[str, nn.Module] | nn.Module,
                 optimizers: Mapping[str, torch.optim.Optimizer] | torch.optim.Optimizer | None = None,
                 device: torch.device | str | None = None, amp: bool | str = "auto",
                 log_every: int = 50, grad_clip: float | None = None,
                 progress: bool | str = "auto", desc: str = "training",
                 stop_signals: Sequence[str] = ("SIGINT",)):
        if not callable(step_fn):
            raise TypeError("step_fn must be a function step(batch, trainer) -> dict of scalar tensors")
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}")
        self.step_fn, self.data = step_fn, data
        self.modules = {"model": modules} if isinstance(modules, nn.Module) else dict(modules)
        if optimizers is None:
            optimizers = {}
        self.optimizers = {"opt": optimizers} if isinstance(optimizers, torch.optim.Optimizer) else dict(optimizers)
        if device is None:
            first = next((p for m in self.modules.values() for p in m.parameters()), None)
            device = first.device if first is not None else torch.device("cpu")
        self.device = _available_device(device)
        self.dtype = amp_dtype(self.device, amp)
        # fp16 needs loss scaling (bf16 has fp32's exponent range); on the CPU this emulates a T4
        self.scaler = torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None
        self.log_every, self.grad_clip = log_every, grad_clip
        self.progress, self.desc = progress, desc
        self.rank, self.world_size = distributed.rank_world()
        distributed.broadcast_state(self.modules)  # under torchrun every rank starts from rank 0's weights
        self.step = 0  # global step count, kept across fit() calls
        self.history = History()
        self._seconds = 0.0  # training time accumulated over fit() calls
        self._batches = None
        self.data_epoch, self.data_pos = 0, 0  # position in a resumable data source
        self._good = None  # snapshot of the last weights that gave finite values
        bad = [s for s in stop_signals if s not in ("SIGINT", "SIGTERM")]
        if bad:
            raise ValueError(f"stop_signals: expected some of ('SIGINT', 'SIGTERM'), got {bad}")
        self.stop_signals = tuple(stop_signals)
        self.stopped_by = None  # "SIGINT" / "SIGTERM" when the last fit() was stopped by that signal
        self._stop_signal = None

    # -- helpers for step functions ---------------------------------------------------------
    def autocast(self):
        """Mixed-precision context for the forward pass (a no-op on the CPU)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def optimize(self, loss: Tensor, optimizer: torch.optim.Optimizer, *, retain_graph: bool = False) -> None:
        """``zero_grad``, backward (scaled under fp16), gradients averaged over the ranks under
        ``torchrun`` (:func:`~gencourse.train.distributed.average_gradients`), optional clipping, ``step``.

        A step function may call it any number of times, for one optimizer or several (a GAN's
        ``g_steps`` generator updates), or not at all: under fp16 each call is a complete
        scaled update (``scaler.step`` then ``scaler.update``), so an update whose gradients
        overflowed is skipped on its own and the scale shrinks before the next one."""
        optimizer.zero_grad(set_to_none=True)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward(retain_graph=retain_graph)
            distributed.average_gradients(params)  # an inf on one rank reaches all: all skip together
            if self.grad_clip is not None:
                self.scaler.unscale_(optimizer)
                self._clip(optimizer)
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward(retain_graph=retain_graph)
            distributed.average_gradients(params)
            if self.grad_clip is not None:
                self._clip(optimizer)
            optimizer.step()

    def _clip(self, optimizer):
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.grad_clip)

    # -- the loop -----------------------------------------------------------------------
    def _next_batch(self):
        if callable(self.data) and not hasattr(self.data, "__iter__"):
            return self.data()
        resumable = hasattr(self.data, "batches")  # e.g. BatchIterator: (epoch, position) restartable
        for _ in range(2):
            if self._batches is None:
                self._batches = (self.data.batches(self.data_epoch, self.data_pos) if resumable
                                 else iter(self.data))
            try:
                batch = next(self._batches)
                self.data_pos += 1
                return batch
            except StopIteration:  # end of an epoch: start the next one
                self._batches = None
                self.data_epoch, self.data_pos = self.data_epoch + 1, 0
        raise ValueError("data yielded no batches (is the dataset smaller than one batch?)")


    def fit(self, steps: int | None = None, seconds: float | None = None, *,
            callback: Callable[["Trainer"], None] | None = None, callback_every: int | None = None) -> History:
        """Train for ``steps`` more steps and/or ``seconds`` more seconds (whichever ends first).

        ``callback(trainer)`` runs every ``callback_every`` steps (default: at each
        log point), e.g. to draw samples during training.  Returns :attr:`history`,
        which accumulates over repeated calls.
        """
        if steps is None and seconds is None:
            raise ValueError("give a budget: steps=... and/or seconds=...")
        if steps is not None and (not isinstance(steps, int) or steps < 0):
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if seconds is not None and not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        callback_every = callback_every or self.log_every
        for m in self.modules.values():
            m.train()
        mode = _progress_mode(self.progress) if self.rank == 0 else "off"
        bar = None
        if mode == "bar":
            from tqdm.auto import tqdm

            total = steps if steps is not None else int(math.ceil(seconds))
            bar = tqdm(total=total, desc=self.desc, unit="step" if steps is not None else "s", leave=True)
        self._snapshot()
        self.history.interrupted = False
        sums: dict[str, Tensor] = {}
        count, start_step = 0, self.step
        t0 = time.perf_counter()
        base = self._seconds

        distributed = self.world_size > 1

        def flush(collective: bool = True):
            """Copy the interval's means to the host (one sync); under torchrun, average them over ranks
            and agree on whether the time budget is spent. Returns True when the run must stop."""
            nonlocal sums, count
            elapsed = time.perf_counter() - t0
            over_time = seconds is not None and elapsed >= seconds
            if distributed and collective:
                import torch.distributed as dist

                names = list(sums)
                parts = [(sums[k] / count).to(self.device) for k in names] if count else []
                packed = torch.stack(parts + [torch.tensor(float(over_time), device=self.device)])
                flag = packed[-1:].clone()
                dist.all_reduce(packed, op=dist.ReduceOp.SUM)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                over_time = bool(flag.item() > 0)
                if count == 0 or not names:  # nothing logged (e.g. steps that return {})
                    return over_time
                means = (packed[:-1] / self.world_size).tolist()
            else:
                if count == 0 or not sums:
                    return over_time
                names = list(sums)
                means = (torch.stack([sums[k] for k in names]) / count).tolist()  # the one host sync
            values = dict(zip(names, means))
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                what = (f"{', '.join(bad)} became {values[bad[0]]} between steps {self.step - count + 1} "
                        f"and {self.step}")
                good_step = self._restore()  # weights, optimizers, step, data position, history, RNG
                sums, count = {}, 0
                self.history.events.append({"step": good_step, "event": "non-finite values", "detail": what})
                raise NonFiniteLossError(
                    f"{what}. Stopped; the weights, optimizer state, step count, data position and history "
                    f"were restored to step {good_step}, the last log point with finite values. Common causes: "
                    "a learning rate that is too high, log(0) or division by zero in the loss, or exploding "
                    "gradients. Try a smaller learning rate or gradient clipping: Trainer(..., grad_clip=1.0), "
                    "or on the command line --resume --set lr=... and/or --set grad_clip=1.0."
                )
            self.history.append(self.step, base + elapsed, values)
            self._snapshot()
            sums, count = {}, 0
            if bar is not None:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in list(values.items())[:3])
                bar.set_postfix_str(shown, refresh=False)
                if steps is None:
                    bar.update(min(int(elapsed), bar.total) - bar.n)
                else:
                    bar.update(self.step - start_step - bar.n)
            return over_time

        resumable = hasattr(self.data, "batches")
        drawn = False  # a batch of the current step was drawn and the step is not yet counted
        self._stop_signal, self.stopped_by = None, None
        old_handlers = self._take_signals()
        values_ctx = (validate.device_values_unchecked() if self.device.type != "cpu"
                      else contextlib.nullcontext())  # no host sync for argument checks on a GPU
        try:
            values_ctx.__enter__()
            while True:
                if self._stop_signal is not None:  # SIGINT / SIGTERM arrived during the last step
                    raise KeyboardInterrupt
                done = self.step - start_step
                if steps is not None and done >= steps:
                    break
                # under torchrun the time budget is checked at log points, where the ranks agree on it
                if not distributed and seconds is not None and time.perf_counter() - t0 >= seconds:
                    break
                batch = self._next_batch()
                drawn = True
                with self.autocast():
                    out = self.step_fn(batch, self)
                if not isinstance(out, Mapping):
                    raise TypeError(f"step_fn must return a dict of scalar tensors, got {type(out).__name__}")
                for k, v in out.items():
                    v = v.detach().float() if isinstance(v, Tensor) else torch.tensor(float(v))
                    sums[k] = sums[k] + v if k in sums else v.clone()
                self.step += 1
                drawn = False
                count += 1
                if count >= self.log_every and flush():
                    break
                if callback is not None and (self.step - start_step) % callback_every == 0:
                    callback(self)
            flush()
        except KeyboardInterrupt:
            self.history.interrupted = True
            self.stopped_by = self._stop_signal or "SIGINT"
            if drawn and resumable:
                # stopped inside a step (a second Ctrl-C, or raised by the step function): that batch is
                # drawn again on resume; the weights may hold part of the step
                self.data_pos, self._batches = max(self.data_pos - 1, 0), None
            try:
                flush(collective=False)  # the other ranks may be anywhere: no collective here
            except NonFiniteLossError:
                pass
            print(f"Interrupted ({self.stopped_by}) at step {self.step}: the models keep their weights and the "
                  "history so far is returned.")
        finally:
            values_ctx.__exit__(None, None, None)
            self._give_back_signals(old_handlers)
            self._seconds = base + (time.perf_counter() - t0)
            if bar is not None:
                bar.close()
        if mode != "off" and not self.history.interrupted:
            last = {k: v[-1] for k, v in self.history.values.items()} if len(self.history) else {}
            shown = ", ".join(f"{k} {v:.4g}" for k, v in list(last.items())[:4])
            print(f"{self.desc}: {self.step - start_step} steps in {time.perf_counter() - t0:.1f} s"
                  + (f" | {shown}" if shown else ""))
        return self.history

    @property
    def seconds(self) -> float:
        """Training time accumulated over all ``fit`` calls."""
        return self._seconds

    # -- stop signals ---------------------------------------------------------------------
    def _take_signals(self) -> dict:
        """During fit(), SIGINT (Ctrl-C, Jupyter's interrupt) and the other ``stop_signals`` (SIGTERM,
        as sent by timeouts, schedulers and ``docker stop``) end the run after the current step, so
        the weights, step, data position and history describe the same moment.  A second signal
        stops at once (mid-step).  Only in the main thread; a signal that is ignored stays ignored."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for name in self.stop_signals:
            sig = getattr(signal, name)
            if signal.getsignal(sig) == signal.SIG_IGN:
                continue

            def handler(signum, frame, name=name):
                if self._stop_signal is not None:
                    raise KeyboardInterrupt
                self._stop_signal = name

            try:
                old[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # e.g. not allowed in this interpreter
                pass
        return old

    @staticmethod
    def _give_back_signals(old: dict) -> None:
        import signal

        for sig, handler in old.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _available_device(device) -> torch.device:
    """``torch.device(device)``, or an error when it names a CUDA / MPS device this machine does not have
    (rather than training on the CPU while reporting the GPU)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"Trainer: expected an available device, got device={str(device)!r} but torch sees no "
                           "CUDA GPU; fix: pass device='cpu', or gencourse.utils.get_device('auto')")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(f"Trainer: expected an available device, got device={str(device)!r} but MPS is not "
                           "available; fix: pass device='cpu', or gencourse.utils.get_device('auto')")
    return dev
