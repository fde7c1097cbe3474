# Row-major GEMM over scipy.linalg.cython_blas: the one place that knows BLAS
# is column-major.  Everything else calls gemm_rowmajor.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm_rowmajor(bint trans_a, bint trans_b, int m, int n, int k,
                               floating alpha, const floating* a, const floating* b,
                               floating beta, floating* c) noexcept nogil:
    """C[m, n] = alpha * op(A) @ op(B) + beta * C, all row-major and contiguous.

    op(A) is (m, k): A is stored (m, k), or (k, m) when trans_a.  op(B) is (k, n):
    B is stored (k, n), or (n, k) when trans_b.
    """
    # A row-major matrix is its transpose in column-major, so C^T = op(B)^T op(A)^T:
    # BLAS gets B first, with the same transpose flags; no copies are made.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int lda = m if trans_a else k
    cdef int ldb = k if trans_b else n
    cdef int ldc = n
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)
