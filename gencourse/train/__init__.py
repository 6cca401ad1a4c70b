"""One training loop for every chapter.

The loop knows nothing about models.  A chapter supplies a *step function*::

    def step(batch, trainer) -> dict[str, Tensor]:
        loss = ...                          # forward pass (runs under trainer's autocast)
        trainer.optimize(loss, optimizer)   # zero_grad, backward, (unscale, clip), step
        return {"loss": loss}               # scalar tensors to log

and :class:`Trainer` runs it for a budget of steps or seconds with

* a ``tqdm.auto`` progress bar showing the running loss;
* a :class:`History` of the logged values, averaged over each log interval;
* mixed precision on CUDA (bf16 on Ampere and newer, fp16 with a gradient
  scaler on older GPUs such as the T4); full precision on the CPU unless asked
  for (``amp="bf16"``, worth it on CPUs with native bf16 instructions, or
  ``amp="fp16"``, the T4's path emulated for testing);
* data parallelism under ``torchrun`` (:mod:`~gencourse.train.distributed`):
  rank 0's weights broadcast, gradients averaged in :meth:`Trainer.optimize`;
* no host synchronisation on ordinary steps: logged values are summed on the
  device and copied to the host once every ``log_every`` steps;
* a check for NaN/inf at every log point that returns to the last good log point
  (weights, optimizer state, step, data position, history and random state
  together) and raises :class:`NonFiniteLossError` with a clear message;
* Ctrl-C (SIGINT; also SIGTERM with ``stop_signals=("SIGINT", "SIGTERM")``, as the
  command line does) ending the run cleanly at the end of the current step: the
  models keep what they learned, the data position matches the weights and ``fit``
  returns the history so far (``history.interrupted``, ``trainer.stopped_by``);
  a second signal stops at once.

The package, one piece a module: :mod:`~gencourse.train.trainer` (the loop),
:mod:`~gencourse.train.state` (what a run saves and restores),
:mod:`~gencourse.train.history`, :mod:`~gencourse.train.amp` (the autocast dtype) and
:mod:`~gencourse.train.optim` (:func:`adam`).
"""
from __future__ import annotations

from .amp import amp_dtype, cpu_has_bf16, inference, set_inference_amp
from .history import History
from .optim import adam, sgd
from .trainer import NonFiniteLossError, Trainer

__all__ = ["Trainer", "History", "NonFiniteLossError", "amp_dtype", "cpu_has_bf16", "adam", "sgd"]
