"""Thread count for fastnn's loops and GEMMs.

The threading policy (measured in benchmarks/bench_threads.py, issue 11): fastnn's GEMMs
go through scipy's OpenBLAS, whose own thread pool hands work off between threads for
every call; on a loaded machine those hand-offs made the default threads up to 8x slower
than one thread.  So inside fastnn BLAS runs single-threaded (its thread count is set to 1
around each GEMM large enough for OpenBLAS to thread, and restored right after: Python
code, callbacks included, always sees the user's setting), and fastnn splits a GEMM of at
least ~4M multiply-adds itself into row or column blocks of the output, one BLAS call per
block, handed out one at a time to the calling thread and a persistent pool of workers
that sleep on a condition variable between GEMMs (csrc/fnn_pool.h).  A thread slowed by
another process on its core takes fewer blocks; smaller GEMMs (the digits net's) stay on
the calling thread.  Results depend on the thread count only, never on timing.
"""
import os

from fastnn._kernels import _omp


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _initial_threads():
    """OMP_NUM_THREADS when the user set it (as OpenMP itself does), else the usable cores."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else _available_cores()


_num_threads = _initial_threads()
_omp.set_num_threads(_num_threads)  # what get_num_threads reports is what the loops use
_blas_limiter = None


def set_num_threads(n: int) -> None:
    """Use `n` threads in fastnn's parallel loops and GEMMs, and limit BLAS to `n`.

    Parameters
    ----------
    n : int
        Number of threads, >= 1.  ``1`` runs everything serially on the calling thread.
        Large GEMMs are split over `n` threads of fastnn's own pool (pthreads; serial
        where the platform has none); the optimizer kernels called directly use OpenMP
        (serial without it).  The BLAS libraries loaded in the process are also limited
        to `n` threads (threadpoolctl), as before.
    """
    global _num_threads, _blas_limiter
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _omp.set_num_threads(n)
    from threadpoolctl import threadpool_limits  # imported lazily: keeps `import fastnn` light

    from fastnn._kernels import load_blas

    load_blas()  # scipy's BLAS is loaded at first use: load it now so that the limit reaches it

    _blas_limiter = threadpool_limits(limits=n, user_api="blas")
    _num_threads = n


def get_num_threads() -> int:
    """Threads fastnn uses: the cores available to the process unless OMP_NUM_THREADS or
    set_num_threads says otherwise.  BLAS keeps its own default (OPENBLAS_NUM_THREADS or
    the cores) for code outside fastnn until set_num_threads is called, so that
    ``import fastnn`` stays light; inside fastnn it runs single-threaded."""
    return _num_threads
