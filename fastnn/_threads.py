"""Thread count for fastnn's OpenMP loops and for the BLAS it calls."""
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
    """Use `n` threads in fastnn's parallel loops and in BLAS.

    Parameters
    ----------
    n : int
        Number of threads, >= 1.  Without OpenMP fastnn's own loops run serially,
        but BLAS is still limited to `n` threads.
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
    the cores) until set_num_threads is called, so that ``import fastnn`` stays light."""
    return _num_threads
