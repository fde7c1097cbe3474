"""Scale, parent side: one epoch of 784-256-256-10 on 1e4 ... 1e6 rows, time and peak RSS.

Every point runs in a fresh fastnn worker, so its peak resident set size
(``ru_maxrss``) belongs to that point alone.  The rows (784 standard-normal float32
features, int64 labels) are written once to a cache file by the helper worker; a point
reads them into memory, or maps them as ``np.memmap`` from ``memmap_from`` rows on.
fastnn must never copy float32 C-contiguous rows, memory-mapped ones included, so the
peak RSS should be the data plus a constant.  With a memmap the data's pages count in
the RSS as file pages as the epoch touches them (RssFile), not as an anonymous copy.
"""
import statistics

from report import seconds, table
from timing import Summary
from workers import Worker, WorkerError

SIZES = (784, 256, 256, 10)
MIB = 2.0**20


def bench_scale(pool, cache_path, points, memmap_from, repeats, plot_path, progress):
    """Run every point; return Markdown lines and the per-point data."""
    biggest = max(points)
    state = pool.helper.call("make_scale_data", path=str(cache_path), rows=biggest,
                             width=SIZES[0], classes=SIZES[-1])
    progress(f"scale data for {biggest} rows: {state} ({cache_path}.x)")
    results = []
    for rows in points:
        memmap = rows >= memmap_from
        try:
            worker = Worker("fastnn", pool.threads, pool.log_dir, label=f"fastnn scale {rows}")
        except WorkerError as exc:
            return [f"Skipped: the fastnn worker did not start ({exc})."], None
        try:
            point = worker.call("scale_point", path=str(cache_path), rows=rows,
                                width=SIZES[0], classes=SIZES[-1], memmap=memmap,
                                repeats=repeats, batch_size=256, sizes=SIZES)
        except WorkerError as exc:
            progress(f"scale point {rows} failed: {str(exc).splitlines()[-1][:200]}")
            continue
        finally:
            worker.close()
        point["seconds_all"] = point["seconds"]
        point["seconds"] = statistics.median(point["seconds"])
        point["base_kib"] = point["base"]["maxrss_kib"]
        results.append(point)
        progress(f"scale {rows} rows ({'memmap' if memmap else 'in memory'}): "
                 f"{point['seconds']:.3g} s, peak RSS {point['peak_kib'] / 1024:.0f} MiB")
    if not results:
        return ["Skipped: every point failed."], None
    return _report(results, repeats, pool.helper, plot_path, pool.threads), {"points": results}


def _report(results, repeats, helper, plot_path, threads):
    """The table, the linearity and memory verdicts, and the plot."""
    rows = []
    last = results[-1]
    per_row = last["seconds"] / last["rows"]
    for p in results:
        peak = p["peak_kib"] * 1024
        over = peak - p["data_bytes"] - p["base_kib"] * 1024
        kind = f"memmap, mode={p['memmap_mode']!r}" if p["memmap"] else "in memory"
        rows.append([p["rows"], kind,
                     seconds(Summary.of(p["seconds_all"])),
                     f"{p['seconds'] / p['rows'] * 1e6:.3g}",
                     f"{p['seconds'] / (per_row * p['rows']):.2f}",
                     f"{p['data_bytes'] / MIB:.0f}", f"{p['base_kib'] / 1024:.0f}",
                     f"{peak / MIB:.0f}", f"{over / MIB:+.0f}",
                     f"{p['end'].get('RssAnon', 0) / 1024:.0f} / "
                     f"{p['end'].get('RssFile', 0) / 1024:.0f}"])
    lines = [f"784-256-256-10, batch 256, one epoch per fit, {repeats} fit(s) per point, each "
             f"point in a fresh fastnn process with {threads or 'the default number of'} "
             "thread(s). 'before' is the peak RSS after importing "
             "fastnn and one warm-up fit on 256 rows, before the data is loaded; 'excess' = "
             "peak - data - before (what training costs beyond the data).", ""]
    lines += table(["rows", "data as", "epoch time", "µs per row",
                    "time / linear (from the largest)", "data MiB", "before MiB",
                    "peak RSS MiB", "excess MiB", "RssAnon / RssFile MiB at the end"], rows)
    lines += ["", _verdicts(results)]
    refused = sorted({p["refused"] for p in results if p.get("refused")})
    if refused:
        lines += ["", "**fastnn refused a read-only `np.memmap` (mode='r')**: "
                  + "; ".join(f"`{text}`" for text in refused)
                  + ". Those points ran on a copy-on-write map of the same file "
                  "(mode='c'), which fastnn accepts without copying it."]
    figure = helper.call("plot", kind="scale", data=results, path=str(plot_path))
    return [*lines, "", figure]


def _verdicts(results):
    """One sentence each: is time linear in rows, is memory the data plus a constant?"""
    if len(results) < 2:
        return "(one point only: no verdict on linearity or memory)"
    first, last = results[0], results[-1]
    growth = (last["seconds"] / last["rows"]) / (first["seconds"] / first["rows"])
    excess = [(p["peak_kib"] - p["base_kib"]) * 1024 - p["data_bytes"] for p in results]
    per_row = (excess[-1] - excess[0]) / (last["rows"] - first["rows"])
    data_per_row = last["data_bytes"] / last["rows"]
    return (f"Time per row at {last['rows']} rows / at {first['rows']} rows: {growth:.2f} "
            f"(1 = linear). Memory beyond the data grew from {excess[0] / MIB:.0f} MiB to "
            f"{excess[-1] / MIB:.0f} MiB, i.e. {per_row:.0f} bytes per extra row "
            f"({100 * per_row / data_per_row:.0f}% of a row's {data_per_row:.0f} data bytes; "
            "0 = data plus a constant).")
