"""Whole-fit benchmarks, parent side: digits, wide network, batch inference, width sweep.

Each function sends jobs to the system workers (``workers.interleave``: every system
once per round, rotating order), and turns the replies into Markdown lines for
RESULTS.md plus the numbers the targets are checked against.  Standard library only.
"""
import statistics

from report import paired_ratios, ratio, seconds, table
from timing import Summary
from workers import WorkerError, interleave

DIGITS_SIZES = (64, 25, 15, 10)
WIDE_SIZES = (784, 1024, 1024, 10)
BASELINE = "fastnn"
ADAM_BYTES_PER_PARAMETER = 28  # reads w, g, m, v and writes w, m, v: seven float32 passes


def training_flops(sizes, n_rows, epochs):
    """GEMM floating-point operations of ``epochs`` epochs (see ``machine.training_flops``)."""
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    per_row = sum(2 * k * m * (2 if i == 0 else 3) for i, (k, m) in enumerate(shapes))
    return float(per_row) * n_rows * epochs


def n_parameters(sizes):
    return sum(k * m + m for k, m in zip(sizes[:-1], sizes[1:], strict=True))


def _fit_replies(workers, data, sizes, epochs, batch_size, repeats, settle_s, progress,
                 failed):
    def kwargs_for(name, seed):
        return dict(data=data, sizes=sizes, epochs=epochs, batch_size=batch_size, seed=seed,
                    settle_s=settle_s)
    return interleave(workers, "fit", kwargs_for, repeats, warmup=1, progress=progress,
                      failed=failed)


def times_by_system(replies):
    return {name: [reply["seconds"] for reply in values] for name, values in replies.items()}


def background(replies):
    """``0.05 (0-0.31)``: other processes' cores during the jobs, median (min-max)."""
    values = [reply["load"]["other_cores"] for reply in replies
              if reply.get("load", {}).get("other_cores") is not None]
    return Summary.of(values).format(2) if values else "n/a"


def _time_table(replies, flops, ceiling, with_accuracy):
    times = times_by_system(replies)
    rows = []
    for name, values in times.items():
        summary = Summary.of(values)
        relative = paired_ratios(times, name, BASELINE) if BASELINE in times else None
        gflops = flops / summary.median / 1e9
        row = [name, seconds(summary), ratio(relative) if relative else "n/a",
               f"{gflops:.3g} ({100 * gflops / ceiling:.2g}%)" if ceiling else f"{gflops:.3g}"]
        if with_accuracy:
            row.append(f"{statistics.median(r['accuracy'] for r in replies[name]):.4f}")
        row.append(background(replies[name]))
        rows.append(row)
    header = ["system", "time, median (min-max)", "time / fastnn time",
              "GEMM GFLOP/s (% of matmul ceiling)"]
    if with_accuracy:
        header.append("test accuracy (median)")
    header.append("other processes' cores during the job")
    return table(header, rows)


def epoch_view(replies, epochs):
    """Per-epoch steady-state seconds per round, per system, plus JAX's compile times.

    A system without per-epoch timings (all but JAX) is charged its whole fit / epochs;
    JAX's steady epoch is the median of its epochs after the first, compile excluded.
    """
    steady, compile_s = {}, {}
    for name, values in replies.items():
        per_round = []
        for reply in values:
            epoch_s = reply.get("extra", {}).get("epoch_s")
            if epoch_s:
                per_round.append(statistics.median(epoch_s[1:] or epoch_s))
                compile_s.setdefault(name, []).append(reply["extra"]["compile_s"])
            else:
                per_round.append(reply["seconds"] / epochs)
        steady[name] = per_round
    return steady, compile_s


def _epoch_table(replies, epochs):
    steady, compile_s = epoch_view(replies, epochs)
    rows = []
    for name, values in steady.items():
        relative = paired_ratios(steady, name, BASELINE) if BASELINE in steady else None
        rows.append([name, seconds(Summary.of(values)), ratio(relative) if relative else "n/a",
                     seconds(Summary.of(compile_s[name])) if name in compile_s else "-"])
    return table(["system", "seconds per epoch, median (min-max)", "per epoch / fastnn's",
                  "compile time per fit (JAX)"], rows)


def bench_digits(workers, data, n_train, n_test, epochs, repeats, ceiling, progress,
                 settle_s):
    """Digits 64-25-15-10, Adam(1e-3), batch 32, ``epochs`` epochs, every system."""
    failed = {}
    replies = _fit_replies(workers, data, DIGITS_SIZES, epochs, 32, repeats, settle_s,
                           progress, failed)
    flops = training_flops(DIGITS_SIZES, n_train, epochs)
    lines = [f"{n_train} training rows, {n_test} test rows, batch 32, {epochs} epochs, "
             f"{repeats} interleaved rounds after one warm-up round, each system in its own "
             f"worker process; {flops / 1e9:.3g} GFLOP of GEMMs per fit. A fit is timed "
             "whole (building the model included; JAX's compile included).", ""]
    lines += _time_table(replies, flops, ceiling, with_accuracy=True)
    lines += ["", "Per epoch: each system's fit time / epochs, except JAX, whose steady-state "
              "epoch (median of its epochs after the first) is shown with its compile time "
              "(ahead-of-time `lower().compile()` of every jitted function, once per fit) "
              "apart.", ""]
    lines += _epoch_table(replies, epochs)
    lines += [f"- {name} failed: `{error.splitlines()[-1][:200]}`" for name, error in
              failed.items()]
    if BASELINE in replies:
        steps = epochs * -(-n_train // 32)
        step_s = statistics.median(times_by_system(replies)[BASELINE]) / steps
        try:
            lines += breakdown_lines(workers[BASELINE], step_s, ceiling)
        except WorkerError as exc:
            lines += ["", f"(per-step breakdown failed: {str(exc).splitlines()[-1][:200]})"]
    return lines, {"replies": replies, "epochs": epochs, "times": times_by_system(replies)}


def breakdown_lines(worker, step_s, ceiling_gflops, batch=32):
    """Per-step table of the digits step: each fastnn kernel, the rest, the arithmetic limit.

    Each kernel is called alone from Python, which costs a fixed overhead per call that
    the compiled engine does not pay; the "net" column subtracts the overhead measured
    on a one-parameter ``adam_update``.
    """
    parts = worker.call("digits_breakdown", sizes=DIGITS_SIZES, batch=batch)
    overhead = parts.pop("call overhead")
    net = {label: max(value - overhead, 0.0) for label, value in parts.items()}
    net_s = sum(net.values())

    def share(value):
        return f"{100 * value / step_s:.0f}%"

    rows = [[label, f"{value * 1e6:.2f}", f"{net[label] * 1e6:.2f}", share(net[label])]
            for label, value in parts.items()]
    rows.append(["per-call overhead (one-parameter `adam_update`)", f"{overhead * 1e6:.2f}",
                 "", ""])
    rows.append(["**kernels, net of the call overhead**", "", f"{net_s * 1e6:.2f}",
                 share(net_s)])
    rows.append(["rest: row gather, shuffle, loop, loss bookkeeping", "",
                 f"{(step_s - net_s) * 1e6:.2f}", share(step_s - net_s)])
    rows.append(["**whole step in fit** (median fit time / steps)", "", f"{step_s * 1e6:.2f}",
                 "100%"])
    gemm_flops = training_flops(DIGITS_SIZES, batch, 1)
    limit_s = gemm_flops / (ceiling_gflops * 1e9)
    rows.append([f"arithmetic limit: the step's {gemm_flops / 1e3:.0f} kFLOP of GEMMs at the "
                 f"large-matmul rate ({ceiling_gflops:.3g} GFLOP/s)", "",
                 f"{limit_s * 1e6:.2f}", share(limit_s)])
    return ["", f"Per-step breakdown of fastnn's digits step (batch {batch}): each kernel "
            "timed alone in the fastnn worker (median of 7 batches of calls), against the "
            "whole step measured in the fits above. GEMMs are inside forward (x W) and "
            "backward (x^T dz, dz W^T); elementwise work is the bias, activation and its "
            "gradient in the same calls, the loss, and Adam (the update).", "",
            *table(["component", "µs per call", "µs net", "share of the step"], rows)]


def bench_wide(workers, helper, n_rows, repeats, limits, progress, settle_s):
    """784-1024-1024-10, batch 256, one epoch over ``n_rows`` random rows, with the limit."""
    failed = {}
    data = ("random", n_rows, WIDE_SIZES[0], WIDE_SIZES[-1], 0)
    replies = _fit_replies(workers, data, WIDE_SIZES, 1, 256, repeats, settle_s, progress,
                           failed)
    for worker in workers.values():  # free the rows before the next part
        try:
            worker.call("drop_data")
        except WorkerError:
            pass
    flops = training_flops(WIDE_SIZES, n_rows, 1)
    steps = -(-n_rows // 256)
    gemm_s = flops / (limits["ceiling_gflops"] * 1e9)
    adam_s = steps * n_parameters(WIDE_SIZES) * ADAM_BYTES_PER_PARAMETER / (
        limits["copy_gbps"] * 1e9)
    limit = gemm_s + adam_s
    lines = [f"{n_rows} random rows, batch 256, one epoch, {repeats} interleaved rounds "
             f"after one warm-up round; {flops / 1e9:.3g} GFLOP of GEMMs per fit.", "",
             f"The machine's limit for this work: {flops / 1e9:.3g} GFLOP at the float32 "
             f"rate of a large `np.matmul` ({limits['ceiling_gflops']:.4g} GFLOP/s) = "
             f"{gemm_s:.3g} s, plus Adam's {ADAM_BYTES_PER_PARAMETER} bytes per parameter "
             f"per step ({steps} steps x {n_parameters(WIDE_SIZES)} parameters) at the copy "
             f"bandwidth of `np.copyto` ({limits['copy_gbps']:.3g} GB/s) = {adam_s:.3g} s; "
             f"together **{limit:.3g} s**.", ""]
    lines += _time_table(replies, flops, limits["ceiling_gflops"], with_accuracy=False)
    times = times_by_system(replies)
    lines += ["", "Time / the machine's limit: " + ", ".join(
        f"{name} {ratio(Summary.of(t / limit for t in values))}"
        for name, values in times.items())]
    if any(r.get("extra", {}).get("epoch_s") for v in replies.values() for r in v):
        lines += ["", "Per epoch with JAX's compile apart:", ""]
        lines += _epoch_table(replies, 1)
    lines += [f"- {name} failed: `{error.splitlines()[-1][:200]}`" for name, error in
              failed.items()]
    return lines, {"times": times, "rows": n_rows, "limit_s": limit}


def bench_inference(workers, rows, repeats, progress, settle_s):
    """Batch inference of ``rows`` float32 rows through the wide net, each system's way."""
    ready = {}
    for name, worker in workers.items():
        try:
            worker.call("inference_setup", sizes=WIDE_SIZES, rows=rows)
            ready[name] = worker
        except WorkerError as exc:
            progress(f"{name}: no inference ({str(exc).splitlines()[-1][:200]})")
    replies = interleave(ready, "inference_time", lambda name, seed: {"rows": rows,
                         "settle_s": settle_s}, repeats, warmup=1, progress=progress)
    times = times_by_system(replies)
    rows_out = []
    for name, values in times.items():
        relative = paired_ratios(times, name, BASELINE) if BASELINE in times else None
        rows_out.append([name, seconds(Summary.of(values)),
                         ratio(relative) if relative else "n/a", background(replies[name])])
    lines = [f"{rows} random float32 rows through 784-1024-1024-10 in one call: fastnn "
             "`model.predict(X, batch_size=len(X))`, PyTorch `model(x)` under "
             f"`torch.inference_mode()`, NumPy `x @ W + b` per layer; {repeats} interleaved "
             "rounds.", ""]
    lines += table(["system", "time, median (min-max)", "time / fastnn time",
                    "other processes' cores"], rows_out)
    return lines, {"times": times, "rows": rows}


def bench_width_sweep(workers, helper, data, widths, epochs, repeats, plot_path, progress,
                      settle_s):
    """fastnn's speed-up over NumPy for 64-W-W-10 on digits, for each W in ``widths``."""
    pair = {name: workers[name] for name in (BASELINE, "NumPy") if name in workers}
    if len(pair) < 2:
        return ["Skipped: needs both the fastnn and the NumPy worker."], None
    speedup, rows = {}, []
    for width in widths:
        sizes = (64, width, width, 10)
        times = times_by_system(_fit_replies(pair, data, sizes, epochs, 32, repeats, settle_s, None,
                                    None))
        speedup[width] = paired_ratios(times, "NumPy", BASELINE)
        progress(f"width {width}: NumPy / fastnn = {speedup[width].median:.3g}")
        rows.append([width, seconds(Summary.of(times[BASELINE])),
                     seconds(Summary.of(times["NumPy"])), ratio(speedup[width])])
    lines = [f"64-W-W-10 on the digits training rows, batch 32, {epochs} epoch(s), "
             f"{repeats} interleaved rounds per width.", ""]
    lines += table(["W", "fastnn", "NumPy", "NumPy time / fastnn time"], rows)
    figure = helper.call("plot", kind="speedup_vs_width", path=str(plot_path),
                         data={w: (s.median, s.low, s.high) for w, s in speedup.items()})
    lines += ["", figure]
    return lines, {"speedup": speedup}
