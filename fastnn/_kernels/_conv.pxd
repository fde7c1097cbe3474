# Convolution and max-pooling cores shared by conv.pyx and the training engine
# (design note in conv.pyx).  A 1-D layer is the 2-D case with h = kh = sh = 1.
from cython cimport floating
from libc.string cimport memcpy, memset

from fastnn._kernels._blas cimport GEMM_AUTO, gemm_rowmajor
from fastnn._kernels._csrc cimport (fnn_pool_max_f32, fnn_pool_max_f64, fnn_pool_route_f32,
                                    fnn_pool_route_f64)
from fastnn._kernels._dense cimport Penalty, dense_backward_core, dense_forward_core
from fastnn._kernels._omp cimport current_num_threads
from fastnn._kernels._pool cimport pool_run


ctypedef struct ConvGeom:
    # input (h, w, c), window (kh, kw), strides (sh, sw), padding before (pt, pl),
    # output (oh, ow, f); f = c for pooling
    Py_ssize_t h, w, c, kh, kw, sh, sw, pt, pl, oh, ow, f


cdef inline Py_ssize_t conv_positions(const ConvGeom* g) noexcept nogil:
    return g.oh * g.ow


cdef inline Py_ssize_t conv_patch(const ConvGeom* g) noexcept nogil:
    """Length of one im2col row: kh * kw * c (the kernel's rows, Keras order)."""
    return g.kh * g.kw * g.c


ctypedef struct Window:
    # one output position (oh, ow)'s window: its top-left input index (h0, w0), which may
    # lie in the padding, and the offsets [i0, i1) x [j0, j1) of the window inside the input
    Py_ssize_t oh, ow, h0, w0, i0, i1, j0, j1


cdef inline void window_range(Py_ssize_t start, Py_ssize_t k, Py_ssize_t size,
                              Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """The window offsets i of [0, k) whose input index start + i lies in [0, size):
    [lo, hi), empty when hi <= lo.  Loops over [lo, hi) visit the same offsets in the
    same order as a loop over [0, k) that skips the padding."""
    lo[0] = -start if start < 0 else 0
    hi[0] = size - start if start + k > size else k


cdef inline void window_rows(const ConvGeom* g, Window* win) noexcept nogil:
    win.h0 = win.oh * g.sh - g.pt
    window_range(win.h0, g.kh, g.h, &win.i0, &win.i1)


cdef inline void window_cols(const ConvGeom* g, Window* win) noexcept nogil:
    win.w0 = win.ow * g.sw - g.pl
    window_range(win.w0, g.kw, g.w, &win.j0, &win.j1)


cdef inline void window_first(const ConvGeom* g, Window* win) noexcept nogil:
    """The window of output position (0, 0)."""
    win.oh = win.ow = 0
    window_rows(g, win)
    window_cols(g, win)


cdef inline void window_next(const ConvGeom* g, Window* win) noexcept nogil:
    """The next output position's window in C order, back to (0, 0) after the last (the
    next sample's first): every core walks the positions this way, without divisions."""
    win.ow += 1
    if win.ow == g.ow:
        win.ow = 0
        win.oh = win.oh + 1 if win.oh + 1 < g.oh else 0
        window_rows(g, win)
    window_cols(g, win)


cdef inline void _im2col_serial(Py_ssize_t n, const ConvGeom* g, const floating* x,
                        floating* cols) noexcept nogil:
    """cols[(s, oh, ow), (i, j, ch)] = x[s, oh*sh - pt + i, ow*sw - pl + j, ch], 0 in the
    padding.  x (n, h, w, c), cols (n*oh*ow, kh*kw*c), both C order."""
    cdef Py_ssize_t s, pos, i, k = conv_patch(g), c = g.c, positions = conv_positions(g)
    cdef Py_ssize_t width = g.kw * c          # one kernel row of the window
    cdef floating* dst
    cdef Window win
    window_first(g, &win)
    for s in range(n):
        for pos in range(positions):
            for i in range(g.kh):
                dst = cols + (s * positions + pos) * k + i * width
                if i < win.i0 or i >= win.i1 or win.j1 <= win.j0:
                    memset(dst, 0, width * sizeof(floating))
                    continue
                # the part of the kernel row inside the input is contiguous there (the
                # whole row, away from the edges: one copy)
                if win.j0 > 0:
                    memset(dst, 0, win.j0 * c * sizeof(floating))
                memcpy(dst + win.j0 * c,
                       x + ((s * g.h + win.h0 + i) * g.w + win.w0 + win.j0) * c,
                       (win.j1 - win.j0) * c * sizeof(floating))
                if win.j1 < g.kw:
                    memset(dst + win.j1 * c, 0, (g.kw - win.j1) * c * sizeof(floating))
            window_next(g, &win)


cdef inline void _col2im_serial(Py_ssize_t n, const ConvGeom* g, const floating* cols,
                        floating* dx) noexcept nogil:
    """dx = the adjoint of im2col: every column entry added back to the input position it
    was read from (padding entries dropped).  Rows are added in order (deterministic)."""
    cdef Py_ssize_t s, pos, i, j, ch, k = conv_patch(g), c = g.c, positions = conv_positions(g)
    cdef const floating* src
    cdef floating* dst
    cdef Window win
    memset(dx, 0, n * g.h * g.w * c * sizeof(floating))
    window_first(g, &win)
    for s in range(n):
        for pos in range(positions):
            src = cols + (s * positions + pos) * k
            for i in range(win.i0, win.i1):
                for j in range(win.j0, win.j1):
                    dst = dx + ((s * g.h + win.h0 + i) * g.w + win.w0 + j) * c
                    for ch in range(c):
                        dst[ch] = dst[ch] + src[(i * g.kw + j) * c + ch]
            window_next(g, &win)


cdef inline void _maxpool_forward_serial(Py_ssize_t n, const ConvGeom* g, const floating* x,
                                         floating* out, floating* idx) noexcept nogil:
    """out[s, oh, ow, ch] = max of x over the window (padding never wins); idx = the
    window position i * kw + j of the first maximum (a small integer, exact in float),
    read by the backward pass.  x (n, h, w, c), out and idx (n, oh, ow, c)."""
    cdef Py_ssize_t s, pos, i, j, ch, c = g.c, positions = conv_positions(g)
    cdef const floating* src
    cdef floating* o
    cdef floating* d
    cdef floating cell
    cdef bint first
    cdef Window win
    window_first(g, &win)
    for s in range(n):
        for pos in range(positions):
            o = out + (s * positions + pos) * c
            d = idx + (s * positions + pos) * c
            first = True
            for i in range(win.i0, win.i1):
                for j in range(win.j0, win.j1):
                    src = x + ((s * g.h + win.h0 + i) * g.w + win.w0 + j) * c
                    cell = <floating>(i * g.kw + j)
                    if first:
                        memcpy(o, src, c * sizeof(floating))
                        for ch in range(c):
                            d[ch] = cell
                        first = False
                    elif floating is float:
                        # ties keep the first (TF, torch); NaN never replaces
                        # (csrc/fnn_conv.h: selects over the channels, vectorised)
                        fnn_pool_max_f32(c, src, o, d, cell)
                    else:
                        fnn_pool_max_f64(c, src, o, d, cell)
            window_next(g, &win)


cdef inline void _maxpool_backward_serial(Py_ssize_t n, const ConvGeom* g,
                                          const floating* gout, const floating* idx,
                                          floating* dx) noexcept nogil:
    """dx = gout routed to each window's recorded maximum (summed where windows
    overlap, in output order)."""
    cdef Py_ssize_t s, pos, i, j, o, c = g.c, positions = conv_positions(g)
    cdef floating* dst
    cdef floating cell
    cdef Window win
    memset(dx, 0, n * g.h * g.w * c * sizeof(floating))
    window_first(g, &win)
    for s in range(n):
        for pos in range(positions):
            o = (s * positions + pos) * c
            # each window cell takes the channels whose maximum it holds: a select per
            # channel (csrc/fnn_conv.h, vectorised) instead of a division per channel.  A
            # channel's one maximum lies in one cell, so every dx entry gets the same
            # additions in the same (output) order as a scatter would give it.
            for i in range(win.i0, win.i1):
                for j in range(win.j0, win.j1):
                    dst = dx + ((s * g.h + win.h0 + i) * g.w + win.w0 + j) * c
                    cell = <floating>(i * g.kw + j)
                    if floating is float:
                        fnn_pool_route_f32(c, gout + o, idx + o, dst, cell)
                    else:
                        fnn_pool_route_f64(c, gout + o, idx + o, dst, cell)
            window_next(g, &win)


# ----------------------------------------------------------------------- on the pool
# im2col, col2im and max pooling treat every sample on its own (window_first starts each
# call at the first sample's first window), so a batch is cut into blocks of whole samples
# run as pool tasks: each output element is computed by exactly the same operations as in
# one serial call, whatever the block or the thread, so the bits never depend on the
# thread count.  The blocks depend only on n and the thread count.

cdef enum:
    CONV_IM2COL = 0
    CONV_COL2IM = 1
    CONV_POOL_FORWARD = 2
    CONV_POOL_BACKWARD = 3
    # a pass is split from this many element moves (about 0.1 ms on one core): below it,
    # waking a worker costs more than it saves (the digits CNN's passes stay serial)
    CONV_PARALLEL_MIN_WORK = 262144
    # tasks per thread, as _blas.pxd's GEMM split: a thread slowed by another process on
    # its core takes fewer blocks
    CONV_TASKS_PER_THREAD = 4


ctypedef struct ConvSplit:
    int op
    bint f64
    Py_ssize_t n, block
    const ConvGeom* g
    const void* src            # x (im2col, pool forward), cols (col2im), gout (pool backward)
    const void* idx            # pool backward: the argmax
    void* dst                  # cols (im2col), dx (col2im, pool backward), out (pool forward)
    void* dst2                 # pool forward: the argmax


cdef inline void _conv_range(const ConvSplit* t, Py_ssize_t s0, Py_ssize_t s1,
                             floating* tag) noexcept nogil:
    """Samples [s0, s1) of the split pass; `tag` only selects the dtype."""
    cdef const ConvGeom* g = t.g
    cdef Py_ssize_t m = s1 - s0
    cdef Py_ssize_t x_size = g.h * g.w * g.c                        # one input sample
    cdef Py_ssize_t col_size = conv_positions(g) * conv_patch(g)   # its im2col rows
    cdef Py_ssize_t out_size = conv_positions(g) * g.c             # one pooled sample
    if t.op == CONV_IM2COL:
        _im2col_serial(m, g, <const floating*>t.src + s0 * x_size,
                       <floating*>t.dst + s0 * col_size)
    elif t.op == CONV_COL2IM:
        _col2im_serial(m, g, <const floating*>t.src + s0 * col_size,
                       <floating*>t.dst + s0 * x_size)
    elif t.op == CONV_POOL_FORWARD:
        _maxpool_forward_serial(m, g, <const floating*>t.src + s0 * x_size,
                                <floating*>t.dst + s0 * out_size,
                                <floating*>t.dst2 + s0 * out_size)
    elif t.op == CONV_POOL_BACKWARD:
        _maxpool_backward_serial(m, g, <const floating*>t.src + s0 * out_size,
                                 <const floating*>t.idx + s0 * out_size,
                                 <floating*>t.dst + s0 * x_size)
    # no other op: the split is only built by conv_split_run's callers below


cdef inline void _conv_task(void* ctx, int task) noexcept nogil:
    cdef const ConvSplit* t = <const ConvSplit*>ctx
    cdef Py_ssize_t s0 = task * t.block
    cdef Py_ssize_t s1 = min(s0 + t.block, t.n)
    # the pool runs every task in the caller's floating-point mode (csrc/fnn_pool.h):
    # pooling's comparisons and col2im's sums see denormals as the caller does
    if t.f64:
        _conv_range(t, s0, s1, <double*>NULL)
    else:
        _conv_range(t, s0, s1, <float*>NULL)


cdef inline void conv_split_run(ConvSplit* t, Py_ssize_t work) noexcept nogil:
    """Run the pass `t` over its n samples: serially below CONV_PARALLEL_MIN_WORK or on one
    thread, else as blocks of samples on fastnn's pool."""
    cdef int threads = current_num_threads()
    cdef Py_ssize_t ntasks
    if threads < 2 or t.n < 2 or work < CONV_PARALLEL_MIN_WORK:
        t.block = t.n
        if t.f64:
            _conv_range(t, 0, t.n, <double*>NULL)
        else:
            _conv_range(t, 0, t.n, <float*>NULL)
        return
    ntasks = min(t.n, <Py_ssize_t>threads * CONV_TASKS_PER_THREAD)
    t.block = (t.n + ntasks - 1) // ntasks
    ntasks = (t.n + t.block - 1) // t.block
    pool_run(threads, <int>ntasks, _conv_task, t)


cdef inline void _split_init(ConvSplit* t, int op, Py_ssize_t n, const ConvGeom* g,
                             const void* src, const void* idx, void* dst, void* dst2,
                             bint f64) noexcept nogil:
    t.op, t.n, t.g, t.src, t.idx, t.dst, t.dst2, t.f64 = op, n, g, src, idx, dst, dst2, f64
    t.block = n


cdef inline void im2col(Py_ssize_t n, const ConvGeom* g, const floating* x,
                        floating* cols) noexcept nogil:
    """cols[(s, oh, ow), (i, j, ch)] = x[s, oh*sh - pt + i, ow*sw - pl + j, ch], 0 in the
    padding.  x (n, h, w, c), cols (n*oh*ow, kh*kw*c), both C order.  Large batches run
    on the pool in blocks of samples (same bits)."""
    cdef ConvSplit t
    _split_init(&t, CONV_IM2COL, n, g, x, NULL, cols, NULL, floating is double)
    conv_split_run(&t, n * conv_positions(g) * conv_patch(g))


cdef inline void col2im(Py_ssize_t n, const ConvGeom* g, const floating* cols,
                        floating* dx) noexcept nogil:
    """dx = the adjoint of im2col (see _col2im_serial); on the pool as im2col."""
    cdef ConvSplit t
    _split_init(&t, CONV_COL2IM, n, g, cols, NULL, dx, NULL, floating is double)
    conv_split_run(&t, n * conv_positions(g) * conv_patch(g))


cdef inline void maxpool_forward_core(Py_ssize_t n, const ConvGeom* g, const floating* x,
                                      floating* out, floating* idx) noexcept nogil:
    """out = the maximum of each window, idx its position (see _maxpool_forward_serial);
    on the pool as im2col."""
    cdef ConvSplit t
    _split_init(&t, CONV_POOL_FORWARD, n, g, x, NULL, out, idx, floating is double)
    conv_split_run(&t, n * conv_positions(g) * g.c * g.kh * g.kw)


cdef inline void maxpool_backward_core(Py_ssize_t n, const ConvGeom* g, const floating* gout,
                                       const floating* idx, floating* dx) noexcept nogil:
    """dx = gout routed to each window's maximum (see _maxpool_backward_serial); on the
    pool as im2col."""
    cdef ConvSplit t
    _split_init(&t, CONV_POOL_BACKWARD, n, g, gout, idx, dx, NULL, floating is double)
    conv_split_run(&t, n * conv_positions(g) * g.c * g.kh * g.kw)


cdef inline void conv_forward_core(Py_ssize_t n, const ConvGeom* g, const floating* x,
                                   const floating* w, const floating* b, int act,
                                   floating alpha, floating* cols, floating* z,
                                   floating* a, int method) noexcept nogil:
    """z = im2col(x) @ w + b, a = act(z): Dense's GEMM + bias + activation over the
    n*oh*ow window rows; z and a (n, oh, ow, f) are channels-last.  Sizes checked by the
    caller (n*oh*ow, kh*kw*c and f fit BLAS's int).  `method` is Dense's GEMM choice
    (the engine's inference takes the row-exact product, as for Dense)."""
    im2col(n, g, x, cols)
    dense_forward_core(n * conv_positions(g), conv_patch(g), g.f, cols, w, b, act, alpha,
                       z, a, method)


cdef inline void conv_backward_core(Py_ssize_t n, const ConvGeom* g, const floating* x,
                                    const floating* w, const floating* b, const floating* z,
                                    const floating* a, int act, floating alpha,
                                    const Penalty* pen, floating* gz, floating* cols,
                                    floating* dw, floating* db, floating* dx,
                                    bint cols_ready=False) noexcept nogil:
    """gz: da in, dz out.  dw = cols^T dz (+ penalty), db = column sums of dz, and
    (dx not NULL) dx = col2im(dz w^T).  `cols` is scratch of n*oh*ow*kh*kw*c elements:
    rebuilt from x here (unless `cols_ready`: it already holds im2col(x)), then reused
    for dz w^T once dw is written."""
    if not cols_ready:
        im2col(n, g, x, cols)
    dense_backward_core(n * conv_positions(g), conv_patch(g), g.f, cols, w, b, z, a, act,
                        alpha, pen, gz, dw, db, NULL)
    if dx != NULL:
        # dz w^T into cols (its columns are no longer needed), then back onto the input
        gemm_rowmajor(False, True, <int>(n * conv_positions(g)), <int>conv_patch(g),
                      <int>g.f, 1, gz, w, 0, cols, GEMM_AUTO)
        col2im(n, g, cols, dx)


