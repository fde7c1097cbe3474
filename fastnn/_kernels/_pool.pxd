# The process-wide worker pool and the BLAS thread switch (csrc/fnn_pool.h, _pool.pyx).
ctypedef void (*task_fn)(void* ctx, int task) noexcept nogil

cdef void pool_run(int threads, int ntasks, task_fn fn, void* ctx) noexcept nogil
cdef bint blas_serial_enter() noexcept nogil
cdef void blas_serial_exit() noexcept nogil
