# Optimizer cores shared by optim.pyx and the training engine (see optim.pyx).
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow

from fastnn._kernels._csrc cimport (fnn_adam_update_f32, fnn_adam_update_f64,
                                    fnn_sgd_update_f32, fnn_sgd_update_f64)
from fastnn._kernels._omp cimport current_num_threads

# Threads split the buffer into chunks of _CHUNK elements, and only buffers of at least
# _PARALLEL_MIN elements are split: below that a thread wake-up costs more than it saves.
cdef enum:
    _CHUNK = 65536
    _PARALLEL_MIN = 262144


cdef inline void _adam_range(Py_ssize_t lo, Py_ssize_t hi, floating* w, const floating* g,
                             floating* m, floating* v, double alpha, double beta_1,
                             double beta_2, double epsilon) noexcept nogil:
    if floating is float:
        fnn_adam_update_f32(hi - lo, w + lo, g + lo, m + lo, v + lo, <float>alpha,
                            <float>(1.0 - beta_1), <float>(1.0 - beta_2), <float>epsilon)
    else:
        fnn_adam_update_f64(hi - lo, w + lo, g + lo, m + lo, v + lo, alpha,
                            1.0 - beta_1, 1.0 - beta_2, epsilon)


cdef inline void _sgd_range(Py_ssize_t lo, Py_ssize_t hi, floating* w, const floating* g,
                            floating* u, double lr, double momentum,
                            bint nesterov) noexcept nogil:
    if floating is float:
        fnn_sgd_update_f32(hi - lo, w + lo, g + lo, u + lo if u != NULL else NULL,
                           <float>lr, <float>momentum, nesterov)
    else:
        fnn_sgd_update_f64(hi - lo, w + lo, g + lo, u + lo if u != NULL else NULL,
                           lr, momentum, nesterov)


cdef inline void adam_core(Py_ssize_t n, floating* w, const floating* g, floating* m,
                    floating* v, double lr, double beta_1, double beta_2,
                    double epsilon, long long step, bint threaded=True) noexcept nogil:
    """One Adam step at 1-based `step`; alpha = lr sqrt(1 - b2^t) / (1 - b1^t).

    threaded=False keeps the update on the calling thread (the training engine: see
    engine.pyx, _train_batches)."""
    cdef double alpha = lr * sqrt(1.0 - pow(beta_2, <double>step)) / (1.0 - pow(beta_1, <double>step))
    cdef Py_ssize_t c, lo, nchunks = (n + _CHUNK - 1) // _CHUNK
    cdef int threads = current_num_threads() if threaded else 1
    if n < _PARALLEL_MIN or threads < 2:
        _adam_range(0, n, w, g, m, v, alpha, beta_1, beta_2, epsilon)
        return
    for c in prange(nchunks, schedule="static", num_threads=threads):
        lo = c * _CHUNK
        _adam_range(lo, min(lo + _CHUNK, n), w, g, m, v, alpha, beta_1, beta_2, epsilon)


cdef inline void sgd_core(Py_ssize_t n, floating* w, const floating* g, floating* u, double lr,
                   double momentum, bint nesterov, bint threaded=True) noexcept nogil:
    """One SGD step (momentum 0: plain; else classical or Nesterov momentum)."""
    cdef Py_ssize_t c, lo, hi, nchunks = (n + _CHUNK - 1) // _CHUNK
    cdef int threads = current_num_threads() if threaded else 1
    if n < _PARALLEL_MIN or threads < 2:
        _sgd_range(0, n, w, g, u, lr, momentum, nesterov)
        return
    for c in prange(nchunks, schedule="static", num_threads=threads):
        lo = c * _CHUNK
        _sgd_range(lo, min(lo + _CHUNK, n), w, g, u, lr, momentum, nesterov)
