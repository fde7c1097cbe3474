/* The row-exact GEMM of fnn_gemm_rows.h for large products: packed operands, cache
 * blocking, a register-blocked AVX-512 micro-kernel and row blocks spread over threads.
 *
 * Same guarantee, same bits: every element of C is the value of
 *
 *     c = 0;  for (p = 0; p < k; p++)  c = c + a[i][p] * b[p][j];
 *
 * each term one FMA, exactly as in fnn_gemm_rows.h's AVX-512 body (this kernel exists only
 * there: fnn_gemm_rows_fused()), p ascending.  The blocking below only decides where the
 * partial sum waits between terms, never what is added to it or in which order:
 *   - K is cut into blocks of at most FNN_RP_KC terms; between blocks the partial sum is
 *     stored in C and loaded back, which keeps its bits (a float is stored exactly), and
 *     the next block continues at the next p;
 *   - rows are cut into micro-tiles of FNN_RP_MR rows and blocks of whole micro-tiles (one
 *     per task), columns into panels of FNN_RP_NV vectors; a tile only chooses which
 *     elements are computed side by side.  Tiles at the edges are computed on zero-padded
 *     copies (the padding rows and columns are separate elements, discarded after).
 * So these results equal fnn_gemm_rows_f32/_f64's bit for bit, whichever path, thread
 * count or task split runs (tests/kernels/test_matmul.py checks both
 * against the NumPy twin's defining sum), and a row gives the same bits alone or in any
 * batch.
 *
 * Why it is faster than the unpacked tiles: B (k x n, row-major) is copied once per call
 * into panels of FNN_RP_NV * L columns, each panel's k rows contiguous, so the micro-kernel
 * reads B sequentially instead of one cache line per 4 KB page-strided row; the 8 rows of
 * A under a micro-tile are interleaved ([p][r]) into a small L1-resident buffer; the K
 * blocks keep the slice of packed B in use (FNN_RP_KC x n) in the L2 cache; and 8 x 3
 * vectors of accumulators (24 of the 32 AVX-512 registers) give each loaded B vector 8
 * uses and each broadcast A value 3.  (Unfused, a product and a sum, the same kernel ran
 * at 77-79 GFLOP/s against 99-103 fused on this project's Zen 4 machine: the FMA is what
 * brings it to a large sgemm's rate.)
 *
 * Threads: the caller passes a runner with fnn_pool_run's signature (fastnn's pool); B is
 * packed by panel tasks, then C is computed by row-block tasks.  Which thread runs a task
 * never changes what it computes: every task runs in the caller's floating-point mode
 * (FTZ/DAZ, rounding), not in whatever mode its worker was created with.
 */
#ifndef FNN_GEMM_ROWS_PACKED_H
#define FNN_GEMM_ROWS_PACKED_H

#include <stdlib.h>
#include <string.h>
#include "fnn_gemm_rows.h"

typedef void (*fnn_rows_task_fn)(void *ctx, int task);
typedef void (*fnn_rows_runner)(int threads, int ntasks, fnn_rows_task_fn fn, void *ctx);

#define FNN_RP_MR 8      /* rows per micro-tile */
#define FNN_RP_NV 3      /* vectors per micro-tile row */
#ifndef FNN_RP_KC
#define FNN_RP_KC 256    /* terms per K block */
#endif
#ifndef FNN_RP_MB
#define FNN_RP_MB 64     /* rows per task (a multiple of FNN_RP_MR) */
#endif

/* Policy, measured on this project's Zen 4 machine (float32, one thread):
 * - the unpacked tiles run at 100-115 GFLOP/s while B stays in the L2 cache (256 x 256)
 *   and drop to 55-60 once it does not (1024 x 1024: B's rows are 4 KB apart); packed,
 *   1024 x 1024 x 1024 runs at 99-103 GFLOP/s, about a large sgemm's rate, but packing
 *   costs k n copies and padding wastes rows below 16: packed from 16 rows when B
 *   exceeds 1 MB (784 x 256 floats: unpacked 100, packed 91 GFLOP/s);
 * - threads from 2^22 multiply-adds (~40 us on one core), a few tasks per thread. */
#define FNN_RP_MIN_ROWS 16
#define FNN_RP_MIN_B_BYTES (1 << 20)
#define FNN_ROWS_PARALLEL_MIN ((ptrdiff_t)1 << 22)
#define FNN_ROWS_TASKS_PER_THREAD 4
/* below this many multiply-adds neither applies (16 rows x 1 MB of float64 B is 2^21):
 * callers go straight to fnn_gemm_rows_f32/_f64, which keeps one-row latency */
#define FNN_ROWS_RUN_MIN ((ptrdiff_t)1 << 21)

/* run(threads, ntasks, fn, ctx) when there is a runner and more than one thread, else
 * the tasks in order on the calling thread (the same tasks: the same bits). */
static FNN_MAYBE_UNUSED void fnn_rows_run(fnn_rows_runner run, int threads, int ntasks,
                                          fnn_rows_task_fn fn, void *ctx) {
    if (run != NULL && threads > 1 && ntasks > 1) {
        run(threads, ntasks, fn, ctx);
        return;
    }
    for (int t = 0; t < ntasks; t++) fn(ctx, t);
}

/* One shared description of a packed product, read by every task. */
typedef struct {
    ptrdiff_t m, n, k, panels;
    const void *a, *b;
    void *c;
    void *bp;  /* packed B: panels x k x (FNN_RP_NV * L) */
    unsigned int mode;  /* the caller's floating-point mode, for every task */
} fnn_rp_job;

#if FNN_ROWS_AVX512

/* The micro-kernel: C[0:MR, 0:NV*L] (row stride ldc) = (first ? 0 : C) + the kc terms of
 * ap ([p][MR]) and bp ([p][NV*L]), each element a product then a sum per term. */
#define FNN_RP_KERNEL(T, VT, L)                                                         \
    {                                                                                   \
        VT acc[FNN_RP_MR][FNN_RP_NV];                                                   \
        for (int r = 0; r < FNN_RP_MR; r++)                                             \
            for (int v = 0; v < FNN_RP_NV; v++) {                                       \
                if (first) acc[r][v] = (VT){0};                                         \
                else memcpy(&acc[r][v], c + r * ldc + v * (L), sizeof(VT));             \
            }                                                                           \
        for (ptrdiff_t p = 0; p < kc; p++) {                                            \
            VT bv[FNN_RP_NV];                                                           \
            for (int v = 0; v < FNN_RP_NV; v++)                                         \
                memcpy(&bv[v], bp + p * (FNN_RP_NV * (L)) + v * (L), sizeof(VT));        \
            for (int r = 0; r < FNN_RP_MR; r++) {                                       \
                T av = ap[p * FNN_RP_MR + r];                                           \
                for (int v = 0; v < FNN_RP_NV; v++)                                     \
                    acc[r][v] = FNN_ROWS_FMA(acc[r][v], av, bv[v]);                      \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < FNN_RP_MR; r++)                                             \
            for (int v = 0; v < FNN_RP_NV; v++)                                         \
                memcpy(c + r * ldc + v * (L), &acc[r][v], sizeof(VT));                  \
    }

/* Panel t of B: rows 0..k-1, columns [t * NR, t * NR + NR) zero-padded past n. */
#define FNN_RP_PACK_B(T)                                                                \
    {                                                                                   \
        const ptrdiff_t NR = FNN_RP_NV * L, j0 = t * NR;                                \
        const ptrdiff_t w = n - j0 < NR ? n - j0 : NR;                                  \
        T *dst = bp + t * k * NR;                                                       \
        for (ptrdiff_t p = 0; p < k; p++) {                                             \
            memcpy(dst + p * NR, b + p * n + j0, (size_t)w * sizeof(T));                \
            for (ptrdiff_t j = w; j < NR; j++) dst[p * NR + j] = 0;                     \
        }                                                                               \
    }

/* Rows [i_from, i_to) of C: K blocks, then micro-tiles of rows, then panels. */
#define FNN_RP_ROWS(T, SUF)                                                             \
    {                                                                                   \
        const ptrdiff_t NR = FNN_RP_NV * L;                                             \
        T ap[FNN_RP_KC * FNN_RP_MR] __attribute__((aligned(64)));                       \
        T tile[FNN_RP_MR * FNN_RP_NV * 16] __attribute__((aligned(64)));                \
        /* K blocks of equal length (784: 4 x 196, not 3 x 256 + 16: a short block    \
         * loads and stores C for few terms) */                                         \
        const ptrdiff_t nkb = (k + FNN_RP_KC - 1) / FNN_RP_KC, kb = (k + nkb - 1) / nkb; \
        for (ptrdiff_t pc = 0; pc < k; pc += kb) {                                      \
            const ptrdiff_t kc = k - pc < kb ? k - pc : kb;                             \
            for (ptrdiff_t i0 = i_from; i0 < i_to; i0 += FNN_RP_MR) {                   \
                const ptrdiff_t mr = i_to - i0 < FNN_RP_MR ? i_to - i0 : FNN_RP_MR;     \
                for (ptrdiff_t r = 0; r < FNN_RP_MR; r++) {                             \
                    const T *src = a + (i0 + r) * k + pc;                               \
                    if (r < mr)                                                         \
                        for (ptrdiff_t p = 0; p < kc; p++) ap[p * FNN_RP_MR + r] = src[p]; \
                    else                                                                \
                        for (ptrdiff_t p = 0; p < kc; p++) ap[p * FNN_RP_MR + r] = 0;   \
                }                                                                       \
                for (ptrdiff_t t = 0; t < panels; t++) {                                \
                    const ptrdiff_t j0 = t * NR, w = n - j0 < NR ? n - j0 : NR;         \
                    const T *bt = bp + t * k * NR + pc * NR;                            \
                    T *ct = c + i0 * n + j0;                                            \
                    if (mr == FNN_RP_MR && w == NR) {                                   \
                        fnn_rp_kernel_##SUF(kc, ap, bt, ct, n, pc == 0);                \
                        continue;                                                       \
                    }                                                                   \
                    /* an edge tile: on a padded copy, only the real elements kept */   \
                    for (ptrdiff_t r = 0; r < mr && pc > 0; r++)                        \
                        memcpy(tile + r * NR, ct + r * n, (size_t)w * sizeof(T));       \
                    fnn_rp_kernel_##SUF(kc, ap, bt, tile, NR, pc == 0);                 \
                    for (ptrdiff_t r = 0; r < mr; r++)                                  \
                        memcpy(ct + r * n, tile + r * NR, (size_t)w * sizeof(T));       \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }

#define FNN_DEFINE_RP(T, SUF)                                                           \
    FNN_ROWS_TARGET static void fnn_rp_kernel_##SUF(                                        \
        ptrdiff_t kc, const T *FNN_RESTRICT ap, const T *FNN_RESTRICT bp,               \
        T *FNN_RESTRICT c, ptrdiff_t ldc, int first)                                    \
        FNN_RP_KERNEL(T, fnn_rows_##SUF##_64, (ptrdiff_t)(64 / sizeof(T)))              \
    static void fnn_rp_pack_task_##SUF(void *ctx, int task) {                           \
        const fnn_rp_job *job = (const fnn_rp_job *)ctx;                                \
        const ptrdiff_t L = 64 / sizeof(T), n = job->n, k = job->k, t = task;           \
        const T *b = (const T *)job->b;                                                 \
        T *bp = (T *)job->bp;                                                           \
        FNN_RP_PACK_B(T)                                                                \
    }                                                                                   \
    FNN_ROWS_TARGET static void fnn_rp_rows_task_##SUF(void *ctx, int task) {          \
        const fnn_rp_job *job = (const fnn_rp_job *)ctx;                                \
        const ptrdiff_t L = 64 / sizeof(T), n = job->n, k = job->k;                     \
        const ptrdiff_t panels = job->panels, i_from = (ptrdiff_t)task * FNN_RP_MB;     \
        const ptrdiff_t i_to = job->m - i_from < FNN_RP_MB ? job->m : i_from + FNN_RP_MB; \
        const T *a = (const T *)job->a;                                                 \
        const T *bp = (const T *)job->bp;                                               \
        T *c = (T *)job->c;                                                             \
        const unsigned int old = fnn_fp_mode_swap(job->mode);                           \
        FNN_RP_ROWS(T, SUF)                                                             \
        fnn_denormals_restore(old);                                                     \
    }                                                                                   \
    /* Packs B (panel tasks) and computes C (row-block tasks); 0 when B's buffer cannot \
     * be allocated (the caller then runs the unpacked tiles: the same bits). */        \
    static int fnn_gemm_rows_packed_##SUF(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,         \
                                          const T *a, const T *b, T *c, int threads,    \
                                          fnn_rows_runner run) {                        \
        const ptrdiff_t NR = FNN_RP_NV * (ptrdiff_t)(64 / sizeof(T));                   \
        fnn_rp_job job;                                                                 \
        job.m = m; job.n = n; job.k = k; job.a = a; job.b = b; job.c = c;               \
        job.panels = (n + NR - 1) / NR;                                                 \
        job.mode = fnn_fp_mode_get();                                                   \
        job.bp = malloc((size_t)(job.panels * k * NR) * sizeof(T));                     \
        if (job.bp == NULL) return 0;                                                   \
        fnn_rows_run(run, threads, (int)job.panels, fnn_rp_pack_task_##SUF, &job);      \
        fnn_rows_run(run, threads, (int)((m + FNN_RP_MB - 1) / FNN_RP_MB),              \
                     fnn_rp_rows_task_##SUF, &job);                                     \
        free(job.bp);                                                                   \
        return 1;                                                                       \
    }

FNN_DEFINE_RP(float, f32)
FNN_DEFINE_RP(double, f64)

#endif /* FNN_ROWS_AVX512 */

/* Rows [task * block, ...) of an unpacked product (fnn_gemm_rows_f32/_f64 on a block). */
typedef struct {
    ptrdiff_t m, n, k, block;
    const void *a, *b;
    void *c;
    unsigned int mode;  /* the caller's floating-point mode, for every task */
} fnn_rows_split;

#define FNN_DEFINE_ROWS_RUN(T, SUF)                                                     \
    static void fnn_rows_split_task_##SUF(void *ctx, int task) {                        \
        const fnn_rows_split *s = (const fnn_rows_split *)ctx;                          \
        const ptrdiff_t i0 = (ptrdiff_t)task * s->block;                                \
        const ptrdiff_t rows = s->m - i0 < s->block ? s->m - i0 : s->block;             \
        const unsigned int old = fnn_fp_mode_swap(s->mode);                             \
        fnn_gemm_rows_##SUF(rows, s->n, s->k, (const T *)s->a + i0 * s->k,              \
                            (const T *)s->b, (T *)s->c + i0 * s->n);                    \
        fnn_denormals_restore(old);                                                     \
    }                                                                                   \
    /* C[m, n] = A[m, k] B[k, n], row-exact (the bits of fnn_gemm_rows_##SUF), on up to \
     * `threads` threads of `run` (NULL: the calling thread alone). */                   \
    static FNN_MAYBE_UNUSED void fnn_gemm_rows_run_##SUF(                               \
        ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *a, const T *b, T *c,            \
        int threads, fnn_rows_runner run) {                                             \
        fnn_rows_split s;                                                               \
        if (m * n * k < FNN_ROWS_PARALLEL_MIN) threads = 1;                             \
        if (FNN_ROWS_PACKED(SUF) && m >= FNN_RP_MIN_ROWS                                \
            && n * k * (ptrdiff_t)sizeof(T) > FNN_RP_MIN_B_BYTES && fnn_gemm_rows_fused() \
            && fnn_gemm_rows_packed_##SUF(m, n, k, a, b, c, threads, run))              \
            return;                                                                     \
        if (threads <= 1 || run == NULL) {                                              \
            fnn_gemm_rows_##SUF(m, n, k, a, b, c);                                      \
            return;                                                                     \
        }                                                                               \
        s.m = m; s.n = n; s.k = k; s.a = a; s.b = b; s.c = c;                           \
        s.mode = fnn_fp_mode_get();                                                     \
        s.block = (m + threads * FNN_ROWS_TASKS_PER_THREAD - 1)                         \
                  / (threads * FNN_ROWS_TASKS_PER_THREAD);                              \
        s.block = (s.block + 3) / 4 * 4; /* whole 4-row tiles */                        \
        fnn_rows_run(run, threads, (int)((m + s.block - 1) / s.block),                  \
                     fnn_rows_split_task_##SUF, &s);                                    \
    }

#if FNN_ROWS_AVX512
#define FNN_ROWS_PACKED(SUF) 1
#else
#define FNN_ROWS_PACKED(SUF) 0
#define fnn_gemm_rows_packed_f32(m, n, k, a, b, c, threads, run) 0
#define fnn_gemm_rows_packed_f64(m, n, k, a, b, c, threads, run) 0
#endif

FNN_DEFINE_ROWS_RUN(float, f32)
FNN_DEFINE_ROWS_RUN(double, f64)

#endif /* FNN_GEMM_ROWS_PACKED_H */
