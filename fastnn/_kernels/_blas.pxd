# Row-major GEMM: the one place that knows BLAS is column-major and that chooses, by
# shape, between BLAS (scipy.linalg.cython_blas) and the register-tiled kernel in
# csrc/fnn_gemm.h; inference asks for the row-exact kernel of csrc/fnn_gemm_rows.h.
# Everything else calls gemm_rowmajor.
#
# BLAS is reached through function pointers filled at first use (csrc/fnn_blas.h), not a
# cimport, so that `import fastnn` does not import scipy.linalg.  Every def entry point of
# a module that can reach gemm_rowmajor calls ensure_blas() first (with the GIL).
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating

from fastnn._kernels._csrc cimport (fnn_gemm_rows_f32, fnn_gemm_rows_f64, fnn_gemm_small_f32,
                                    fnn_gemm_small_f64, fnn_gemm_small_ok)

cdef extern from "fnn_blas.h":
    ctypedef void (*fnn_sgemm_fn)(char*, char*, int*, int*, int*, float*, float*, int*, float*,
                                  int*, float*, float*, int*) noexcept nogil
    ctypedef void (*fnn_dgemm_fn)(char*, char*, int*, int*, int*, double*, double*, int*,
                                  double*, int*, double*, double*, int*) noexcept nogil
    fnn_sgemm_fn fnn_sgemm
    fnn_dgemm_fn fnn_dgemm
    bint fnn_blas_ready() noexcept nogil
    void fnn_blas_set(void* sgemm, void* dgemm) noexcept nogil


cdef inline int ensure_blas() except -1:
    """Fill this module's gemm pointers on first use (a pointer test afterwards)."""
    if fnn_blas_ready():
        return 0
    from fastnn._kernels._blas_import import gemm_capsules
    s, d = gemm_capsules()
    fnn_blas_set(PyCapsule_GetPointer(s, PyCapsule_GetName(s)),
                 PyCapsule_GetPointer(d, PyCapsule_GetName(d)))
    if not fnn_blas_ready():
        raise ImportError("fastnn: could not take sgemm/dgemm from scipy.linalg.cython_blas")
    return 0


cdef enum:
    GEMM_AUTO = 0
    GEMM_BLAS = 1
    GEMM_TILED = 2
    GEMM_ROWS = 3       # row-exact: a row's result never depends on the other rows


cdef inline bint use_tiled(bint float32, bint trans_a, bint trans_b, int m, int n,
                           int k) noexcept nogil:
    """The shape rule, from benchmarks/bench_gemm.py on this project's machine: OpenBLAS's
    small-matrix kernels win every product except C = A B^T (the dx = dz W^T of the
    backward pass), where the tile wins up to about 16k multiply-adds in float32
    (1.4-1.7x at the digits shapes) and, in float64, only with 8-wide tiles (n < 16)."""
    cdef long work = <long>m * n * k
    if not trans_b or trans_a or not fnn_gemm_small_ok(m, n, k):
        return False
    if float32:
        return work <= 16384
    return n < 16 and work <= 8192


cdef inline void gemm_rowmajor(bint trans_a, bint trans_b, int m, int n, int k,
                               floating alpha, const floating* a, const floating* b,
                               floating beta, floating* c, int method) noexcept nogil:
    """C[m, n] = alpha * op(A) @ op(B) + beta * C, all row-major and contiguous.

    op(A) is (m, k): A is stored (m, k), or (k, m) when trans_a.  op(B) is (k, n):
    B is stored (k, n), or (n, k) when trans_b.  The tiled kernel takes alpha = 1 and
    beta in {0, 1} (all fastnn needs); `method` forces a path for tests and benchmarks.
    GEMM_ROWS (inference) takes neither transpose, alpha = 1 and beta = 0; each element is
    then summed in index order whatever m is (csrc/fnn_gemm_rows.h), so that a row gives
    the same bits alone or inside any batch.
    """
    if method == GEMM_ROWS and not trans_a and not trans_b and alpha == 1 and beta == 0:
        if floating is float:
            fnn_gemm_rows_f32(m, n, k, a, b, c)
        else:
            fnn_gemm_rows_f64(m, n, k, a, b, c)
        return
    if method != GEMM_BLAS and alpha == 1 and (beta == 0 or beta == 1) and (
            method == GEMM_TILED and fnn_gemm_small_ok(m, n, k)
            or method == GEMM_AUTO and use_tiled(floating is float, trans_a, trans_b, m, n, k)):
        if floating is float:
            fnn_gemm_small_f32(trans_a, trans_b, m, n, k, a, b, beta == 1, c)
        else:
            fnn_gemm_small_f64(trans_a, trans_b, m, n, k, a, b, beta == 1, c)
        return
    # A row-major matrix is its transpose in column-major, so C^T = op(B)^T op(A)^T:
    # BLAS gets B first, with the same transpose flags; no copies are made.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int lda = m if trans_a else k
    cdef int ldb = k if trans_b else n
    cdef int ldc = n
    if floating is float:
        fnn_sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c,
                  &ldc)
    else:
        fnn_dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c,
                  &ldc)
