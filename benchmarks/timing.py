"""Interleaved timing: every system runs once per round, so slow drifts hit all alike.

Run-to-run noise on the 2-core machines this project runs on is about +-10%
(``shared/PERF-NOTES.md``), and a neighbouring compile job can slow one stretch of a
run.  Timing system A five times and then system B five times would charge such a
stretch to one system only.  Here each round times every system once, the order
rotates from round to round, and the report gives the median with the min-max range.
Nothing here asserts on a time.

Before each timed job or batch the harness sleeps ``settle_s``.  Each system brings
its own thread pool (NumPy's OpenBLAS, SciPy's OpenBLAS which fastnn calls, PyTorch's
OpenMP, TensorFlow's Eigen pool), and a pool's workers keep spinning for a while after
their last task (OpenBLAS: 2**28 cycles by default, about 0.1 s).  On two cores, a pool
left spinning by the previous system stalls the next system's two-thread work: measured
here, 32x316 @ 316x316 GEMMs took 16 ms instead of 0.1 ms when NumPy's and SciPy's
OpenBLAS alternated 0.02 s apart.  The pause lets the idle pool go to sleep, so each
system is timed as if it ran alone.
"""
import gc
import statistics
import time
from dataclasses import dataclass

from workers import rotated  # noqa: F401 - one definition for parent and workers


@dataclass(frozen=True)
class Summary:
    """Median and range of repeated measurements (seconds, or any unit)."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values):
        values = list(values)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def scaled(self, factor):
        """The same summary in another unit, e.g. ``scaled(1e6)`` for microseconds."""
        return Summary(self.median * factor, self.low * factor, self.high * factor, self.count)

    def format(self, digits=3):
        """``median (low-high)`` with ``digits`` significant digits."""
        return f"{self.median:.{digits}g} ({self.low:.{digits}g}-{self.high:.{digits}g})"




def interleave(jobs, repeats, warmup=1, after=None, progress=None, settle_s=0.0):
    """Time each job once per round for ``repeats`` rounds, after untimed warm-up rounds.

    Parameters
    ----------
    jobs : dict of str to callable
        ``job(seed)`` does the work to be timed; the round number is the seed, so each
        round trains from a different initialisation (the same one for every system
        that can share it).
    repeats, warmup : int
    after : callable, optional
        ``after(name)``, called untimed after each timed job; its return values are
        collected per job (e.g. the test accuracy of the model just trained).
    progress : callable, optional
        Called with a one-line status string after each timed job.
    settle_s : float
        Untimed pause before each job (see the module docstring).

    Returns
    -------
    times : dict of str to list of float
        Wall seconds per round.
    extras : dict of str to list
        The values ``after`` returned, per round.
    """
    times = {name: [] for name in jobs}
    extras = {name: [] for name in jobs}
    for round_index in range(-warmup, repeats):
        for name in rotated(jobs, round_index):
            gc.collect()  # start every job with the same, empty garbage
            time.sleep(settle_s)
            start = time.perf_counter()
            jobs[name](max(round_index, 0))
            elapsed = time.perf_counter() - start
            if round_index < 0:
                continue
            times[name].append(elapsed)
            if after is not None:
                extras[name].append(after(name))
            if progress is not None:
                progress(f"round {round_index + 1}/{repeats} {name}: {elapsed:.4g} s")
    return times, extras


def calls_per_batch(fn, budget_s, settle_s=0.0):
    """How many back-to-back calls of ``fn()`` fill about ``budget_s`` seconds."""
    time.sleep(settle_s)
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            fn()
        if time.perf_counter() - start >= budget_s / 4 or count >= 1 << 24:
            return max(1, int(count * budget_s / max(time.perf_counter() - start, 1e-9)))
        count *= 4


def per_call_seconds(fns, repeats, budget_s, settle_s=0.0):
    """Interleaved per-call times of small functions: ``{name: [seconds per call, ...]}``.

    Each repeat times one batch of back-to-back calls per function (batch sizes chosen
    once, so that a batch lasts about ``budget_s``) and divides by the batch size;
    ``settle_s`` is the untimed pause before each batch.
    """
    counts = {name: calls_per_batch(fn, budget_s, settle_s) for name, fn in fns.items()}
    results = {name: [] for name in fns}
    for round_index in range(repeats):
        for name in rotated(fns, round_index):
            fn, count = fns[name], counts[name]
            time.sleep(settle_s)
            start = time.perf_counter()
            for _ in range(count):
                fn()
            results[name].append((time.perf_counter() - start) / count)
    return results
