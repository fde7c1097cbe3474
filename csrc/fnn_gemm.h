/* Register-tiled GEMM for the small products of a mini-batch step.
 *
 * Row-major C[m, n] = op(A) op(B) (+ C when accumulate), for n >= 8.  Each output tile is
 * 4 rows by one vector (16 floats, or 8 when n < 16) held in registers; A is broadcast an
 * element at a time and B is read a row at a time, so no packing is needed when B's rows are
 * contiguous.  The last column tile is shifted back to overlap the previous one instead of
 * being padded; its first `skip` columns were already stored by that tile, so only the rest
 * is stored (rewriting them would be harmless when overwriting but would add C twice when
 * accumulating).  op(B) = B^T is first transposed into a stack buffer, which is why
 * fnn_gemm_small_ok limits n*k.
 *
 * Measured against OpenBLAS's SkylakeX small-matrix kernels (benchmarks/bench_gemm.py): the
 * tile wins for C = A B^T (the dx = dz W^T of the backward pass) at the digits shapes and
 * loses for the other two products and for larger sizes, so the shape rule in _blas.pxd
 * sends only that case here.
 */
#ifndef FNN_GEMM_H
#define FNN_GEMM_H

#include <string.h>
#include "fnn_common.h"

#define FNN_GEMM_MAX_BT 4096 /* elements of the transposed B kept on the stack */

static inline int fnn_gemm_small_ok(int m, int n, int k) {
    return n >= 8 && k >= 1 && m >= 1 && (long)n * k <= FNN_GEMM_MAX_BT;
}

#define FNN_GEMM_TILE(T, VT, MR)                                                        \
    do {                                                                                \
        VT acc[MR];                                                                     \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) acc[r] = (VT){0};          \
        const T *ap = a + (ptrdiff_t)i0 * rsa;                                          \
        for (int p = 0; p < k; p++) {                                                   \
            VT bv;                                                                      \
            memcpy(&bv, b + (ptrdiff_t)p * n + c0, sizeof bv);                          \
            _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++)                        \
                acc[r] += ap[r * rsa + p * csa] * bv;                                   \
        }                                                                               \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                          \
            T *cp = c + (ptrdiff_t)(i0 + r) * n + c0;                                   \
            if (skip) { /* the overlapping last tile: its new columns, one at a time */ \
                T lane[sizeof(VT) / sizeof(T)];                                         \
                memcpy(lane, &acc[r], sizeof lane);                                     \
                for (int j = skip; j < (int)(sizeof lane / sizeof(T)); j++)             \
                    cp[j] = accumulate ? cp[j] + lane[j] : lane[j];                     \
                continue;                                                               \
            }                                                                           \
            if (accumulate) {                                                           \
                VT old;                                                                 \
                memcpy(&old, cp, sizeof old);                                           \
                acc[r] += old;                                                          \
            }                                                                           \
            memcpy(cp, &acc[r], sizeof acc[r]);                                         \
        }                                                                               \
    } while (0)

#define FNN_GEMM_PASS(T, VT, V)                                                         \
    for (int t = 0; t * (V) < n; t++) {                                                 \
        int c0 = (t + 1) * (V) <= n ? t * (V) : n - (V);                                \
        int skip = t * (V) - c0; /* columns the previous tile already stored */         \
        int i0 = 0;                                                                     \
        for (; i0 + 4 <= m; i0 += 4) FNN_GEMM_TILE(T, VT, 4);                           \
        for (; i0 < m; i0++) FNN_GEMM_TILE(T, VT, 1);                                   \
    }

#define FNN_DEFINE_GEMM(T, SUF)                                                         \
    typedef T fnn_##SUF##_v16 __attribute__((vector_size(16 * sizeof(T)), aligned(sizeof(T)))); \
    typedef T fnn_##SUF##_v8 __attribute__((vector_size(8 * sizeof(T)), aligned(sizeof(T))));   \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_gemm_small_##SUF(int trans_a, int trans_b, int m, int n, int k, \
                                                const T *a, const T *b, int accumulate,  \
                                                T *c) {                                  \
        T bt[FNN_GEMM_MAX_BT];                                                           \
        ptrdiff_t rsa = trans_a ? 1 : k, csa = trans_a ? m : 1;                          \
        if (trans_b) { /* B is stored (n, k): make its rows of op(B) contiguous */      \
            for (int j = 0; j < n; j++)                                                  \
                for (int p = 0; p < k; p++) bt[(ptrdiff_t)p * n + j] = b[(ptrdiff_t)j * k + p]; \
            b = bt;                                                                      \
        }                                                                                \
        if (n >= 16) {                                                                   \
            FNN_GEMM_PASS(T, fnn_##SUF##_v16, 16)                                        \
        } else {                                                                         \
            FNN_GEMM_PASS(T, fnn_##SUF##_v8, 8)                                          \
        }                                                                                \
    }

FNN_DEFINE_GEMM(float, f32)
FNN_DEFINE_GEMM(double, f64)

#endif /* FNN_GEMM_H */
