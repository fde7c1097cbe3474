"""Optimizer updates and gradient clipping over flat parameter buffers (Keras 3 rules).

Contract: w, g and the state buffers are C-contiguous, of one dtype and one
length; w and the state (or g, for clipping) are updated in place with the GIL
released.  Large buffers are cut into one piece per thread, run on fastnn's pool
(csrc/fnn_pool.h); every element is independent, so results do not depend on the
thread count.

Floating-point mode: the pool's workers run their pieces in the calling thread's mode
(flush-to-zero and denormals-are-zero included) and restore their own after, so
1 and 2 threads give the same bits even where denormals occur.  The training
engine sets flush-to-zero on the calling thread; these entry points do not.
"""
from cython cimport floating

from fastnn._kernels._csrc cimport fnn_denormals_off, fnn_denormals_restore, fnn_fp_mode_get
from fastnn._kernels._omp cimport current_num_threads
from fastnn._kernels._pool cimport pool_run
from fastnn._kernels._update cimport (_CHUNK, _PARALLEL_MIN, adam_core, clip_global_norm_core,
                                      clip_norm_core, clip_value_core, rmsprop_core, sgd_core)

import numpy as np

#: Buffers of at least PARALLEL_MIN elements are split over threads, in pieces of whole CHUNKs.
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


def adamw_update(floating[::1] w not None, const floating[::1] g not None,
                 floating[::1] m not None, floating[::1] v not None,
                 double learning_rate, double weight_decay, double beta_1, double beta_2,
                 double epsilon, long long step):
    """w *= 1 - weight_decay lr, then adam_update's step (Keras AdamW); t = step >= 1."""
    cdef Py_ssize_t n = w.shape[0]
    if g.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("adamw_update: w, g, m and v must have the same length")
    if step < 1:
        raise ValueError("adamw_update: step must be >= 1")
    if n == 0:
        return
    with nogil:
        adam_core(n, &w[0], &g[0], &m[0], &v[0], learning_rate, beta_1, beta_2, epsilon, step,
                  weight_decay)


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


def rmsprop_update(floating[::1] w not None, const floating[::1] g not None,
                   floating[::1] velocity not None, floating[::1] momentum_buf not None,
                   floating[::1] average_grad not None, double learning_rate, double rho,
                   double momentum, double epsilon, bint centered):
    """v = rho v + (1-rho) g^2; w -= lr g / sqrt(v + eps [- a^2 if centered]) (via momentum).

    momentum_buf is read only when momentum > 0 and average_grad only when centered;
    otherwise they may have any length.
    """
    cdef Py_ssize_t n = w.shape[0]
    if g.shape[0] != n or velocity.shape[0] != n:
        raise ValueError("rmsprop_update: w, g and velocity must have the same length")
    if momentum > 0 and momentum_buf.shape[0] != n:
        raise ValueError("rmsprop_update: momentum_buf must have w's length")
    if centered and average_grad.shape[0] != n:
        raise ValueError("rmsprop_update: average_grad must have w's length")
    if n == 0:
        return
    with nogil:
        rmsprop_core(n, &w[0], &g[0], &velocity[0],
                     &momentum_buf[0] if momentum > 0 else NULL,
                     &average_grad[0] if centered else NULL,
                     learning_rate, rho, momentum, epsilon, centered)


def clip_by_norm(floating[::1] g not None, const long long[:, ::1] segments not None,
                 double clipnorm):
    """Each segment s = g[off:off+len]: s = (s * clipnorm) / max(||s||, clipnorm) (Keras).

    segments has shape (k, 2): (offset, length) rows, inside g.
    """
    cdef Py_ssize_t s, n = g.shape[0]
    if segments.shape[1] != 2:
        raise ValueError("clip_by_norm: segments must have shape (k, 2)")
    for s in range(segments.shape[0]):
        if segments[s, 0] < 0 or segments[s, 1] < 0 or segments[s, 0] + segments[s, 1] > n:
            raise ValueError("clip_by_norm: segment outside g")
    if not clipnorm > 0:
        raise ValueError("clip_by_norm: clipnorm must be > 0")
    with nogil:
        for s in range(segments.shape[0]):
            if segments[s, 1]:
                clip_norm_core(<Py_ssize_t>segments[s, 1], &g[segments[s, 0]], clipnorm)


def clip_by_global_norm(floating[::1] g not None, double clipnorm):
    """g *= clipnorm / max(||g||, clipnorm), written as Keras does (NaN/inf propagate)."""
    if not clipnorm > 0:
        raise ValueError("clip_by_global_norm: clipnorm must be > 0")
    if g.shape[0] == 0:
        return
    with nogil:
        clip_global_norm_core(g.shape[0], &g[0], clipnorm)


def clip_by_value(floating[::1] g not None, double clipvalue):
    """g = clip(g, -clipvalue, clipvalue) elementwise; NaN stays NaN."""
    if not clipvalue > 0:
        raise ValueError("clip_by_value: clipvalue must be > 0")
    if g.shape[0] == 0:
        return
    with nogil:
        clip_value_core(g.shape[0], &g[0], clipvalue)


cdef extern from *:
    """
    #include <time.h>
    #if defined(_WIN32)  /* the pool is serial there: every piece runs on the caller */
    static int fnn_probe_is_caller(void) { return 1; }
    static void fnn_probe_mark_caller(void) {}
    static int fnn_probe_load(int *p) { return *(volatile int *)p; }
    static void fnn_probe_add(int *p) { *p += 1; }
    #else
    static int fnn_probe_load(int *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static void fnn_probe_add(int *p) { __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }
    #include <pthread.h>
    static pthread_t fnn_probe_caller;
    static void fnn_probe_mark_caller(void) { fnn_probe_caller = pthread_self(); }
    static int fnn_probe_is_caller(void) { return pthread_equal(pthread_self(), fnn_probe_caller); }
    #endif
    static double fnn_probe_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }
    """
    void fnn_probe_mark_caller() nogil
    int fnn_probe_is_caller() nogil
    double fnn_probe_now() nogil
    int fnn_probe_load(int* p) nogil
    void fnn_probe_add(int* p) nogil


ctypedef struct _Probe:
    unsigned int* modes
    int* tids
    int begun[2]     # pieces begun so far on the caller, on a worker


cdef void _probe_task(void* ctx, int t) noexcept nogil:
    # record this piece's FTZ|DAZ bits and whether a worker runs it, then wait (up to
    # 0.2 s) until the caller and a worker have each begun a piece, so that neither
    # takes every piece before the other arrives
    cdef _Probe* p = <_Probe*>ctx
    cdef double until = fnn_probe_now() + 0.2
    cdef int who = 0 if fnn_probe_is_caller() else 1
    p.modes[t] = fnn_fp_mode_get() & 0x8040u
    p.tids[t] = who
    fnn_probe_add(&p.begun[who])
    while (fnn_probe_load(&p.begun[0]) == 0 or fnn_probe_load(&p.begun[1]) == 0) and (
            fnn_probe_now() < until):
        pass


def _thread_fp_modes(bint flush):
    """Test probe: the FTZ|DAZ bits each piece of an update-style pool job runs with.

    Sets flush-to-zero on the calling thread when `flush` (restored after), then runs
    2 * threads pieces on the pool and returns (modes, thread ids: 0 the caller, 1 a
    worker), one entry per piece.
    """
    cdef int threads = current_num_threads()
    cdef int nchunks = 2 * threads
    modes = np.zeros(nchunks, np.uint32)
    tids = np.zeros(nchunks, np.int32)
    cdef unsigned int[::1] mv = modes
    cdef int[::1] tv = tids
    cdef unsigned int caller = 0
    cdef _Probe probe
    probe.modes, probe.tids, probe.begun[0], probe.begun[1] = &mv[0], &tv[0], 0, 0
    with nogil:
        fnn_probe_mark_caller()
        if flush:
            caller = fnn_denormals_off()
        pool_run(threads, nchunks, _probe_task, &probe)
        if flush:
            fnn_denormals_restore(caller)
    return modes, tids
