"""The logged values of a training run: :class:`History` (one mean per log interval)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class History:
    """Logged values of a run: ``values[name][i]`` is the mean of ``name`` over the
    log interval that ended at step ``steps[i]``, ``times[i]`` seconds into training.

    ``events`` records what else happened to the run, one dict each with its ``step``: a NaN
    roll-back, a resume that changed the learning rate, ..."""

    steps: list = field(default_factory=list)
    times: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    interrupted: bool = False
    events: list = field(default_factory=list)

    def append(self, step: int, seconds: float, values: Mapping[str, float]) -> None:
        n = len(self.steps)
        for k, v in values.items():
            # a name that first appears late is padded with NaN so all lists align with steps
            self.values.setdefault(k, [math.nan] * n).append(float(v))
        for k, lst in self.values.items():
            if len(lst) < n + 1:
                lst.append(math.nan)
        self.steps.append(int(step))
        self.times.append(float(seconds))

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` log points only."""
        del self.steps[n:], self.times[n:]
        for lst in self.values.values():
            del lst[n:]

    def __getitem__(self, name: str) -> list:
        return self.values[name]

    def __len__(self) -> int:
        return len(self.steps)

    def last(self, name: str) -> float:
        """Most recent logged value of ``name``."""
        if not self.values.get(name):
            raise KeyError(f"nothing logged under {name!r}; logged: {sorted(self.values)}")
        return self.values[name][-1]

    def to_dict(self) -> dict:
        return {"steps": list(self.steps), "times": list(self.times),
                "values": {k: list(v) for k, v in self.values.items()}, "interrupted": self.interrupted,
                "events": [dict(e) for e in self.events]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "History":
        return cls(list(d["steps"]), list(d["times"]), {k: list(v) for k, v in d["values"].items()},
                   bool(d.get("interrupted", False)), [dict(e) for e in d.get("events", [])])

    def plot(self, names=None, ax=None, **kw):
        """Loss curves (see :func:`gencourse.viz.plot_history`)."""
        from ..viz import plot_history

        return plot_history(self, names=names, ax=ax, **kw)
