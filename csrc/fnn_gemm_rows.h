/* Row-exact GEMM for inference: row-major C[m, n] = A[m, k] B[k, n], all contiguous.
 *
 * Guarantee (why model.predict(X)[i] == model.predict(X[i:i+1]) bit for bit):
 * every element of C is the value of the one C expression
 *
 *     c = 0;  for (p = 0; p < k; p++)  c = c + a[i][p] * b[p][j];
 *
 * p ascending, each term added with ONE arithmetic chosen per machine -- an FMA (one
 * rounding) where the CPU has AVX-512 and FMA, a rounded product then a rounded sum
 * elsewhere (see FNN_ROWS_AVX512 below) -- whatever m is, wherever the row or the column
 * sits, and whichever tile below (or the packed kernel of fnn_gemm_rows_packed.h)
 * computes it.  That holds by construction:
 *   - each tile (4 rows x 2 vectors, 1 row x 1-8 vectors, narrower vectors, scalars) only
 *     chooses WHICH elements are computed side by side, never the order or the grouping
 *     of the terms of one element: one accumulator per element, p ascending, from 0;
 *   - a vector lane performs the IEEE operation of its scalar counterpart (GCC/Clang
 *     vector extensions and the FMA intrinsics are elementwise), and the last column
 *     strip, shifted back to overlap the previous one instead of padding, recomputes the
 *     shared columns to the same values;
 *   - the body of one machine uses one arithmetic in every tile: the AVX-512 body writes
 *     every term as an explicit FMA (FNN_ROWS_FMA, scalars included), and the build passes
 *     -ffp-contract=off (setup.py), so no compiler may fuse a*b + c in the baseline body,
 *     and without -ffast-math it may not reassociate; FLT_EVAL_METHOD 0 is required below,
 *     so scalar code carries no excess precision (x87) that vector lanes would lack.
 * BLAS promises no summation order, and OpenBLAS's varies with the row count: its x86_64
 * builds send an NN product with M*N*K <= 100^3 to the "small matrix" kernels
 * (interface/gemm.c, kernel/x86_64/sgemm_small_kernel_permit_skylakex.c) and larger ones
 * to the packed micro-kernels, whose remainder rows and columns take other edge kernels
 * (arm64/power/riscv builds also hand one-row products to gemv).  Measured: 41 of 70 rows
 * of a 70x61 @ 61x37 sgemm differed in the last bits from the same rows multiplied alone.
 * Padding every call up to the packed path would cost 100^3 / (n k) rows of work for one
 * row (625x for a 64-25 layer) and would still rest on one BLAS's internals.  Here the
 * result depends only on the row itself and the caller's floating-point mode (rounding,
 * FTZ/DAZ).
 *
 * Speed (this project's Zen 4 machine, 1 thread, float32, unfused as first written): 45-77
 * GFLOP/s in 1024-row blocks against OpenBLAS's 60-104; 20-36 with the 16-byte baseline
 * body.  Fused, these tiles run at 100-115 GFLOP/s while B stays in the L2 cache and
 * 55-60 beyond it (1024 x 1024); large products therefore take the packed kernel of
 * fnn_gemm_rows_packed.h (99-103 GFLOP/s, about a large sgemm's rate) and fastnn's
 * threads.  The one-row latency is bound by the length of each element's chain of terms
 * (an FMA's latency is 4 cycles on Zen 4, an add's 3): 64-25-15-10's model(x) went from
 * 0.62 to 0.65 us with the FMA.
 */
#ifndef FNN_GEMM_ROWS_H
#define FNN_GEMM_ROWS_H

#include <float.h>
#include <string.h>
#include "fnn_common.h"

#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0
#error "fnn_gemm_rows.h needs FLT_EVAL_METHOD == 0 (no excess precision in scalar code)"
#endif

/* R rows from i0, NV vectors of L lanes from column c0: one accumulator per element. */
#define FNN_ROWS_TILE(T, VT, L, R, NV, MADD)                                                \
    do {                                                                                \
        VT acc[R][NV];                                                                  \
        for (int r = 0; r < (R); r++)                                                   \
            for (int v = 0; v < (NV); v++) acc[r][v] = (VT){0};                         \
        for (ptrdiff_t p = 0; p < k; p++) {                                             \
            VT bv[NV];                                                                  \
            for (int v = 0; v < (NV); v++)                                              \
                memcpy(&bv[v], b + p * n + c0 + v * (L), sizeof(VT));                   \
            for (int r = 0; r < (R); r++) {                                             \
                T av = a[(i0 + r) * k + p];                                             \
                for (int v = 0; v < (NV); v++) acc[r][v] = MADD(acc[r][v], av, bv[v]);   \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < (R); r++)                                                   \
            for (int v = 0; v < (NV); v++)                                              \
                memcpy(c + (i0 + r) * n + c0 + v * (L), &acc[r][v], sizeof(VT));        \
    } while (0)

/* Rows [i_from, i_to) in steps of R, in column strips of NV * L (needs n >= NV * L); the
 * last strip is shifted back to end at column n. */
#define FNN_ROWS_PASS(T, VT, L, R, NV, i_from, i_to, MADD)                                  \
    for (ptrdiff_t t = 0; t * (NV) * (L) < n; t++) {                                    \
        ptrdiff_t c0 = (t + 1) * (NV) * (L) <= n ? t * (NV) * (L) : n - (NV) * (L);     \
        for (ptrdiff_t i0 = (i_from); i0 < (i_to); i0 += (R))                           \
            FNN_ROWS_TILE(T, VT, L, R, NV, MADD);                                          \
    }

/* Rows [i_from, i_to) of narrow outputs (n < 4 lanes of 16 bytes): plain scalars. */
#define FNN_ROWS_SCALAR(T, i_from, i_to, MADD)                                              \
    for (ptrdiff_t i = (i_from); i < (i_to); i++)                                       \
        for (ptrdiff_t j = 0; j < n; j++) {                                             \
            T s = 0;                                                                    \
            for (ptrdiff_t p = 0; p < k; p++) s = MADD(s, a[i * k + p], b[p * n + j]); \
            c[i * n + j] = s;                                                           \
        }

/* The body for one instruction set: W, H and Q are the wide, half and quarter vector types
 * (all 16 bytes below AVX-512).  Rows in blocks of 4 (B's vectors reused 4 times), then
 * single rows with as many vectors side by side as fit (independent sums). */
#define FNN_GEMM_ROWS_BODY(T, W, H, Q, MADD)                                                \
    {                                                                                   \
        const ptrdiff_t L = sizeof(W) / sizeof(T), LH = sizeof(H) / sizeof(T);          \
        const ptrdiff_t LQ = sizeof(Q) / sizeof(T), m4 = m - m % 4;                     \
        if (n >= 2 * L) {                                                               \
            FNN_ROWS_PASS(T, W, L, 4, 2, 0, m4, MADD)                                         \
        } else if (n >= L) {                                                            \
            FNN_ROWS_PASS(T, W, L, 4, 1, 0, m4, MADD)                                         \
        } else if (n >= LH) {                                                           \
            FNN_ROWS_PASS(T, H, LH, 4, 1, 0, m4, MADD)                                        \
        } else if (n >= LQ) {                                                           \
            FNN_ROWS_PASS(T, Q, LQ, 4, 1, 0, m4, MADD)                                        \
        } else {                                                                        \
            FNN_ROWS_SCALAR(T, 0, m4, MADD)                                                   \
        }                                                                               \
        if (n >= 8 * L) {                                                               \
            FNN_ROWS_PASS(T, W, L, 1, 8, m4, m, MADD)                                         \
        } else if (n >= 4 * L) {                                                        \
            FNN_ROWS_PASS(T, W, L, 1, 4, m4, m, MADD)                                         \
        } else if (n >= 2 * L) {                                                        \
            FNN_ROWS_PASS(T, W, L, 1, 2, m4, m, MADD)                                         \
        } else if (n >= L) {                                                            \
            FNN_ROWS_PASS(T, W, L, 1, 1, m4, m, MADD)                                         \
        } else if (n >= LH) {                                                           \
            FNN_ROWS_PASS(T, H, LH, 1, 1, m4, m, MADD)                                        \
        } else if (n >= LQ) {                                                           \
            FNN_ROWS_PASS(T, Q, LQ, 1, 1, m4, m, MADD)                                        \
        } else {                                                                        \
            FNN_ROWS_SCALAR(T, m4, m, MADD)                                                   \
        }                                                                               \
    }

#define FNN_GEMM_ROWS_ARGS(T)                                                           \
    (ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *FNN_RESTRICT a,                    \
     const T *FNN_RESTRICT b, T *FNN_RESTRICT c)


/* a * b + acc as two roundings (a product, then a sum): the baseline body's arithmetic */
#define FNN_ROWS_MULADD(acc, a, b) ((acc) + (a) * (b))

/* Which body runs is chosen at run time, by hand rather than with FNN_CLONES, because the
 * vector width must follow the instruction set: 64-byte vectors are native with AVX-512
 * (45-75 GFLOP/s here), but GCC keeps them, and even 32-byte ones, on the stack in AVX2
 * code (2-15 GFLOP/s measured) and in baseline SSE2 code (2 GFLOP/s), where 16-byte
 * vectors run at 25-35 GFLOP/s.
 *
 * The AVX-512 body fuses: every term is one FMA, acc = fma(a, b, acc), a single rounding
 * (explicit intrinsics, so -ffp-contract=off does not apply and no term can escape it).
 * It runs about 1.3x faster than a product and a sum on this project's Zen 4 machine
 * (102 against 79 GFLOP/s per core in the packed kernel of fnn_gemm_rows_packed.h).  So
 * the bits depend on the CPU: fused where the CPU has AVX-512 (and FMA), two roundings
 * elsewhere.  On one machine every path -- every tile of both bodies' callers, the packed
 * kernel, any row count, thread count or batch -- takes the same one, so a row still
 * gives the same bits alone or in any batch (fnn_gemm_rows_fused() says which). */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) \
    && __GNUC__ >= 8 && !defined(FNN_NO_CLONES)
#define FNN_ROWS_AVX512 1
#else
#define FNN_ROWS_AVX512 0
#endif

#define FNN_DEFINE_GEMM_ROWS_TYPES(T, SUF)                                              \
    typedef T fnn_rows_##SUF##_64 __attribute__((vector_size(64), aligned(sizeof(T)))); \
    typedef T fnn_rows_##SUF##_32 __attribute__((vector_size(32), aligned(sizeof(T)))); \
    typedef T fnn_rows_##SUF##_16 __attribute__((vector_size(16), aligned(sizeof(T))));

FNN_DEFINE_GEMM_ROWS_TYPES(float, f32)
FNN_DEFINE_GEMM_ROWS_TYPES(double, f64)

#if FNN_ROWS_AVX512
#include <immintrin.h>
#define FNN_ROWS_TARGET __attribute__((target("avx512f,fma")))
#define FNN_ROWS_FMA_FN(NAME, VT, T, SET1, FMADD)                                       \
    FNN_ROWS_TARGET static inline __attribute__((always_inline)) VT NAME(VT acc, T a,   \
                                                                          VT b) {       \
        return (VT)FMADD(SET1(a), b, acc);                                              \
    }
FNN_ROWS_FMA_FN(fnn_rows_fma_f32_64, fnn_rows_f32_64, float, _mm512_set1_ps, _mm512_fmadd_ps)
FNN_ROWS_FMA_FN(fnn_rows_fma_f32_32, fnn_rows_f32_32, float, _mm256_set1_ps, _mm256_fmadd_ps)
FNN_ROWS_FMA_FN(fnn_rows_fma_f32_16, fnn_rows_f32_16, float, _mm_set1_ps, _mm_fmadd_ps)
FNN_ROWS_FMA_FN(fnn_rows_fma_f64_64, fnn_rows_f64_64, double, _mm512_set1_pd, _mm512_fmadd_pd)
FNN_ROWS_FMA_FN(fnn_rows_fma_f64_32, fnn_rows_f64_32, double, _mm256_set1_pd, _mm256_fmadd_pd)
FNN_ROWS_FMA_FN(fnn_rows_fma_f64_16, fnn_rows_f64_16, double, _mm_set1_pd, _mm_fmadd_pd)
FNN_ROWS_TARGET static inline __attribute__((always_inline)) float fnn_rows_fma_f32(
    float acc, float a, float b) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(acc)));
}
FNN_ROWS_TARGET static inline __attribute__((always_inline)) double fnn_rows_fma_f64(
    double acc, double a, double b) {
    return _mm_cvtsd_f64(_mm_fmadd_sd(_mm_set_sd(a), _mm_set_sd(b), _mm_set_sd(acc)));
}
/* acc + a * b in one rounding, for every type the tiles use (a is a scalar) */
#define FNN_ROWS_FMA(acc, a, b)                                                         \
    _Generic((acc), fnn_rows_f32_64: fnn_rows_fma_f32_64, fnn_rows_f32_32: fnn_rows_fma_f32_32, \
             fnn_rows_f32_16: fnn_rows_fma_f32_16, fnn_rows_f64_64: fnn_rows_fma_f64_64,  \
             fnn_rows_f64_32: fnn_rows_fma_f64_32, fnn_rows_f64_16: fnn_rows_fma_f64_16,  \
             float: fnn_rows_fma_f32, double: fnn_rows_fma_f64)(acc, a, b)

/* 1 when this CPU runs the fused AVX-512 body (and the packed kernel) */
static FNN_MAYBE_UNUSED int fnn_gemm_rows_fused(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}
#define FNN_GEMM_ROWS_WIDE(T, SUF)                                                      \
    FNN_ROWS_TARGET static FNN_MAYBE_UNUSED void                                        \
    fnn_gemm_rows_##SUF##_avx512 FNN_GEMM_ROWS_ARGS(T)                                  \
        FNN_GEMM_ROWS_BODY(T, fnn_rows_##SUF##_64, fnn_rows_##SUF##_32,                 \
                           fnn_rows_##SUF##_16, FNN_ROWS_FMA)
#define FNN_GEMM_ROWS_DISPATCH(SUF)                                                     \
    if (fnn_gemm_rows_fused()) {                                                        \
        fnn_gemm_rows_##SUF##_avx512(m, n, k, a, b, c);                                 \
        return;                                                                         \
    }
#else
static FNN_MAYBE_UNUSED int fnn_gemm_rows_fused(void) { return 0; }
#define FNN_GEMM_ROWS_WIDE(T, SUF)
#define FNN_GEMM_ROWS_DISPATCH(SUF)
#endif

#define FNN_DEFINE_GEMM_ROWS(T, SUF)                                                    \
    static FNN_MAYBE_UNUSED void fnn_gemm_rows_##SUF##_base FNN_GEMM_ROWS_ARGS(T)        \
        FNN_GEMM_ROWS_BODY(T, fnn_rows_##SUF##_16, fnn_rows_##SUF##_16,                 \
                           fnn_rows_##SUF##_16, FNN_ROWS_MULADD)                        \
    FNN_GEMM_ROWS_WIDE(T, SUF)                                                          \
    static FNN_MAYBE_UNUSED void fnn_gemm_rows_##SUF FNN_GEMM_ROWS_ARGS(T) {            \
        FNN_GEMM_ROWS_DISPATCH(SUF)                                                     \
        fnn_gemm_rows_##SUF##_base(m, n, k, a, b, c);                                   \
    }

FNN_DEFINE_GEMM_ROWS(float, f32)
FNN_DEFINE_GEMM_ROWS(double, f64)

#endif /* FNN_GEMM_ROWS_H */
