"""Small statistics and table helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import List, Optional, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One measured figure for ours and the baseline; ``ratio`` is ours / baseline."""

    what: str
    ours: float
    baseline: Optional[float]
    unit: str
    target: str = ""
    met: Optional[bool] = None

    @property
    def ratio(self) -> Optional[float]:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline


@dataclass
class Section:
    title: str
    rows: List[Row] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row


def fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "—"
    if unit == "calls":
        return f"{value:,.0f}"
    if unit in ("KiB", "MB") or value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}" if value < 10 else f"{value:.1f} {unit}"


def markdown(sections: List[Section]) -> str:
    out = []
    for section in sections:
        out.append(f"### {section.title}\n")
        out.append("| measurement | ours | baseline | ours / baseline | target |")
        out.append("| --- | ---: | ---: | ---: | --- |")
        for row in section.rows:
            ratio = f"{row.ratio:.2f}×" if row.ratio is not None else "—"
            target = row.target + ({True: " ✅", False: " ❌", None: ""}[row.met] if row.target else "")
            ours, baseline = fmt(row.ours, row.unit), fmt(row.baseline, row.unit)
            out.append(f"| {row.what} | {ours} | {baseline} | {ratio} | {target} |")
        out.extend(["", *(f"- {note}" for note in section.notes), ""])
    return "\n".join(out)
