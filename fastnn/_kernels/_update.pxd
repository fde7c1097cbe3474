# Optimizer cores shared by optim.pyx and the training engine (see optim.pyx).
from cython cimport floating
from libc.math cimport sqrt, pow

from fastnn._kernels._csrc cimport (fnn_adam_update_f32, fnn_adam_update_f64,
                                    fnn_adamw_update_f32, fnn_adamw_update_f64,
                                    fnn_clip_value_f32, fnn_clip_value_f64,
                                    fnn_mul_div_f32, fnn_mul_div_f64,
                                    fnn_rmsprop_update_f32, fnn_rmsprop_update_f64,
                                    fnn_scale_f32, fnn_scale_f64,
                                    fnn_sgd_update_f32, fnn_sgd_update_f64,
                                    fnn_sumsq_f32, fnn_sumsq_f64)
from fastnn._kernels._omp cimport current_num_threads
from fastnn._kernels._pool cimport pool_run

# Buffers of at least _PARALLEL_MIN elements are cut into _PIECES_PER_THREAD pieces per
# thread, run on fastnn's pool (csrc/fnn_pool.h); below that a worker's wake-up costs more
# than it saves.  Pieces are whole multiples of _CHUNK elements (the last takes the rest).
# Several pieces per thread, unlike the GEMMs (no operand to re-pack here): the update is
# memory-bound, and a worker slowed by another process's memory traffic or by its L2 holding
# none of the buffers then takes fewer pieces instead of holding the caller up.
cdef enum:
    _CHUNK = 4096
    _PARALLEL_MIN = 262144
    _PIECES_PER_THREAD = 4

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


# The update of a whole buffer as one job: serially on the caller, or in pieces on the
# pool, whose workers take the caller's floating-point mode (FTZ/DAZ included) for the
# job, so every element is computed alike whichever thread runs it.  Every element is
# independent: results do not depend on the thread count.

ctypedef struct UpdateJob:
    int kind                     # OPT_*
    bint failed                  # set by a piece that met an unknown kind
    Py_ssize_t n, piece
    void* w
    const void* g
    void* s1
    void* s2
    void* s3
    double rate                  # Adam/AdamW: alpha (bias-corrected); SGD, RMSprop: lr
    double beta_1, beta_2, epsilon, keep, momentum, rho
    bint decay, nesterov, centered


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


cdef inline void _job_range(UpdateJob* j, floating* w, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil:
    """Elements [lo, hi) of the job's update."""
    cdef const floating* g = <const floating*>j.g
    if j.kind == OPT_ADAM or j.kind == OPT_ADAMW:
        _adam_range(lo, hi, w, g, <floating*>j.s1, <floating*>j.s2, j.rate, j.beta_1,
                    j.beta_2, j.epsilon, j.keep, j.decay)
    elif j.kind == OPT_SGD:
        _sgd_range(lo, hi, w, g, <floating*>j.s1, j.rate, j.momentum, j.nesterov)
    elif j.kind == OPT_RMSPROP:
        _rmsprop_range(lo, hi, w, g, <floating*>j.s1, <floating*>j.s2, <floating*>j.s3, j.rate,
                       j.rho, j.momentum, j.epsilon, j.centered)
    else:
        j.failed = True


cdef inline void _job_piece_f32(void* ctx, int t) noexcept nogil:
    cdef UpdateJob* j = <UpdateJob*>ctx
    cdef Py_ssize_t lo = t * j.piece
    _job_range(j, <float*>j.w, lo, min(lo + j.piece, j.n))


cdef inline void _job_piece_f64(void* ctx, int t) noexcept nogil:
    cdef UpdateJob* j = <UpdateJob*>ctx
    cdef Py_ssize_t lo = t * j.piece
    _job_range(j, <double*>j.w, lo, min(lo + j.piece, j.n))


cdef inline int run_update(UpdateJob* j, floating* w, bint threaded) noexcept nogil:
    """Run the job over w[0 .. j.n): on the pool when threaded and the buffer is large,
    else on this thread.  Returns 0, or -1 for an unknown kind (nothing updated)."""
    cdef int threads = current_num_threads() if threaded else 1
    cdef Py_ssize_t pieces
    j.failed = False  # an unknown kind fails in every piece alike: nothing is updated
    j.w = w
    if j.n < _PARALLEL_MIN or threads < 2:
        _job_range(j, w, 0, j.n)
        return -1 if j.failed else 0
    pieces = (j.n + threads * _PIECES_PER_THREAD - 1) // (threads * _PIECES_PER_THREAD)
    j.piece = (pieces + _CHUNK - 1) // _CHUNK * _CHUNK
    pieces = (j.n + j.piece - 1) // j.piece
    if floating is float:
        pool_run(threads, <int>pieces, _job_piece_f32, j)
    else:
        pool_run(threads, <int>pieces, _job_piece_f64, j)
    return -1 if j.failed else 0


cdef inline int adam_core(Py_ssize_t n, floating* w, const floating* g, floating* m,
                          floating* v, double lr, double beta_1, double beta_2,
                          double epsilon, long long step, double weight_decay=0.0,
                          bint threaded=True) noexcept nogil:
    """One Adam step at 1-based `step`; alpha = lr sqrt(1 - b2^t) / (1 - b1^t).

    weight_decay > 0 makes it AdamW: w *= 1 - weight_decay * lr first (Keras).
    threaded=False keeps the update on the calling thread.  Returns 0 (run_update's -1
    for an unknown kind cannot happen: the kind is set here).
    """
    cdef UpdateJob j
    j.kind = OPT_ADAMW if weight_decay != 0 else OPT_ADAM
    j.n, j.g, j.s1, j.s2 = n, g, m, v
    j.rate = lr * sqrt(1.0 - pow(beta_2, <double>step)) / (1.0 - pow(beta_1, <double>step))
    j.beta_1, j.beta_2, j.epsilon = beta_1, beta_2, epsilon
    j.keep, j.decay = 1.0 - weight_decay * lr, weight_decay != 0
    return run_update(&j, w, threaded)


cdef inline int sgd_core(Py_ssize_t n, floating* w, const floating* g, floating* u, double lr,
                         double momentum, bint nesterov, bint threaded=True) noexcept nogil:
    """One SGD step (momentum 0: plain; else classical or Nesterov momentum).  Returns 0
    (see adam_core)."""
    cdef UpdateJob j
    j.kind, j.n, j.g, j.s1 = OPT_SGD, n, g, u
    j.rate, j.momentum, j.nesterov = lr, momentum, nesterov
    return run_update(&j, w, threaded)


cdef inline int rmsprop_core(Py_ssize_t n, floating* w, const floating* g, floating* v,
                             floating* u, floating* a, double lr, double rho, double momentum,
                             double epsilon, bint centered, bint threaded=True) noexcept nogil:
    """One RMSprop step; u is read only when momentum > 0, a only when centered.
    Returns 0 (see adam_core)."""
    cdef UpdateJob j
    j.kind, j.n, j.g, j.s1, j.s2, j.s3 = OPT_RMSPROP, n, g, v, u, a
    j.rate, j.rho, j.momentum, j.epsilon, j.centered = lr, rho, momentum, epsilon, centered
    return run_update(&j, w, threaded)


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
        return adam_core(n, w, g, <floating*>opt.s1, <floating*>opt.s2, lr, opt.beta_1,
                         opt.beta_2, opt.epsilon, step, 0.0, threaded)
    elif opt.kind == OPT_SGD:
        return sgd_core(n, w, g, <floating*>opt.s1, lr, opt.momentum, opt.nesterov, threaded)
    elif opt.kind == OPT_RMSPROP:
        return rmsprop_core(n, w, g, <floating*>opt.s1, <floating*>opt.s2, <floating*>opt.s3,
                            lr, opt.rho, opt.momentum, opt.epsilon, opt.centered, threaded)
    elif opt.kind == OPT_ADAMW:
        return adam_core(n, w, g, <floating*>opt.s1, <floating*>opt.s2, lr, opt.beta_1,
                         opt.beta_2, opt.epsilon, step, opt.weight_decay, threaded)
    else:
        return -1
