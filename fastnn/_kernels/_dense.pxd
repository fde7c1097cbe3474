# Dense-layer cores shared by dense.pyx and the training engine (see dense.pyx).
from cython cimport floating
from libc.limits cimport INT_MAX

from fastnn._kernels._act cimport activation_grad, bias_activation
from fastnn._kernels._blas cimport GEMM_AUTO, gemm_rowmajor


cdef inline bint blas_dims_fit(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) noexcept nogil:
    """True when each dimension fits BLAS's 32-bit int (products may exceed it)."""
    return a <= INT_MAX and b <= INT_MAX and c <= INT_MAX


cdef inline void column_sums(Py_ssize_t n, Py_ssize_t m, const floating* g,
                             floating* out) noexcept nogil:
    """out[j] = sum_i g[i, j], rows added in order (deterministic)."""
    cdef Py_ssize_t i, j
    for j in range(m):
        out[j] = g[j]
    for i in range(1, n):
        for j in range(m):
            out[j] = out[j] + g[i * m + j]


cdef inline void dense_forward_core(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, const floating* x,
                                    const floating* w, const floating* b, int act,
                                    floating alpha, floating* z, floating* a) noexcept nogil:
    """z = x @ w + b (b may be NULL); a = act(z) (a may alias z for the identity).

    n, k and m must each fit in a C int (BLAS's integer type): callers check that before
    entering nogil code, with blas_dims_fit."""
    gemm_rowmajor(False, False, <int>n, <int>m, <int>k, 1, x, w, 0, z, GEMM_AUTO)
    bias_activation(n, m, z, b, act, alpha, a)


cdef inline void dense_backward_core(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m,
                                     const floating* x, const floating* w,
                                     const floating* z, const floating* a, int act,
                                     floating alpha, floating l2, floating* g, floating* dw,
                                     floating* db, floating* dx) noexcept nogil:
    """g: da in, dz = da * act'(z) out.  dw = x^T dz + 2 l2 w; db = column sums of dz
    (skipped when NULL); dx = dz w^T (skipped when NULL).  Sizes as dense_forward_core."""
    cdef Py_ssize_t j
    cdef floating beta = 0
    activation_grad(n, m, z, a, act, alpha, g)
    if l2 != 0:
        # the L2 term enters as GEMM's beta * C, so dw is written in one BLAS call
        for j in range(k * m):
            dw[j] = 2 * l2 * w[j]
        beta = 1
    gemm_rowmajor(True, False, <int>k, <int>m, <int>n, 1, x, g, beta, dw, GEMM_AUTO)
    if db != NULL:
        column_sums(n, m, g, db)
    if dx != NULL:
        gemm_rowmajor(False, True, <int>n, <int>k, <int>m, 1, g, w, 0, dx, GEMM_AUTO)
