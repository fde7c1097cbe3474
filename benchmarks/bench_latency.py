"""Inference latency of the digits network, parent side: microseconds per call, 1 and 32 rows.

Each system's worker trains one epoch (latency does not depend on the weights) and is
called as its users call it, ndarray in and ndarray out:

- fastnn: ``model.predict(x)`` and ``model(x)`` (for one row also with a float64 row,
  NumPy's default dtype, which fastnn must convert);
- NumPy: ``NumpyMLP.predict`` (``x @ W + b`` and ``np.maximum`` per layer);
- PyTorch: ``model(torch.from_numpy(x)).numpy()`` under ``torch.no_grad()``.

Per round every worker times one batch of back-to-back calls per call kind; the batch
sizes are fixed once, so that a batch lasts about ``budget_s``.
"""
from bench_training import DIGITS_SIZES
from report import paired_ratios, ratio, table
from timing import Summary
from workers import WorkerError, rotated

BATCHES = (1, 32)
BASE = "fastnn predict(x)"


def bench_latency(workers, data, repeats, budget_s, progress, settle_s):
    """Per-call latency table.  Returns lines and ``{(label, rows): Summary}`` in seconds."""
    chosen = {name: workers[name] for name in ("fastnn", "NumPy", "PyTorch") if name in workers}
    data_out, rows_out = {}, []
    for n_rows in BATCHES:
        ready = {}
        for name, worker in chosen.items():
            dtypes = ("float32", "float64") if n_rows == 1 else ("float32",)
            try:
                worker.call("latency_setup", data=data, sizes=DIGITS_SIZES, rows=n_rows,
                            dtypes=dtypes, budget_s=budget_s)
                ready[name] = worker
            except WorkerError as exc:
                progress(f"{name}: no latency ({str(exc).splitlines()[-1][:200]})")
        results = {}
        for round_index in range(repeats):
            for name in rotated(ready, round_index):
                reply = ready[name].call("latency_batch", rows=n_rows, settle_s=settle_s)
                for label, value in reply.items():
                    results.setdefault(label, []).append(value)
        for label, values in results.items():
            summary = Summary.of(values)
            data_out[label, n_rows] = summary
            relative = ratio(paired_ratios(results, label, BASE)) if BASE in results else "n/a"
            rows_out.append([n_rows, label, summary.scaled(1e6).format(3), relative])
            progress(f"{n_rows} row(s) {label}: {summary.median * 1e6:.3g} µs")
    lines = [f"Median (min-max) of {repeats} interleaved batches of back-to-back calls, "
             f"each batch about {budget_s * 1e3:.0f} ms long; rows are float32 unless the "
             "label says float64.", ""]
    lines += table(["rows", "call", "µs per call", "time / fastnn predict time"], rows_out)
    return lines, data_out
