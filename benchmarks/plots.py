"""The report's figures, drawn in the helper worker (matplotlib never loads in the parent)."""
import pathlib


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def speedup_vs_width(data, path):
    """fastnn's speed-up over NumPy against hidden width; ``data``: W -> (median, low, high)."""
    try:
        plt = _pyplot()
    except ImportError:
        return "(plot skipped: matplotlib is not installed)"
    import matplotlib.ticker

    widths = sorted(data)
    medians = [data[w][0] for w in widths]
    errors = [[data[w][0] - data[w][1] for w in widths], [data[w][2] - data[w][0] for w in widths]]
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
    return f"![fastnn speed-up over NumPy against hidden width]({pathlib.Path(path).name})"


def scale(data, path):
    """Epoch time and peak RSS against rows; ``data``: list of point dicts (``bench_scale``)."""
    try:
        plt = _pyplot()
    except ImportError:
        return "(plot skipped: matplotlib is not installed)"
    rows = [p["rows"] for p in data]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.0), dpi=110)
    left.plot(rows, [p["seconds"] for p in data], "o-", label="fastnn, one epoch (median)")
    slope = data[-1]["seconds"] / data[-1]["rows"]
    left.plot(rows, [slope * r for r in rows], "--", color="grey",
              label="linear through the largest point")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("training rows (784 float32 features)")
    left.set_ylabel("seconds per epoch")
    left.set_title("784-256-256-10, batch 256, one epoch")
    left.grid(True, alpha=0.3)
    left.legend()
    mib = 2.0**20
    right.plot(rows, [p["peak_kib"] * 1024 / mib for p in data], "o-", label="peak RSS")
    right.plot(rows, [p["data_bytes"] / mib for p in data], "s--", label="data (X and y)")
    right.plot(rows, [(p["data_bytes"] + p["base_kib"] * 1024) / mib for p in data], ":",
               color="grey", label="data + RSS before loading it")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("training rows")
    right.set_ylabel("MiB")
    right.set_title("peak resident memory of the training process")
    right.grid(True, alpha=0.3)
    right.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"![epoch time and peak memory against rows]({pathlib.Path(path).name})"
