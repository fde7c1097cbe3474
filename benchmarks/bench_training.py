"""Whole-fit benchmarks: the digits network, the wide network and the width sweep.

Each function times complete ``fit`` calls of every system, interleaved round by round
(``timing.interleave``), and returns Markdown lines for RESULTS.md together with the
numbers the targets are checked against.
"""
import numpy as np

from competitors import accuracy
from machine import training_flops
from report import paired_ratios, ratio, seconds, table
from timing import Summary, interleave

DIGITS_SIZES = (64, 25, 15, 10)
WIDE_SIZES = (784, 1024, 1024, 10)
BASELINE = "fastnn"


def digits_data():
    """The digits split used everywhere: X / 16 as float32, stratified 80/20, seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def wide_data(n_rows, seed=0):
    """Standard-normal float32 rows of width 784 with uniform random labels 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, WIDE_SIZES[0]), dtype=np.float32)
    return X, rng.integers(0, WIDE_SIZES[-1], n_rows)


def _fit_jobs(systems, X, y, sizes, epochs, batch_size):
    """``{name: job(seed)}`` training a fresh model of each system."""
    def job_for(system):
        return lambda seed: system.fit(X, y, sizes, epochs, batch_size, seed)
    return {name: job_for(system) for name, system in systems.items()}


def _time_table(times, flops, ceiling, accuracies=None):
    """Rows: system, seconds, time relative to fastnn, GFLOP/s (and test accuracy)."""
    rows = []
    for name, values in times.items():
        summary = Summary.of(values)
        relative = paired_ratios(times, name, BASELINE) if BASELINE in times else None
        gflops = flops / summary.median / 1e9
        row = [name, seconds(summary), ratio(relative) if relative else "n/a",
               f"{gflops:.3g} ({100 * gflops / ceiling:.2g}%)"]
        if accuracies is not None:
            row.append(f"{np.median(accuracies[name]):.4f}")
        rows.append(row)
    header = ["system", "time, median (min-max)", "time / fastnn time",
              "GEMM GFLOP/s (% of matmul ceiling)"]
    if accuracies is not None:
        header.append("test accuracy (median)")
    return table(header, rows)


def bench_digits(systems, epochs, repeats, ceiling, progress=None, settle_s=0.0):
    """Digits 64-25-15-10, Adam(1e-3), batch 32, ``epochs`` epochs: every system.

    ``ceiling`` is the machine's float32 matmul GFLOP/s, printed next to each system's;
    ``settle_s`` is the pause before each timed fit (``timing.interleave``).

    Returns
    -------
    lines : list of str
    data : dict
        ``times`` (name -> seconds per round) and ``accuracy`` (name -> per round).
    """
    X_train, X_test, y_train, y_test = digits_data()
    jobs = _fit_jobs(systems, X_train, y_train, DIGITS_SIZES, epochs, 32)
    times, accuracies = interleave(
        jobs, repeats, warmup=1, progress=progress, settle_s=settle_s,
        after=lambda name: accuracy(systems[name], X_test, y_test))
    flops = training_flops(DIGITS_SIZES, len(X_train), epochs)
    lines = [f"{len(X_train)} training rows, {len(X_test)} test rows, batch 32, {epochs} "
             f"epochs, {repeats} interleaved rounds after one warm-up round; "
             f"{flops / 1e9:.3g} GFLOP of GEMMs per fit.", ""]
    lines += _time_table(times, flops, ceiling, accuracies)
    return lines, {"times": times, "accuracy": accuracies, "epochs": epochs}


def bench_wide(systems, n_rows, repeats, ceiling, progress=None, settle_s=0.0):
    """784-1024-1024-10, batch 256, one epoch over ``n_rows`` random rows."""
    X, y = wide_data(n_rows)
    jobs = _fit_jobs(systems, X, y, WIDE_SIZES, 1, 256)
    times, _ = interleave(jobs, repeats, warmup=1, progress=progress, settle_s=settle_s)
    flops = training_flops(WIDE_SIZES, n_rows, 1)
    lines = [f"{n_rows} random rows, batch 256, one epoch, {repeats} interleaved rounds "
             f"after one warm-up round; {flops / 1e9:.3g} GFLOP of GEMMs per fit.", ""]
    lines += _time_table(times, flops, ceiling)
    return lines, {"times": times, "rows": n_rows}


def bench_width_sweep(systems, widths, epochs, repeats, plot_path, progress=None,
                      settle_s=0.0):
    """fastnn's speed-up over NumPy for 64-W-W-10 on digits, for each W in ``widths``.

    Returns
    -------
    lines : list of str
    data : dict
        ``speedup``: W -> Summary of NumPy time / fastnn time per round.
    """
    X_train, _, y_train, _ = digits_data()
    pair = {name: systems[name] for name in (BASELINE, "NumPy")}
    speedup, rows = {}, []
    for width in widths:
        sizes = (64, width, width, 10)
        jobs = _fit_jobs(pair, X_train, y_train, sizes, epochs, 32)
        times, _ = interleave(jobs, repeats, warmup=1, settle_s=settle_s)
        speedup[width] = paired_ratios(times, "NumPy", BASELINE)
        if progress is not None:
            progress(f"width {width}: NumPy / fastnn = {speedup[width].median:.3g}")
        rows.append([width, seconds(Summary.of(times[BASELINE])),
                     seconds(Summary.of(times["NumPy"])), ratio(speedup[width])])
    lines = [f"64-W-W-10 on the digits training rows, batch 32, {epochs} epoch(s), "
             f"{repeats} interleaved rounds per width.", ""]
    lines += table(["W", "fastnn", "NumPy", "NumPy time / fastnn time"], rows)
    lines += ["", plot_speedup(speedup, plot_path)]
    return lines, {"speedup": speedup}


def plot_speedup(speedup, path):
    """Save the speed-up against width as a PNG; return the Markdown that shows or explains it."""
    try:
        import matplotlib
    except ImportError:
        return "(plot skipped: matplotlib is not installed)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    widths = sorted(speedup)
    medians = [speedup[w].median for w in widths]
    errors = [[speedup[w].median - speedup[w].low for w in widths],
              [speedup[w].high - speedup[w].median for w in widths]]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    ax.errorbar(widths, medians, yerr=errors, marker="o", capsize=3,
                label="fastnn speed-up (median, min-max)")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--", label="NumPy")
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set_yscale("log")  # ratios: 2x faster and 2x slower lie equally far from 1
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("hidden width W (network 64-W-W-10)")
    ax.set_ylabel("NumPy time / fastnn time")
    ax.set_title("fastnn vs vectorised NumPy, same algorithm, digits")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"![fastnn speed-up over NumPy against hidden width]({path.name})"
