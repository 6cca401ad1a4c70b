"""What a :class:`~gencourse.train.Trainer` saves and restores: the whole run, for resuming
(:meth:`~TrainerState.state_dict` / :meth:`~TrainerState.load_state_dict`), and a snapshot of the last
weights with finite logged values, for the NaN roll-back.

:class:`TrainerState` is the Trainer's base class; it works on the attributes the Trainer sets up
(``modules``, ``optimizers``, ``scaler``, ``step``, ``history``, the data position).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from .history import History


class TrainerState:
    """Saving, resuming and rolling back a :class:`~gencourse.train.Trainer` (its base class)."""

    def _snapshot(self):
        """Remember the current moment: weights, optimizer (and scaler) state, step, data position,
        the length of the history and the CPU random state (the NaN roll-back returns to all of them)."""
        self._good = {
            "step": self.step,
            "modules": {k: {n: t.detach().clone() for n, t in m.state_dict().items()} for k, m in self.modules.items()},
            "optimizers": {k: _clone_state(o.state_dict()) for k, o in self.optimizers.items()},
            "scaler": _clone_state(self.scaler.state_dict()) if self.scaler is not None else None,
            "data_position": (self.data_epoch, self.data_pos),
            "history_len": len(self.history),
            "rng": torch.get_rng_state(),
        }

    def _restore(self):
        """Return to the last snapshot (see :meth:`_snapshot`); returns its step."""
        if self._good is None:
            return None
        good = self._good
        for k, m in self.modules.items():
            m.load_state_dict(good["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(good["optimizers"][k])
        if self.scaler is not None and good["scaler"] is not None:
            self.scaler.load_state_dict(good["scaler"])
        self.step = good["step"]
        self.data_epoch, self.data_pos = good["data_position"]
        self._batches = None
        self.history.truncate(good["history_len"])
        torch.set_rng_state(good["rng"])
        return good["step"]

    # -- saving and resuming ------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: weights, optimizer and scaler state, step, history, data epoch."""
        state = {
            "step": self.step,
            "seconds": self._seconds,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "history": self.history.to_dict(),
            "data_position": [self.data_epoch, self.data_pos],
            "rng": {"cpu": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = {"modules", "step"} - set(state)
        if missing:
            raise ValueError(f"not a Trainer state: missing {sorted(missing)}")
        if set(state["modules"]) != set(self.modules):
            raise ValueError(f"state has modules {sorted(state['modules'])}, trainer has {sorted(self.modules)}")
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            if k in state.get("optimizers", {}):
                o.load_state_dict(state["optimizers"][k])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self._seconds = float(state.get("seconds", 0.0))
        if "history" in state:
            self.history = History.from_dict(state["history"])
        if "data_position" in state:
            self.data_epoch, self.data_pos = (int(v) for v in state["data_position"])
            self._batches = None
        rng = state.get("rng")
        if rng is not None:
            torch.set_rng_state(rng["cpu"])
            if rng.get("cuda") and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])


def _clone_state(obj):
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone_state(v) for v in obj]
    return obj
