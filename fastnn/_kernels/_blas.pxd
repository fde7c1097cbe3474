# Row-major GEMM: the one place that knows BLAS is column-major and that chooses, by
# shape, between BLAS (_blas_import.py: scipy-openblas32's OpenBLAS, or scipy's), the FMA
# kernels of csrc/fnn_small.h (float32) and the register-tiled kernel in csrc/fnn_gemm.h;
# inference asks for the row-exact kernel of csrc/fnn_gemm_rows.h.
# Everything else calls gemm_rowmajor.
#
# BLAS is reached through function pointers filled at first use (csrc/fnn_blas.h), not a
# cimport, so that `import fastnn` does not import scipy.linalg.  Every def entry point of
# a module that can reach gemm_rowmajor calls ensure_blas() first (with the GIL).
from cython cimport floating

from fastnn._kernels._csrc cimport (FNN_ROWS_RUN_MIN, FNN_SMALL_MAX_BT, fnn_gemm_rows_f32,
                                    fnn_gemm_rows_f64, fnn_gemm_rows_run_f32,
                                    fnn_gemm_rows_run_f64, fnn_gemm_small_f32,
                                    fnn_gemm_small_f64, fnn_gemm_small_ok, fnn_rows_runner,
                                    fnn_small_gemm_f32)
from fastnn._kernels._omp cimport current_num_threads
from fastnn._kernels._pool cimport blas_serial_enter, blas_serial_exit, pool_run

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
    from fastnn._kernels._blas_import import blas_library, gemm_pointers
    s, d = gemm_pointers()
    fnn_blas_set(<void*><size_t>s, <void*><size_t>d)
    if not fnn_blas_ready():
        raise ImportError(f"fastnn: could not take sgemm/dgemm from {blas_library()}")
    return 0


cdef enum:
    GEMM_AUTO = 0
    GEMM_BLAS = 1
    GEMM_TILED = 2
    GEMM_ROWS = 3       # row-exact: a row's result never depends on the other rows
    GEMM_SMALL = 4      # the float32 FMA kernels of csrc/fnn_small.h (tests, benchmarks)
    # use_small's bounds (multiply-adds), from benchmarks/bench_gemm.py on this project's
    # AVX-512 machine, single thread, against SciPy's OpenBLAS 0.3.30 (SkylakeX kernels):
    # C = A B and A^T B: 0.16 vs 0.18 us at 32x15 @ 15x10, 0.26 vs 0.27 at 32x25 @ 25x15,
    # but 1.26 vs 1.22 at 32x64 @ 64x25 and 5-10% slower from there up;
    # C = A B^T: 0.41 vs 0.65 us at 32x15 @ 15x25, 0.16 vs 0.42 at 32x10 @ 10x15, still
    # ahead at 256x64 @ 64x25 (10.7 vs 12.2), behind at 32x64 @ 64x64 (4.1 vs 4.0).
    SMALL_MAX_WORK = 16384
    SMALL_MAX_WORK_NT = 65536
    # the forward pass also folds the bias and ReLU into the product (one pass less), which
    # makes it the faster one up to the digits net's first layer (32x64 @ 64x25)
    SMALL_MAX_WORK_DENSE = 65536


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


cdef inline bint use_small(bint trans_b, int m, int n, int k) noexcept nogil:
    """The float32 shape rule for csrc/fnn_small.h (see SMALL_MAX_WORK); the kernel itself
    declines when the CPU has no FMA."""
    cdef long work = <long>m * n * k
    if trans_b:
        return work <= SMALL_MAX_WORK_NT and <long>n * k <= FNN_SMALL_MAX_BT
    return work <= SMALL_MAX_WORK


cdef inline void gemm_rowmajor(bint trans_a, bint trans_b, int m, int n, int k,
                               floating alpha, const floating* a, const floating* b,
                               floating beta, floating* c, int method) noexcept nogil:
    """C[m, n] = alpha * op(A) @ op(B) + beta * C, all row-major and contiguous.

    op(A) is (m, k): A is stored (m, k), or (k, m) when trans_a.  op(B) is (k, n):
    B is stored (k, n), or (n, k) when trans_b.  The tiled kernel takes alpha = 1 and
    beta in {0, 1} (all fastnn needs); `method` forces a path for tests and benchmarks.
    GEMM_ROWS (inference) takes neither transpose, alpha = 1 and beta = 0; each element is
    then summed in index order whatever m is (csrc/fnn_gemm_rows.h), so that a row gives
    the same bits alone or inside any batch.  GEMM_AUTO sends small float32 products to
    csrc/fnn_small.h (FMA: other last bits than BLAS or the tile), GEMM_SMALL forces it.
    """
    if method == GEMM_ROWS and not trans_a and not trans_b and alpha == 1 and beta == 0:
        # small products (one-row latency): the tiles, directly; large ones: packed B and
        # row blocks on fastnn's pool (the same bits: csrc/fnn_gemm_rows_packed.h)
        if <Py_ssize_t>m * n * k < FNN_ROWS_RUN_MIN:
            if floating is float:
                fnn_gemm_rows_f32(m, n, k, a, b, c)
            else:
                fnn_gemm_rows_f64(m, n, k, a, b, c)
        elif floating is float:
            fnn_gemm_rows_run_f32(m, n, k, a, b, c, current_num_threads(),
                                  <fnn_rows_runner>pool_run)
        else:
            fnn_gemm_rows_run_f64(m, n, k, a, b, c, current_num_threads(),
                                  <fnn_rows_runner>pool_run)
        return
    if floating is float:
        if (alpha == 1 and (beta == 0 or beta == 1)
                and (method == GEMM_SMALL or method == GEMM_AUTO and use_small(trans_b, m, n, k))
                and fnn_small_gemm_f32(trans_a, trans_b, m, n, k, a, b, beta == 1, c)):
            return
    if method != GEMM_BLAS and method != GEMM_SMALL and alpha == 1 and (beta == 0 or beta == 1) and (
            method == GEMM_TILED and fnn_gemm_small_ok(m, n, k)
            or method == GEMM_AUTO and use_tiled(floating is float, trans_a, trans_b, m, n, k)):
        if floating is float:
            fnn_gemm_small_f32(trans_a, trans_b, m, n, k, a, b, beta == 1, c)
        else:
            fnn_gemm_small_f64(trans_a, trans_b, m, n, k, a, b, beta == 1, c)
        return
    cdef long work = <long>m * n * k
    if work < BLAS_SERIAL_MIN or not blas_serial_enter():
        # small enough that OpenBLAS runs it on the calling thread anyway (or BLAS's
        # threads are not ours to switch): one call, as BLAS decides
        _gemm_call(trans_a, trans_b, m, n, k, alpha, a, m if trans_a else k, b,
                   k if trans_b else n, beta, c)
        return
    cdef int threads = current_num_threads()
    if threads > 1 and work >= PARALLEL_MIN_WORK:
        _gemm_split(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, threads)
    else:
        _gemm_call(trans_a, trans_b, m, n, k, alpha, a, m if trans_a else k, b,
                   k if trans_b else n, beta, c)
    blas_serial_exit()


cdef enum:
    # OpenBLAS runs a GEMM of at most 65536 * 4 multiply-adds on the calling thread
    # (interface/gemm.c, GEMM_MULTITHREAD_THRESHOLD): below that BLAS's threads need no
    # switching off, and the small GEMMs of small nets pay nothing for it
    BLAS_SERIAL_MIN = 262144
    # fastnn splits a GEMM over its pool from this many multiply-adds (about 1e7 flops,
    # ~0.1 ms on one core): below it, waking a worker and re-packing the shared operand
    # per block cost more than the second core gives
    PARALLEL_MIN_WORK = 4194304
    # One block per thread.  Measured at the wide net's products (784-1024-1024-10, batch
    # 256, 2 threads, OpenBLAS 0.3.34): 2 blocks ran in 14.5 ms per step against 16.0 for
    # 4 and 16.5 for 8 blocks (single call: 25.4 ms).  Every extra block re-packs the
    # shared operand and ends with a tail where one core idles; a worker whose core is busy
    # elsewhere still cannot hold the caller up for long, because a block no worker has
    # claimed by the time the caller is free is run by the caller, and csrc/fnn_pool.h
    # backs off to the caller alone when the workers stop paying.
    TASKS_PER_THREAD = 1
    BLOCK_ALIGN = 16     # block edges on multiples of the SGEMM kernels' unroll


ctypedef struct GemmSplit:
    # one GEMM cut into blocks of whole rows (or columns) of C; see _gemm_split
    bint trans_a, trans_b, by_rows
    int m, n, k, block
    double alpha, beta
    const void* a
    const void* b
    void* c


cdef inline void _gemm_call(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                            const floating* a, int lda, const floating* b, int ldb,
                            floating beta, floating* c) noexcept nogil:
    """One BLAS call: C[m, n] (row stride n) = alpha op(A) op(B) + beta C, with A's and
    B's row strides lda and ldb (row-major)."""
    _gemm_strided_c(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, n)


cdef inline void _gemm_block(GemmSplit* s, int task, floating* c) noexcept nogil:
    """Block `task` of a split GEMM: rows (or columns) [task * block, ...) of C."""
    cdef int start = task * s.block
    cdef const floating* a = <const floating*>s.a
    cdef const floating* b = <const floating*>s.b
    cdef int lda = s.m if s.trans_a else s.k
    cdef int ldb = s.k if s.trans_b else s.n
    cdef int size
    if s.by_rows:  # C[i0:i1, :] = op(A)[i0:i1, :] op(B)
        size = min(s.block, s.m - start)
        _gemm_call(s.trans_a, s.trans_b, size, s.n, s.k, <floating>s.alpha,
                   a + (start if s.trans_a else <Py_ssize_t>start * s.k), lda, b, ldb,
                   <floating>s.beta, c + <Py_ssize_t>start * s.n)
    else:  # C[:, j0:j1] = op(A) op(B)[:, j0:j1]; C's rows keep their stride n
        size = min(s.block, s.n - start)
        _gemm_strided_c(s.trans_a, s.trans_b, s.m, size, s.k, <floating>s.alpha, a, lda,
                        b + (<Py_ssize_t>start * s.k if s.trans_b else start), ldb,
                        <floating>s.beta, c + start, s.n)


cdef inline void _gemm_strided_c(bint trans_a, bint trans_b, int m, int n, int k,
                                 floating alpha, const floating* a, int lda,
                                 const floating* b, int ldb, floating beta, floating* c,
                                 int ldc) noexcept nogil:
    """_gemm_call with C's row stride ldc (a block of C's columns)."""
    # A row-major matrix is its transpose in column-major, so C^T = op(B)^T op(A)^T:
    # BLAS gets B first, with the same transpose flags; no copies are made.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        fnn_sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c,
                  &ldc)
    else:
        fnn_dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c,
                  &ldc)


cdef inline void _split_task_f32(void* ctx, int task) noexcept nogil:
    _gemm_block((<GemmSplit*>ctx), task, <float*>(<GemmSplit*>ctx).c)


cdef inline void _split_task_f64(void* ctx, int task) noexcept nogil:
    _gemm_block((<GemmSplit*>ctx), task, <double*>(<GemmSplit*>ctx).c)


cdef inline void _gemm_split(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                             const floating* a, const floating* b, floating beta, floating* c,
                             int threads) noexcept nogil:
    """C = alpha op(A) op(B) + beta C as single-threaded BLAS calls on blocks of C, run on
    fastnn's pool.  C is cut along its longer side: cutting rows re-packs op(B) (k x n)
    for every block, cutting columns re-packs op(A) (m x k), so the cut re-packs the
    smaller one.  Every element of C is computed by one BLAS call over the whole k, and
    the blocks depend only on the shape and the thread count, never on which thread runs
    which block: the same thread count gives the same bits."""
    cdef GemmSplit s
    cdef int dim, block, ntasks
    s.trans_a, s.trans_b, s.m, s.n, s.k = trans_a, trans_b, m, n, k
    s.alpha, s.beta, s.a, s.b, s.c = alpha, beta, a, b, c
    s.by_rows = m >= n
    dim = m if s.by_rows else n
    block = (dim + threads * TASKS_PER_THREAD - 1) // (threads * TASKS_PER_THREAD)
    block = (block + BLOCK_ALIGN - 1) // BLOCK_ALIGN * BLOCK_ALIGN
    s.block = block
    ntasks = (dim + block - 1) // block
    if floating is float:
        pool_run(threads, ntasks, _split_task_f32, &s)
    else:
        pool_run(threads, ntasks, _split_task_f64, &s)
