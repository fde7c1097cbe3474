"""The performance targets of issue 11, checked against one run's numbers.

Each target is a ratio measured within this run's rounds (or, for latency, an absolute
time); the result is a PASS, MISS or SKIP line in RESULTS.md and never an assertion.
"""
import statistics

from bench_training import epoch_view
from report import Target, paired_ratios

# "At the same accuracy": test accuracies (medians over rounds) within 2 points.  The
# digits test split has 360 rows, so this is about 7 rows.
ACCURACY_TOLERANCE = 0.02


def _range(summary):
    return f"range {summary.low:.3g}-{summary.high:.3g} over rounds"


def _digits_speedup(data, other, threshold):
    target = Target(f"digits: {other} time / fastnn time", ">=", threshold)
    if data is None or other not in data["times"] or "fastnn" not in data["times"]:
        target.note = f"needs fastnn and {other} in part 1"
        return target
    target.description = f"digits, {data['epochs']} epochs: {other} time / fastnn time"
    summary = paired_ratios(data["times"], other, "fastnn")
    target.value = summary.median
    accuracy = {name: statistics.median(r["accuracy"] for r in data["replies"][name])
                for name in (other, "fastnn")}
    target.condition_met = abs(accuracy["fastnn"] - accuracy[other]) <= ACCURACY_TOLERANCE
    target.note = (f"{_range(summary)}; test accuracy {accuracy['fastnn']:.4f} vs "
                   f"{accuracy[other]:.4f} ({'within' if target.condition_met else 'NOT within'}"
                   f" {ACCURACY_TOLERANCE:g})")
    return target


def _digits_jax(data):
    target = Target("digits: JAX scanned epoch (steady state) / fastnn epoch", ">=", 10.0)
    if data is None or not {"JAX scan", "fastnn"} <= set(data["times"]):
        target.note = "needs fastnn and JAX scan in part 1"
        return target
    steady, compile_s = epoch_view(data["replies"], data["epochs"])
    summary = paired_ratios(steady, "JAX scan", "fastnn")
    target.value = summary.median
    target.note = (f"{_range(summary)}; JAX compile {statistics.median(compile_s['JAX scan']):.3g}"
                   f" s per fit, not included")
    return target


def _wide_limit(data):
    target = Target("wide net, one epoch: fastnn time / the machine's limit", "<=", 1.15)
    if data is None or "fastnn" not in data["times"]:
        target.note = "needs fastnn in part 2"
        return target
    values = [t / data["limit_s"] for t in data["times"]["fastnn"]]
    target.value = statistics.median(values)
    target.description = (f"wide net, one epoch of {data['rows']} rows: fastnn time / the "
                          f"machine's limit ({data['limit_s']:.3g} s)")
    target.note = f"range {min(values):.3g}-{max(values):.3g}"
    return target


def _latency(data, label, threshold, description):
    target = Target(description, "<", threshold, unit=" µs")
    try:
        summary = data[label, 1]
    except (KeyError, TypeError):
        target.note = f"{label} was not measured"
        return target
    target.value = summary.median * 1e6
    target.note = f"range {summary.low * 1e6:.3g}-{summary.high * 1e6:.3g}"
    return target


def _inference(data):
    target = Target("batch inference through the wide net: fastnn time / PyTorch time",
                    "<=", 0.8)
    if data is None or not {"fastnn", "PyTorch"} <= set(data["times"]):
        target.note = "needs fastnn and PyTorch in the inference part"
        return target
    summary = paired_ratios(data["times"], "fastnn", "PyTorch")
    target.description = (f"batch inference, {data['rows']} rows through the wide net: "
                          "fastnn time / PyTorch (inference_mode) time")
    target.value, target.note = summary.median, _range(summary)
    return target


def _threads(data, condition, op, threshold):
    target = Target(f"threads, {condition} machine: default threads time / 1 thread time",
                    op, threshold)
    try:
        summary = data["ratio"][condition]
    except (KeyError, TypeError):
        target.note = "the threads part did not run"
        return target
    target.value, target.note = summary.median, _range(summary)
    return target


def _cnn_digits(data, threshold=5.0):
    """Issue 9: the digits CNN at least ``threshold`` times faster than PyTorch, same accuracy."""
    target = Target("digits CNN: PyTorch time / fastnn time", ">=", threshold)
    digits = (data or {}).get("digits")
    if digits is None or not {"PyTorch", "fastnn"} <= set(digits["times"]):
        target.note = "needs fastnn and PyTorch in the cnn part"
        return target
    target.description = (f"digits CNN, {digits['epochs']} epochs: PyTorch time / fastnn "
                          "time")
    summary = paired_ratios(digits["times"], "PyTorch", "fastnn")
    target.value = summary.median
    accuracy = {name: statistics.median(r["accuracy"] for r in digits["replies"][name])
                for name in ("fastnn", "PyTorch")}
    target.condition_met = abs(accuracy["fastnn"] - accuracy["PyTorch"]) <= ACCURACY_TOLERANCE
    target.note = (f"{_range(summary)}; test accuracy {accuracy['fastnn']:.4f} vs "
                   f"{accuracy['PyTorch']:.4f} "
                   f"({'within' if target.condition_met else 'NOT within'} "
                   f"{ACCURACY_TOLERANCE:g})")
    return target


def _cnn_mnist(data, threshold=1.2):
    """Issue 9: one epoch of the MNIST-sized CNN in at most ``threshold`` x PyTorch's time."""
    target = Target("MNIST-sized CNN, one epoch: fastnn time / PyTorch time", "<=", threshold)
    mnist = (data or {}).get("mnist")
    if mnist is None or not {"PyTorch", "fastnn"} <= set(mnist["times"]):
        target.note = "needs fastnn and PyTorch in the cnn part"
        return target
    target.description = (f"MNIST-sized CNN, one epoch of {mnist['rows']} rows: fastnn time / "
                          "PyTorch time")
    summary = paired_ratios(mnist["times"], "fastnn", "PyTorch")
    target.value, target.note = summary.median, _range(summary)
    return target


def evaluate_targets(data, quick=False):
    """The targets as ``report.Target`` objects, in the issue's order."""
    digits = data.get("digits")
    targets = [_digits_speedup(digits, "NumPy", 12.0),
               _digits_jax(digits),
               _wide_limit(data.get("wide")),
               _latency(data.get("latency"), "fastnn model(x)", 1.5,
                        "one-row `model(x)`, float32 row"),
               _latency(data.get("latency"), "fastnn model(x) float64", 2.0,
                        "one-row `model(x)`, float64 row"),
               _inference(data.get("inference")),
               _threads(data.get("threads"), "busy", "<=", 1.25),
               _threads(data.get("threads"), "idle", "<=", 0.9),
               _cnn_digits(data.get("cnn")),
               _cnn_mnist(data.get("cnn"))]
    if quick:
        for target in targets:
            target.note = "; ".join(filter(None, [target.note, "quick run"]))
    return targets


def reported_lines(data):
    """Figures the issue asks to report without a target."""
    digits = data.get("digits")
    lines = []
    if digits is not None:
        for other in ("PyTorch", "MLPClassifier", "tf.keras", "JAX step"):
            if other in digits["times"] and "fastnn" in digits["times"]:
                summary = paired_ratios(digits["times"], other, "fastnn")
                lines.append(f"- **REPORT** digits, {digits['epochs']} epochs, whole fit: "
                             f"{other} time / fastnn time: {summary.median:.3g}× "
                             f"({_range(summary)})")
    cnn = data.get("cnn") or {}
    for key, label in (("digits", "digits CNN"), ("mnist", "MNIST-sized CNN")):
        times = cnn.get(key, {}).get("times", {})
        if "tf.keras" in times and "fastnn" in times:
            summary = paired_ratios(times, "tf.keras", "fastnn")
            lines.append(f"- **REPORT** {label}: tf.keras time / fastnn time: "
                         f"{summary.median:.3g}× ({_range(summary)})")
    return lines
