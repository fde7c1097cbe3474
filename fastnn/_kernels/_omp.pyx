"""Thread count for fastnn's OpenMP loops: the only module that calls omp_*.

Built without OpenMP (the compiler probe in setup.py failed), it reports one
thread and every parallel loop runs serially.
"""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FNN_HAVE_OPENMP 1
    static int fnn_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define FNN_HAVE_OPENMP 0
    static int fnn_omp_max_threads(void) { return 1; }
    #endif
    """
    int FNN_HAVE_OPENMP
    int fnn_omp_max_threads() nogil

cdef int _num_threads = 1 if not FNN_HAVE_OPENMP else fnn_omp_max_threads()


cdef int current_num_threads() noexcept nogil:
    return _num_threads


def openmp_available():
    """True when the extension modules were compiled with OpenMP."""
    return bool(FNN_HAVE_OPENMP)


def set_num_threads(int n):
    """Threads used by fastnn's parallel loops (clamped to 1 without OpenMP)."""
    global _num_threads
    if n < 1:
        raise ValueError("n must be >= 1")
    _num_threads = n if FNN_HAVE_OPENMP else 1


def get_num_threads():
    return _num_threads
