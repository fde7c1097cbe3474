"""Inference latency of the digits network: microseconds per call for 1 and 32 rows.

Each system gets a trained model (one epoch is enough: latency does not depend on
the weights) and is called as its users call it, ndarray in and ndarray out:

- fastnn: ``model.predict(x)`` and ``model(x)``;
- NumPy: ``NumpyMLP.predict`` (``x @ W + b`` and ``np.maximum`` per layer);
- PyTorch: ``model(torch.from_numpy(x)).numpy()`` under ``torch.no_grad()``.
"""
from bench_training import DIGITS_SIZES, digits_data
from report import paired_ratios, ratio, table
from timing import Summary, per_call_seconds

BATCHES = (1, 32)


def _callables(systems, x):
    """``{label: fn()}`` for every available way of running the forward pass on ``x``."""
    fns = {}
    if "fastnn" in systems:
        model = systems["fastnn"].model
        fns["fastnn predict(x)"] = lambda: model.predict(x)
        fns["fastnn model(x)"] = lambda: model(x)
    if "NumPy" in systems:
        fns["NumPy forward"] = lambda: systems["NumPy"].model.predict(x)
    if "PyTorch" in systems:
        fns["PyTorch no_grad"] = lambda: systems["PyTorch"].forward(x)
    return fns


def bench_latency(systems, repeats, budget_s, progress=None, settle_s=0.0):
    """Per-call latency table for ``BATCHES`` rows of the digits test split.

    Returns
    -------
    lines : list of str
    data : dict
        ``(label, rows) -> Summary`` in seconds per call.
    """
    X_train, X_test, y_train, _ = digits_data()
    chosen = {name: systems[name] for name in ("fastnn", "NumPy", "PyTorch") if name in systems}
    for system in chosen.values():
        system.fit(X_train, y_train, DIGITS_SIZES, 1, 32, 0)
    data, rows = {}, []
    for n_rows in BATCHES:
        x = X_test[:n_rows].copy()  # C-contiguous float32, as a caller would hold it
        results = per_call_seconds(_callables(chosen, x), repeats, budget_s, settle_s)
        base = "fastnn predict(x)"
        for label, values in results.items():
            summary = Summary.of(values)
            data[label, n_rows] = summary
            relative = ratio(paired_ratios(results, label, base)) if base in results else "n/a"
            rows.append([n_rows, label, summary.scaled(1e6).format(3), relative])
            if progress is not None:
                progress(f"{n_rows} row(s) {label}: {summary.median * 1e6:.3g} µs")
    lines = [f"Median (min-max) of {repeats} interleaved batches of back-to-back calls, "
             f"each batch about {budget_s * 1e3:.0f} ms long.", ""]
    lines += table(["rows", "call", "µs per call", "time / fastnn predict time"], rows)
    return lines, data
