"""The performance targets of the benchmark issue, checked against one run's numbers.

Each target is a ratio measured within this run (or, for latency, an absolute time);
the result is a PASS, MISS or SKIP line in RESULTS.md and never an assertion.
"""
import statistics

from report import Target, paired_ratios

# "At the same accuracy": test accuracies (medians over rounds) within 2 points.  The
# digits test split has 360 rows, so this is about 7 rows.
ACCURACY_TOLERANCE = 0.02


def _digits_speedup(data, other, threshold):
    target = Target(f"digits: {other} time / fastnn time", ">=", threshold)
    if data is None or other not in data["times"] or "fastnn" not in data["times"]:
        target.note = f"needs fastnn and {other} in part 1"
        return target
    target.description = f"digits, {data['epochs']} epochs: {other} time / fastnn time"
    target.value = paired_ratios(data["times"], other, "fastnn").median
    ours = statistics.median(data["accuracy"]["fastnn"])
    theirs = statistics.median(data["accuracy"][other])
    target.condition_met = abs(ours - theirs) <= ACCURACY_TOLERANCE
    target.note = (f"test accuracy {ours:.4f} vs {theirs:.4f} "
                   f"({'within' if target.condition_met else 'NOT within'} "
                   f"{ACCURACY_TOLERANCE:g})")
    return target


def _wide_ratio(data):
    target = Target("wide net, one epoch: fastnn time / PyTorch time", "<=", 0.9)
    if data is None or not {"fastnn", "PyTorch"} <= set(data["times"]):
        target.note = "needs fastnn and PyTorch in part 2"
        return target
    target.description = f"wide net, one epoch of {data['rows']} rows: fastnn time / PyTorch time"
    target.value = paired_ratios(data["times"], "fastnn", "PyTorch").median
    return target


def _adam_speedup(data):
    target = Target("adam_update at 1e6 parameters: reference time / compiled time",
                    ">=", 4.0)
    try:
        target.value = data["adam_update"][10**6]["speedup"].median
    except (KeyError, TypeError):
        target.note = "adam_update at 1e6 parameters was not measured"
    return target


def _predict_latency(data):
    target = Target("single-row `model.predict(x)` latency", "<", 5.0, unit=" µs")
    try:
        target.value = data["fastnn predict(x)", 1].median * 1e6
    except (KeyError, TypeError):
        target.note = "fastnn predict latency was not measured"
    return target


def evaluate_targets(data, quick=False):
    """The five targets as ``report.Target`` objects, in the issue's order."""
    targets = [_digits_speedup(data.get("digits"), "NumPy", 5.0),
               _digits_speedup(data.get("digits"), "PyTorch", 20.0),
               _wide_ratio(data.get("wide")),
               _adam_speedup(data.get("kernels")),
               _predict_latency(data.get("latency"))]
    if quick:
        for target in targets:
            target.note = "; ".join(filter(None, [target.note, "quick run"]))
    return targets
