# Optimizer cores shared by optim.pyx and the training engine (see optim.pyx).
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow

from fastnn._kernels._csrc cimport (fnn_adam_update_f32, fnn_adam_update_f64,
                                    fnn_adamw_update_f32, fnn_adamw_update_f64,
                                    fnn_clip_value_f32, fnn_clip_value_f64,
                                    fnn_denormals_restore, fnn_fp_mode_get, fnn_fp_mode_swap,
                                    fnn_mul_div_f32, fnn_mul_div_f64,
                                    fnn_rmsprop_update_f32, fnn_rmsprop_update_f64,
                                    fnn_scale_f32, fnn_scale_f64,
                                    fnn_sgd_update_f32, fnn_sgd_update_f64,
                                    fnn_sumsq_f32, fnn_sumsq_f64)
from fastnn._kernels._omp cimport current_num_threads

# Threads split the buffer into chunks of _CHUNK elements, and only buffers of at least
# _PARALLEL_MIN elements are split: below that a thread wake-up costs more than it saves.
cdef enum:
    _CHUNK = 65536
    _PARALLEL_MIN = 262144

# Optimizer kinds (fastnn._kernels.engine.OPTIMIZERS maps names to these codes).
cdef enum:
    OPT_SGD = 0
    OPT_ADAM = 1
    OPT_RMSPROP = 2
    OPT_ADAMW = 3

# Gradient clipping (Keras allows at most one of the three).
cdef enum:
    CLIP_NONE = 0
    CLIP_NORM = 1           # each variable (segment) by its own L2 norm
    CLIP_GLOBAL_NORM = 2    # all gradients by their joint L2 norm
    CLIP_VALUE = 3          # elementwise to [-clip, clip]


ctypedef struct OptState:
    int kind
    void* s1                     # Adam/AdamW m; SGD velocity; RMSprop velocity (mean g^2)
    void* s2                     # Adam/AdamW v; RMSprop momentum buffer (or NULL)
    void* s3                     # RMSprop average gradient when centered (or NULL)
    double beta_1, beta_2, epsilon, momentum, rho, weight_decay
    bint nesterov, centered
    int clip_kind
    double clip
    Py_ssize_t n_segments
    const long long* segments    # CLIP_NORM: (offset, length) pairs, one per variable


# A worker thread runs each chunk in the calling thread's floating-point mode (FTZ/DAZ
# included) and then restores its own: every thread that touches the buffers computes
# in the same, explicit mode, so results cannot depend on when the pool was created.

cdef inline void _adam_range(Py_ssize_t lo, Py_ssize_t hi, floating* w, const floating* g,
                             floating* m, floating* v, double alpha, double beta_1,
                             double beta_2, double epsilon, double keep,
                             bint decay) noexcept nogil:
    if floating is float:
        if decay:
            fnn_adamw_update_f32(hi - lo, w + lo, g + lo, m + lo, v + lo, <float>alpha,
                                 <float>(1.0 - beta_1), <float>(1.0 - beta_2),
                                 <float>epsilon, <float>keep)
        else:
            fnn_adam_update_f32(hi - lo, w + lo, g + lo, m + lo, v + lo, <float>alpha,
                                <float>(1.0 - beta_1), <float>(1.0 - beta_2), <float>epsilon)
    else:
        if decay:
            fnn_adamw_update_f64(hi - lo, w + lo, g + lo, m + lo, v + lo, alpha,
                                 1.0 - beta_1, 1.0 - beta_2, epsilon, keep)
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


cdef inline void _rmsprop_range(Py_ssize_t lo, Py_ssize_t hi, floating* w, const floating* g,
                                floating* v, floating* u, floating* a, double lr, double rho,
                                double momentum, double epsilon, bint centered) noexcept nogil:
    cdef bint use_momentum = momentum > 0
    cdef floating* ul = u + lo if use_momentum else NULL
    cdef floating* al = a + lo if centered else NULL
    if floating is float:
        fnn_rmsprop_update_f32(hi - lo, w + lo, g + lo, v + lo, ul, al, <float>lr, <float>rho,
                               <float>(1.0 - rho), <float>momentum, <float>epsilon,
                               centered, use_momentum)
    else:
        fnn_rmsprop_update_f64(hi - lo, w + lo, g + lo, v + lo, ul, al, lr, rho, 1.0 - rho,
                               momentum, epsilon, centered, use_momentum)


cdef inline void adam_core(Py_ssize_t n, floating* w, const floating* g, floating* m,
                    floating* v, double lr, double beta_1, double beta_2,
                    double epsilon, long long step, double weight_decay=0.0,
                    bint threaded=True) noexcept nogil:
    """One Adam step at 1-based `step`; alpha = lr sqrt(1 - b2^t) / (1 - b1^t).

    weight_decay > 0 makes it AdamW: w *= 1 - weight_decay * lr first (Keras).
    threaded=False keeps the update on the calling thread (the training engine: see
    engine.pyx, _train_batches).
    """
    cdef double alpha = lr * sqrt(1.0 - pow(beta_2, <double>step)) / (1.0 - pow(beta_1, <double>step))
    cdef double keep = 1.0 - weight_decay * lr
    cdef bint decay = weight_decay != 0
    cdef Py_ssize_t c, lo, nchunks = (n + _CHUNK - 1) // _CHUNK
    cdef int threads = current_num_threads() if threaded else 1
    cdef unsigned int mode, old
    if n < _PARALLEL_MIN or threads < 2:
        _adam_range(0, n, w, g, m, v, alpha, beta_1, beta_2, epsilon, keep, decay)
        return
    mode = fnn_fp_mode_get()
    for c in prange(nchunks, schedule="static", num_threads=threads):
        old = fnn_fp_mode_swap(mode)
        lo = c * _CHUNK
        _adam_range(lo, min(lo + _CHUNK, n), w, g, m, v, alpha, beta_1, beta_2, epsilon,
                    keep, decay)
        fnn_denormals_restore(old)


cdef inline void sgd_core(Py_ssize_t n, floating* w, const floating* g, floating* u, double lr,
                   double momentum, bint nesterov, bint threaded=True) noexcept nogil:
    """One SGD step (momentum 0: plain; else classical or Nesterov momentum)."""
    cdef Py_ssize_t c, lo, nchunks = (n + _CHUNK - 1) // _CHUNK
    cdef int threads = current_num_threads() if threaded else 1
    cdef unsigned int mode, old
    if n < _PARALLEL_MIN or threads < 2:
        _sgd_range(0, n, w, g, u, lr, momentum, nesterov)
        return
    mode = fnn_fp_mode_get()
    for c in prange(nchunks, schedule="static", num_threads=threads):
        old = fnn_fp_mode_swap(mode)
        lo = c * _CHUNK
        _sgd_range(lo, min(lo + _CHUNK, n), w, g, u, lr, momentum, nesterov)
        fnn_denormals_restore(old)


cdef inline void rmsprop_core(Py_ssize_t n, floating* w, const floating* g, floating* v,
                              floating* u, floating* a, double lr, double rho, double momentum,
                              double epsilon, bint centered, bint threaded=True) noexcept nogil:
    """One RMSprop step; u is read only when momentum > 0, a only when centered."""
    cdef Py_ssize_t c, lo, nchunks = (n + _CHUNK - 1) // _CHUNK
    cdef int threads = current_num_threads() if threaded else 1
    cdef unsigned int mode, old
    if n < _PARALLEL_MIN or threads < 2:
        _rmsprop_range(0, n, w, g, v, u, a, lr, rho, momentum, epsilon, centered)
        return
    mode = fnn_fp_mode_get()
    for c in prange(nchunks, schedule="static", num_threads=threads):
        old = fnn_fp_mode_swap(mode)
        lo = c * _CHUNK
        _rmsprop_range(lo, min(lo + _CHUNK, n), w, g, v, u, a, lr, rho, momentum, epsilon,
                       centered)
        fnn_denormals_restore(old)


# ----------------------------------------------------------------------------- clipping
# Serial on purpose: the sums must not depend on the thread count, and clipping is one
# memory-bound pass that only runs when the user asked for it.

cdef inline double _sumsq(Py_ssize_t n, const floating* x) noexcept nogil:
    if floating is float:
        return fnn_sumsq_f32(n, x)
    else:
        return fnn_sumsq_f64(n, x)


cdef inline void clip_norm_core(Py_ssize_t n, floating* g, double clipnorm) noexcept nogil:
    """g = (g * clipnorm) / max(||g||, clipnorm), Keras's order; a NaN norm propagates."""
    cdef floating norm = <floating>sqrt(_sumsq(n, g))
    cdef floating c = <floating>clipnorm
    cdef floating den = norm if (norm != norm or norm > c) else c
    if floating is float:
        fnn_mul_div_f32(n, g, c, den)
    else:
        fnn_mul_div_f64(n, g, c, den)


cdef inline void clip_global_norm_core(Py_ssize_t n, floating* g,
                                       double clipnorm) noexcept nogil:
    """g *= clipnorm * min(1 / ||g||, 1 / clipnorm) (+ 0 * norm: NaN/inf propagate), Keras."""
    cdef floating norm = <floating>sqrt(_sumsq(n, g))
    cdef floating c = <floating>clipnorm
    cdef floating inv_norm = 1 / norm      # inf for an all-zero gradient: scale 1
    cdef floating inv_c = 1 / c
    cdef floating scale = c * (inv_norm if inv_norm < inv_c else inv_c) + (norm - norm)
    if floating is float:
        fnn_scale_f32(n, g, scale)
    else:
        fnn_scale_f64(n, g, scale)


cdef inline void clip_value_core(Py_ssize_t n, floating* g, double clipvalue) noexcept nogil:
    if floating is float:
        fnn_clip_value_f32(n, g, <float>clipvalue)
    else:
        fnn_clip_value_f64(n, g, clipvalue)


cdef inline int clip_core(const OptState* opt, Py_ssize_t n, floating* g) noexcept nogil:
    """Clip the flat gradient in place as opt says; -1 for an unknown clip kind."""
    cdef Py_ssize_t s
    if opt.clip_kind == CLIP_NONE:
        return 0
    elif opt.clip_kind == CLIP_NORM:
        for s in range(opt.n_segments):
            clip_norm_core(<Py_ssize_t>opt.segments[2 * s + 1], g + opt.segments[2 * s],
                           opt.clip)
    elif opt.clip_kind == CLIP_GLOBAL_NORM:
        clip_global_norm_core(n, g, opt.clip)
    elif opt.clip_kind == CLIP_VALUE:
        clip_value_core(n, g, opt.clip)
    else:
        return -1
    return 0


cdef inline int update_core(const OptState* opt, Py_ssize_t n, floating* w, floating* g,
                            double lr, long long step, bint threaded=True) noexcept nogil:
    """Clip g (when asked), then one step of opt.kind at 1-based `step`.

    Returns 0, or -1 for an unknown optimizer or clip kind (w and the state untouched).
    """
    if clip_core(opt, n, g) != 0:
        return -1
    if opt.kind == OPT_ADAM:
        adam_core(n, w, g, <floating*>opt.s1, <floating*>opt.s2, lr, opt.beta_1, opt.beta_2,
                  opt.epsilon, step, 0.0, threaded)
    elif opt.kind == OPT_SGD:
        sgd_core(n, w, g, <floating*>opt.s1, lr, opt.momentum, opt.nesterov, threaded)
    elif opt.kind == OPT_RMSPROP:
        rmsprop_core(n, w, g, <floating*>opt.s1, <floating*>opt.s2, <floating*>opt.s3, lr,
                     opt.rho, opt.momentum, opt.epsilon, opt.centered, threaded)
    elif opt.kind == OPT_ADAMW:
        adam_core(n, w, g, <floating*>opt.s1, <floating*>opt.s2, lr, opt.beta_1, opt.beta_2,
                  opt.epsilon, step, opt.weight_decay, threaded)
    else:
        return -1
    return 0
