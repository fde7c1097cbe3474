"""Markdown for RESULTS.md: tables, paired ratios and the PASS/MISS lines of the targets."""
import statistics
from dataclasses import dataclass

from timing import Summary


def table(header, rows):
    """A GitHub-flavoured Markdown table; cells are converted with ``str``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def paired_ratios(times, numerator, denominator):
    """Per-round ``times[numerator] / times[denominator]``, summarised.

    Rounds are interleaved, so the ratio within a round compares two runs made under
    the same machine load; its median is steadier than a ratio of medians.
    """
    pairs = zip(times[numerator], times[denominator], strict=True)
    return Summary.of(top / bottom for top, bottom in pairs)


def seconds(summary):
    """``median (min-max)`` in the unit that keeps the numbers readable."""
    if summary.median >= 1.0:
        return f"{summary.format(3)} s"
    if summary.median >= 1e-3:
        return f"{summary.scaled(1e3).format(3)} ms"
    return f"{summary.scaled(1e6).format(3)} µs"


def ratio(summary):
    """``2.5× (2.3-2.7)``."""
    return f"{summary.median:.3g}× ({summary.low:.3g}-{summary.high:.3g})"


_OPERATORS = {">=": (lambda a, b: a >= b, "≥"), "<=": (lambda a, b: a <= b, "≤"),
              "<": (lambda a, b: a < b, "<")}


@dataclass
class Target:
    """One performance target: a measured value against a threshold, reported, never asserted.

    ``op`` is one of ``">="``, ``"<="`` and ``"<"``; ``value=None`` means not measured.
    ``condition_met=False`` turns a met threshold into a MISS (e.g. when the speed came
    at the cost of accuracy); ``note`` then says why.
    """

    description: str
    op: str
    threshold: float
    unit: str = "×"
    value: float = None
    note: str = ""
    condition_met: bool = True

    @property
    def verdict(self):
        if self.value is None:
            return "SKIP"
        met = _OPERATORS[self.op][0](self.value, self.threshold) and self.condition_met
        return "PASS" if met else "MISS"

    def line(self):
        """``- **PASS** description: 6.1× (target ≥ 5×); note`` or SKIP with the reason."""
        if self.value is None:
            return f"- **SKIP** {self.description}: {self.note or 'not measured'}"
        note = f"; {self.note}" if self.note else ""
        return (f"- **{self.verdict}** {self.description}: {self.value:.3g}{self.unit} "
                f"(target {_OPERATORS[self.op][1]} {self.threshold:g}{self.unit}){note}")


def median_or_none(values):
    """Median of a non-empty list, else None."""
    return statistics.median(values) if values else None
