"""Optimizer updates over flat parameter buffers (Keras 3 rules).

Contract: w, g and the state buffers are C-contiguous, of one dtype and one
length; w and the state are updated in place with the GIL released.  Large
buffers are split into fixed chunks over OpenMP threads; every element is
independent, so results do not depend on the thread count.
"""
from cython cimport floating

from fastnn._kernels._update cimport _CHUNK, _PARALLEL_MIN, adam_core, sgd_core

#: Buffers of at least PARALLEL_MIN elements are split over threads in CHUNK-element pieces.
PARALLEL_MIN = _PARALLEL_MIN
CHUNK = _CHUNK


def adam_update(floating[::1] w not None, const floating[::1] g not None,
                floating[::1] m not None, floating[::1] v not None,
                double learning_rate, double beta_1, double beta_2, double epsilon,
                long long step):
    """w -= lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps) after updating m, v; t = step >= 1."""
    cdef Py_ssize_t n = w.shape[0]
    if g.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("adam_update: w, g, m and v must have the same length")
    if step < 1:
        raise ValueError("adam_update: step must be >= 1")
    if n == 0:
        return
    with nogil:
        adam_core(n, &w[0], &g[0], &m[0], &v[0], learning_rate, beta_1, beta_2, epsilon, step)


def sgd_update(floating[::1] w not None, const floating[::1] g not None,
               floating[::1] velocity not None,
               double learning_rate, double momentum, bint nesterov):
    """u = momentum u - lr g; w += u (or momentum u - lr g with Nesterov); momentum 0: w -= lr g."""
    cdef Py_ssize_t n = w.shape[0]
    if g.shape[0] != n or (momentum != 0 and velocity.shape[0] != n):
        raise ValueError("sgd_update: w, g and velocity must have the same length")
    if n == 0:
        return
    with nogil:
        sgd_core(n, &w[0], &g[0], &velocity[0] if momentum != 0 else NULL,
                 learning_rate, momentum, nesterov)
