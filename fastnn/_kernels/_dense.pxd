# Dense-layer cores shared by dense.pyx and the training engine (see dense.pyx).
from cython cimport floating
from libc.math cimport fabs
from libc.limits cimport INT_MAX

from fastnn._kernels._act cimport ACT_LINEAR, ACT_RELU, _sign, activation_grad, bias_activation
from fastnn._kernels._blas cimport GEMM_AUTO, GEMM_ROWS, SMALL_MAX_WORK_DENSE, gemm_rowmajor
from fastnn._kernels._csrc cimport (fnn_column_sums_f32, fnn_column_sums_f64,
                                    fnn_small_dense_f32)
from fastnn._kernels._omp cimport current_num_threads
from fastnn._kernels._pool cimport pool_run

cdef enum:
    # inference splits the bias and activation pass over fastnn's pool from this many
    # elements (~50 us of work on one core), in this many row blocks per thread: the
    # pass is elementwise (softmax row by row), so the blocks change no bit
    EPILOGUE_PARALLEL_MIN = 262144
    EPILOGUE_TASKS_PER_THREAD = 4


ctypedef struct Epilogue:
    # z += b, a = act(z) on rows [task * block, ...) of n x m blocks (see dense_forward_core)
    Py_ssize_t n, m, block
    void* z
    const void* b
    void* a
    int act
    double alpha


cdef inline void _epilogue_block(Epilogue* e, int task, floating* z) noexcept nogil:
    cdef Py_ssize_t start = <Py_ssize_t>task * e.block
    cdef Py_ssize_t rows = min(e.block, e.n - start)
    bias_activation(rows, e.m, z + start * e.m, <const floating*>e.b, e.act,
                    <floating>e.alpha, <floating*>e.a + start * e.m)


cdef inline void _epilogue_task_f32(void* ctx, int task) noexcept nogil:
    _epilogue_block(<Epilogue*>ctx, task, <float*>(<Epilogue*>ctx).z)


cdef inline void _epilogue_task_f64(void* ctx, int task) noexcept nogil:
    _epilogue_block(<Epilogue*>ctx, task, <double*>(<Epilogue*>ctx).z)


ctypedef struct Penalty:
    # Keras's weight regularizers on one Dense layer: l1 * sum|W| + l2 * sum(W^2) on the
    # kernel, and bias_l1, bias_l2 likewise on the bias (L1, L2 and L1L2 are all this form)
    double l1, l2, bias_l1, bias_l2
cdef inline bint blas_dims_fit(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept nogil:
    """True when each dimension fits BLAS's 32-bit int (products may exceed it)."""
    return a <= INT_MAX and b <= INT_MAX and c <= INT_MAX


cdef inline void column_sums(Py_ssize_t n, Py_ssize_t m, const floating* g,
                             floating* out) noexcept nogil:
    """out[j] = sum_i g[i, j], rows added in order (deterministic); the loop is in C,
    vectorised at the CPU's width (FNN_CLONES)."""
    if floating is float:
        fnn_column_sums_f32(n, m, g, out)
    else:
        fnn_column_sums_f64(n, m, g, out)


cdef inline double penalty_value(Py_ssize_t size, const floating* w, double l1,
                                 double l2) noexcept nogil:
    """l1 * sum|w| + l2 * sum(w^2), summed in double in index order (deterministic)."""
    cdef Py_ssize_t i
    cdef double s1 = 0, s2 = 0
    if l1 == 0:
        # L2 alone: the very loop (and value) of earlier releases, without the |w| sum
        for i in range(size):
            s2 += w[i] * w[i]
        return l2 * s2
    for i in range(size):
        s1 += fabs(w[i])
        s2 += w[i] * w[i]
    return l1 * s1 + l2 * s2


cdef inline void dense_forward_core(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, const floating* x,
                                    const floating* w, const floating* b, int act,
                                    floating alpha, floating* z, floating* a,
                                    int method) noexcept nogil:
    """z = x @ w + b (b may be NULL); a = act(z) (a may alias z for the identity).

    n, k and m must each fit in a C int (BLAS's integer type): callers check that before
    entering nogil code, with blas_dims_fit.  method GEMM_ROWS (inference) makes each row
    of z and a independent of the other rows to the last bit: the bias and activation
    are elementwise (softmax row by row), so only the product needed care; for large
    inference batches both run in row blocks on fastnn's pool.

    In training (GEMM_AUTO), a small float32 layer with ReLU or no activation runs as one
    FMA kernel with the bias and activation applied to the tile in registers
    (csrc/fnn_small.h): the same z = (x w) + b rounding as the separate pass."""
    cdef Epilogue e
    cdef int threads
    if floating is float:
        if (method == GEMM_AUTO and (act == ACT_RELU or act == ACT_LINEAR)
                and n * k * m <= SMALL_MAX_WORK_DENSE
                and fnn_small_dense_f32(<int>n, <int>m, <int>k, x, w, b, act == ACT_RELU, z, a)):
            return
    gemm_rowmajor(False, False, <int>n, <int>m, <int>k, 1, x, w, 0, z, method)
    threads = 1
    if method == GEMM_ROWS and n * m >= EPILOGUE_PARALLEL_MIN:
        threads = current_num_threads()
    if threads <= 1 or n < 2:
        bias_activation(n, m, z, b, act, alpha, a)
        return
    # large inference batches: row blocks on the pool, as the product was
    e.n, e.m, e.z, e.b, e.a, e.act, e.alpha = n, m, z, b, a, act, alpha
    e.block = ((n + threads * EPILOGUE_TASKS_PER_THREAD - 1)
               // (threads * EPILOGUE_TASKS_PER_THREAD))
    if floating is float:
        pool_run(threads, <int>((n + e.block - 1) // e.block), _epilogue_task_f32, &e)
    else:
        pool_run(threads, <int>((n + e.block - 1) // e.block), _epilogue_task_f64, &e)


cdef inline void dense_backward_core(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m,
                                     const floating* x, const floating* w, const floating* b,
                                     const floating* z, const floating* a,
                                     int act, floating alpha, const Penalty* pen, floating* g,
                                     floating* dw, floating* db, floating* dx) noexcept nogil:
    """g: da in, dz = da * act'(z) out.  dw = x^T dz + 2 l2 w + l1 sign(w); db = column
    sums of dz + 2 bias_l2 b + bias_l1 sign(b) (skipped when NULL); dx = dz w^T (skipped
    when NULL).  pen may be NULL (no regularization); b is read only for the bias terms.
    Sizes as dense_forward_core."""
    cdef Py_ssize_t j
    cdef floating beta = 0, l1 = 0, l2 = 0, bias_l1 = 0, bias_l2 = 0
    if pen != NULL:
        l1, l2 = <floating>pen.l1, <floating>pen.l2
        bias_l1, bias_l2 = <floating>pen.bias_l1, <floating>pen.bias_l2
    activation_grad(n, m, z, a, act, alpha, g)
    # The penalty gradient enters as GEMM's beta * C, so dw is written in one BLAS call
    # after a single pass over w; the L2-only loop is kept apart so that its numbers stay
    # bit-identical to earlier releases.
    if l1 != 0:
        for j in range(k * m):
            dw[j] = 2 * l2 * w[j] + l1 * _sign(w[j])
        beta = 1
    elif l2 != 0:
        for j in range(k * m):
            dw[j] = 2 * l2 * w[j]
        beta = 1
    gemm_rowmajor(True, False, <int>k, <int>m, <int>n, 1, x, g, beta, dw, GEMM_AUTO)
    if db != NULL:
        column_sums(n, m, g, db)
        if b != NULL and (bias_l1 != 0 or bias_l2 != 0):
            for j in range(m):
                db[j] = db[j] + (2 * bias_l2 * b[j] + bias_l1 * _sign(b[j]))
    if dx != NULL:
        gemm_rowmajor(False, True, <int>n, <int>k, <int>m, 1, g, w, 0, dx, GEMM_AUTO)
