"""Threads under load, parent side: fastnn's default threads against one thread.

A 784-512-512-10 epoch on random rows is timed in four conditions, interleaved round
by round: the machine idle or with one busy-loop process pinned on one core, times
fastnn's default thread count or ``set_num_threads(1)``.  Then two fastnn processes
train at once (both started together) against the same fit alone, for both settings.

Each setting lives in its own fastnn worker (two of each, for the concurrent runs); the
workers report their per-thread CPU time and context switches from
``/proc/self/task/*/stat`` and ``status``, which shows where the time went (a thread that
spins while it waits burns CPU time without progress; a descheduled one shows up as
involuntary context switches).
"""
import os
import statistics
import subprocess
import sys
import time

from report import paired_ratios, ratio, seconds, table
from timing import Summary
from workers import Worker, WorkerError, rotated

SIZES = (784, 512, 512, 10)
BUSY_LOOP = "while True:\n    pass\n"
SETTINGS = {"default threads": None, "1 thread": 1}


def start_busy_loop(core):
    """A Python busy loop pinned on ``core`` (stdlib only, so nothing else is loaded)."""
    def pin():
        os.sched_setaffinity(0, {core})
    return subprocess.Popen([sys.executable, "-c", BUSY_LOOP], preexec_fn=pin,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def stop(process):
    process.kill()
    process.wait()


def _detail(reply):
    """CPU cores used, active threads and context switches of one fit."""
    threads = reply["threads"]
    active = [t for t in threads if t["cpu_s"] > 0.01]
    cpu = sum(t["cpu_s"] for t in threads)
    return {"cores": cpu / reply["seconds"], "active": len(active),
            "voluntary": sum(t["voluntary"] for t in threads),
            "involuntary": sum(t["involuntary"] for t in threads)}


def _summarise_detail(replies):
    details = [_detail(reply) for reply in replies]
    return {key: statistics.median(d[key] for d in details) for key in details[0]}


def bench_threads(pool, rows, repeats, batch_size, progress, settle_s):
    """Run the part; return Markdown lines and ``{"ratio": {...}, "times": {...}}``."""
    cores = sorted(os.sched_getaffinity(0))
    data = ("random", rows, SIZES[0], SIZES[-1], 0)
    workers = {}
    try:
        for label, threads in SETTINGS.items():
            for copy in ("", " B"):
                worker = Worker("fastnn", threads, pool.log_dir, label=f"fastnn {label}{copy}")
                pool.extra.append(worker)
                workers[label + copy] = worker
    except WorkerError as exc:
        return [f"Skipped: the fastnn worker did not start ({str(exc).splitlines()[-1]})."], None
    kwargs = dict(data=data, sizes=SIZES, batch_size=batch_size, settle_s=settle_s)
    replies = {(cond, label): [] for cond in ("idle", "busy") for label in SETTINGS}
    concurrent = {label: [] for label in SETTINGS}
    for round_index in range(-1, repeats):
        seed = max(round_index, 0)
        for condition in rotated(["idle", "busy"], round_index):
            loop = start_busy_loop(cores[-1]) if condition == "busy" else None
            if loop is not None:
                time.sleep(0.5)  # let the loop reach full speed
            try:
                for label in rotated(SETTINGS, round_index):
                    reply = workers[label].call("threads_fit", seed=seed, **kwargs)
                    if round_index >= 0:
                        replies[condition, label].append(reply)
                        progress(f"round {round_index + 1}/{repeats} {condition} {label}: "
                                 f"{reply['seconds']:.3g} s")
            finally:
                if loop is not None:
                    stop(loop)
        for label in rotated(SETTINGS, round_index):
            time.sleep(settle_s)
            pair = (workers[label], workers[label + " B"])
            for worker in pair:
                worker.submit("threads_fit", seed=seed, **{**kwargs, "settle_s": 0.0})
            both = [worker.result() for worker in pair]
            if round_index >= 0:
                concurrent[label].append(both)
                progress(f"round {round_index + 1}/{repeats} two at once, {label}: "
                         + ", ".join(f"{r['seconds']:.3g} s" for r in both))
    for worker in workers.values():
        worker.call("drop_data")
    return _report(replies, concurrent, rows, batch_size, repeats, cores)


def _report(replies, concurrent, rows, batch_size, repeats, cores):
    times = {key: [r["seconds"] for r in values] for key, values in replies.items()}
    table_rows = []
    for (condition, label), values in replies.items():
        d = _summarise_detail(values)
        table_rows.append([condition, label, seconds(Summary.of(times[condition, label])),
                           f"{d['cores']:.2f}", d["active"], f"{d['voluntary']:.0f}",
                           f"{d['involuntary']:.0f}"])
    ratios = {}
    for condition in ("idle", "busy"):
        ratios[condition] = paired_ratios(
            {"d": times[condition, "default threads"], "1": times[condition, "1 thread"]},
            "d", "1")
    alone = {label: times["idle", label] for label in SETTINGS}
    together = {label: [max(r["seconds"] for r in pair) for pair in values]
                for label, values in concurrent.items()}
    lines = [f"784-512-512-10, one epoch of {rows} random rows, batch {batch_size}, "
             f"{repeats} interleaved rounds; 'busy' = one Python busy loop pinned on core "
             f"{cores[-1]} of {len(cores)}, 'idle' = no busy loop added (whatever else the "
             "machine ran is in the load line below). CPU columns come from "
             "/proc/<pid>/task/*/stat of the training process (medians over rounds): "
             "cores = CPU seconds of all its threads / wall seconds; active = threads "
             "that used > 10 ms.", ""]
    lines += table(["machine", "fastnn threads", "epoch time", "cores used", "active threads",
                    "voluntary switches", "involuntary switches"], table_rows)
    lines += ["", f"- default / 1 thread, idle machine: {ratio(ratios['idle'])} "
              "(target ≤ 0.9)",
              f"- default / 1 thread, one core busy: {ratio(ratios['busy'])} (target ≤ 1.25)"]
    conc_rows = []
    for label in SETTINGS:
        each = [r["seconds"] for pair in concurrent[label] for r in pair]
        slowdown = Summary.of(t / a for t, a in zip(together[label], alone[label], strict=True))
        conc_rows.append([label, seconds(Summary.of(alone[label])), seconds(Summary.of(each)),
                          ratio(slowdown)])
    lines += ["", "Two fastnn processes training at once (same fit, started together) "
              "against one alone (the idle rows above):", ""]
    lines += table(["fastnn threads", "alone", "each of two at once",
                    "slower of the two / alone (same round)"], conc_rows)
    return lines, {"ratio": ratios, "times": times,
                   "concurrent": {label: together[label] for label in SETTINGS}}
