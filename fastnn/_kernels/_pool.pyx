"""fastnn's worker pool and the switch that keeps BLAS single-threaded inside fastnn.

The only module that includes csrc/fnn_pool.h, so that the process has one pool; the
other kernel modules reach it through the cdef functions declared in _pool.pxd.  See
the header for the design (sleeping workers, dynamic task hand-out, BLAS limited to one
thread around each large GEMM and restored after it).  Importing this module starts no
thread: workers start at the first GEMM large enough to be split.
"""

cdef extern from "fnn_pool.h" nogil:
    ctypedef void (*fnn_task_fn)(void* ctx, int task) noexcept nogil
    void fnn_pool_run(int threads, int ntasks, fnn_task_fn fn, void* ctx)
    int fnn_pool_workers()
    int fnn_pool_has_threads()
    void fnn_pool_reset_backoff()
    void fnn_blas_thread_functions(void* setter, void* getter)
    int fnn_blas_serial_enter()
    void fnn_blas_serial_exit()
    bint fnn_blas_controlled "(fnn_blas_set_threads != NULL)"


cdef void pool_run(int threads, int ntasks, task_fn fn, void* ctx) noexcept nogil:
    fnn_pool_run(threads, ntasks, <fnn_task_fn>fn, ctx)


cdef bint blas_serial_enter() noexcept nogil:
    return fnn_blas_serial_enter() != 0


cdef void blas_serial_exit() noexcept nogil:
    fnn_blas_serial_exit()


def set_blas_thread_functions(size_t setter, size_t getter):
    """Addresses of the BLAS's ``void set_num_threads(int)`` and ``int get_num_threads()``
    (0, 0: leave BLAS's threads alone)."""
    if (setter == 0) != (getter == 0):
        raise ValueError("set_blas_thread_functions: give both functions or neither")
    fnn_blas_thread_functions(<void*>setter, <void*>getter)


def blas_thread_control():
    """True when fastnn can switch BLAS's threads off around its GEMMs (and so splits
    large GEMMs over its own pool)."""
    return bool(fnn_blas_controlled)


def pool_workers():
    """Worker threads started so far (0 before the first split GEMM, or without
    pthreads)."""
    return fnn_pool_workers()


def pool_available():
    """True when the pool can run threads (built with pthreads)."""
    return bool(fnn_pool_has_threads())


def reset_backoff():
    """Let the workers take part in the next job even if the pool was backing off
    (for tests that check what the workers do)."""
    fnn_pool_reset_backoff()


cdef extern from "fnn_common.h" nogil:
    unsigned int fnn_fp_mode_get()
    unsigned int fnn_denormals_off()
    void fnn_denormals_restore(unsigned int old)


cdef void _probe_task(void* ctx, int task) noexcept nogil:
    # long enough (~2 ms of arithmetic) that a woken worker takes some of the tasks
    cdef double s = 0
    cdef long i
    for i in range(2000000):
        s = s + 1e-9 * i
    (<unsigned int*>ctx)[task] = (fnn_fp_mode_get() & 0x8040u) | (1u if s < 0 else 0u)


def _pool_fp_modes(int threads, int ntasks, bint flush):
    """Test probe: the FTZ|DAZ bits each of `ntasks` pool tasks ran with, the caller
    flushing denormals when `flush` (restored after)."""
    import numpy as np
    modes = np.zeros(ntasks, np.uint32)
    cdef unsigned int[::1] mv = modes
    cdef unsigned int old = 0
    with nogil:
        if flush:
            old = fnn_denormals_off()
        fnn_pool_run(threads, ntasks, _probe_task, &mv[0])
        if flush:
            fnn_denormals_restore(old)
    return modes
