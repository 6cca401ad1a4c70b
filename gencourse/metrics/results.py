"""What a metric returns (Chapter 7): a :class:`Result` (values and the protocol that produced them), a
:class:`Report` of every metric of one set of images, and :func:`table`, the plain-text tables of the
chapters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence


#: metric -> (short name, which values are better); the order of the printed tables
METRICS = {"fid": ("FID", "lower"), "kid": ("KID", "lower"), "is": ("IS", "higher"),
           "precision": ("precision", "higher"), "recall": ("recall", "higher"),
           "density": ("density", "~1 (real data)"), "coverage": ("coverage", "higher"),
           "class_accuracy": ("class accuracy", "higher")}


@dataclass
class Result:
    """A metric's value(s) and the protocol that produced them: ``r.value`` (the main number),
    ``r.values`` (all), attribute access by name (``r.fid``, ``r.kid_se``), ``float(r)``."""

    name: str
    values: dict
    protocol: str
    details: dict = field(default_factory=dict)

    @property
    def value(self) -> float:
        return next(iter(self.values.values()))

    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"{self.__dict__.get('name', 'result')} has no value {key!r}; it has {sorted(values)}")

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        shown = ", ".join(f"{k} = {v:.4g}" for k, v in self.values.items())
        return f"{self.name}: {shown}\n  protocol: {self.protocol}"

    __repr__ = __str__


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Plain-text table of ``rows`` (dicts), one column per key (or the given ``columns``)."""
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = lambda items: "  ".join(s.rjust(w) if i else s.ljust(w) for i, (s, w) in enumerate(zip(items, widths)))
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


@dataclass(repr=False)
class Report:
    """All sample metrics of one set of images; ``print(report)`` shows a table (with the recorded
    real-vs-real floor at the same n when there is one), ``report.as_dict()`` the numbers."""

    dataset: str
    n: int
    results: dict
    floor: dict | None = None

    def as_dict(self) -> dict:
        """Flat ``{metric: value}``: fid, kid, kid_se, is, is_std, precision, recall, density, coverage
        and class_accuracy (when intended labels were given)."""
        out = {}
        for r in self.results.values():
            out.update(r.values)
        return out

    def protocols(self) -> dict:
        return {k: r.protocol for k, r in self.results.items()}

    def __getitem__(self, key: str) -> Result:
        return self.results[key]

    def __str__(self) -> str:
        values = self.as_dict()
        rows = []
        for key, (label, better) in METRICS.items():
            if key in values:
                row = {"metric": label, "value": values[key], "better": better}
                if self.floor is not None:
                    row["real floor"] = self.floor.get(key)
                rows.append(row)
        head = f"{self.dataset}, n = {self.n} generated images"
        prot = "\n".join(f"  {r.name}: {r.protocol}" for r in self.results.values())
        return f"{head}\n{table(rows)}\nprotocols:\n{prot}"

    __repr__ = __str__
