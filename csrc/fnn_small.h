/* Small float32 GEMMs with FMA for the products of a mini-batch step, AVX-512 or AVX2
 * chosen once at run time.
 *
 * Row-major C[m, n] = op(A) op(B) (+ C when accumulate), op(A) (m, k), op(B) (k, n), all
 * contiguous.  Each output tile is MR rows by NV vectors held in registers: an element of
 * op(A) is broadcast, a row of op(B) is loaded as NV vectors, the last one masked to the n
 * columns left (25, 15 and 10 are not multiples of any vector width), so nothing is padded
 * and nothing outside C is read or written.  op(B) = B^T is first transposed into a stack
 * buffer (n * k <= FNN_SMALL_MAX_BT); op(A) = A^T is read with strides.
 *
 * Summation order: every element is  c = fma(a[i][0], b[0][j], 0);  c = fma(a[i][p],
 * b[p][j], c) for p ascending, one accumulator per element.  The tiles only choose which
 * elements are computed side by side, so an element's value depends neither on m, n, the
 * tile it falls in, the vector width (AVX-512 and AVX2 give the same bits) nor on any
 * thread count: the same bits on every run of every x86-64 CPU with FMA.  It differs from
 * the unfused a*b+c of the baseline build (and from OpenBLAS, whose order is its own) in
 * the last bits: one rounding per term instead of two.
 *
 * The forward epilogue adds the bias and applies ReLU (or nothing) while the tile is in
 * registers: z = acc + b is rounded exactly as the separate bias pass rounds it, so fusing
 * changes no value.
 *
 * Why: at the digits shapes (32x64 @ 64x25 and smaller) OpenBLAS spends a large share of a
 * call on dispatch and edge handling; this kernel has no packing and no edge kernels.
 * Measured numbers are in fastnn/_kernels/_blas.pxd (use_small).
 *
 * Dispatch: gcc/clang on x86-64 compile the AVX-512 and AVX2 bodies with target
 * attributes (no -m flags needed), and fnn_small_isa() picks one with
 * __builtin_cpu_supports on first use.  Elsewhere, or on CPUs without FMA, every entry
 * point returns 0 ("not done") and the caller takes its previous path (BLAS or the tile of
 * fnn_gemm.h).  fnn_small_force_isa lets the tests run the AVX2 body on an AVX-512 CPU.
 */
#ifndef FNN_SMALL_H
#define FNN_SMALL_H

#include <math.h>
#include <string.h>
#include "fnn_common.h"

#define FNN_SMALL_MAX_BT 4096 /* elements of a transposed B kept on the stack */

enum { FNN_ISA_NONE = 0, FNN_ISA_AVX2 = 1, FNN_ISA_AVX512 = 2 };

#if defined(__x86_64__) && defined(__GNUC__) && !defined(FNN_NO_CLONES) \
    && (defined(__clang__) || __GNUC__ >= 8)
#define FNN_SMALL_X86 1
#include <immintrin.h>
#endif

/* Per extension module (header-only, static): -1 = detect, else a cap on the level. */
static int fnn_small_isa_cap = -1;
static int fnn_small_isa_found = -1;

static inline int fnn_small_isa(void) {
    int found = fnn_small_isa_found;
    if (found < 0) {
#ifdef FNN_SMALL_X86
        /* libgcc's checks include the OS's support for the register state (XGETBV) */
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
            found = FNN_ISA_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            found = FNN_ISA_AVX2;
        else
            found = FNN_ISA_NONE;
#else
        found = FNN_ISA_NONE;
#endif
        fnn_small_isa_found = found; /* idempotent: a race writes the same value */
    }
    return fnn_small_isa_cap >= 0 && fnn_small_isa_cap < found ? fnn_small_isa_cap : found;
}

/* Cap the level (tests and benchmarks); -1 restores detection.  Returns the level now in
 * use. */
static FNN_MAYBE_UNUSED int fnn_small_force_isa(int level) {
    fnn_small_isa_cap = level;
    return fnn_small_isa();
}

#ifdef FNN_SMALL_X86

/* One tile of MR rows x NV vectors at (i0, j0); MR and NV are enum constants, so acc[][]
 * lives in registers.  mlast masks the last vector's lanes.  op(A)[i][p] is
 * a[i * rsa + p * csa]; op(B) row p starts at b + p * n. */
#define FNN_SMALL_TILE_BODY(V, VL, MASKT, LOADU, LOADM, STOREU, STOREM, FMA, SET1, ZERO, \
                            ADD, MAXZ)                                                   \
    V acc[MR][NV];                                                                       \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                 \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = ZERO;           \
    const float *ap = a + (ptrdiff_t)i0 * rsa;                                           \
    const float *bp = b + j0;                                                            \
    for (int p = 0; p < k; p++, ap += csa, bp += n) {                                    \
        V bv[NV];                                                                        \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV - 1; v++) bv[v] = LOADU(bp + v * VL); \
        bv[NV - 1] = LOADM(bp + (NV - 1) * VL, mlast);                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                           \
            V av = SET1(ap[r * rsa]);                                                    \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                         \
                acc[r][v] = FMA(av, bv[v], acc[r][v]);                                   \
        }                                                                                \
    }                                                                                    \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                               \
        float *cp = c + (ptrdiff_t)(i0 + r) * n + j0;                                    \
        float *c2p = c2 ? c2 + (ptrdiff_t)(i0 + r) * n + j0 : NULL;                      \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                           \
            V z = acc[r][v];                                                             \
            int last = v == NV - 1;                                                      \
            if (accumulate) z = ADD(z, last ? LOADM(cp + v * VL, mlast) : LOADU(cp + v * VL)); \
            if (bias) z = ADD(z, last ? LOADM(bias + j0 + v * VL, mlast)                 \
                                      : LOADU(bias + j0 + v * VL));                      \
            if (last) STOREM(cp + v * VL, z, mlast); else STOREU(cp + v * VL, z);        \
            if (c2p) {                                                                   \
                if (relu) z = MAXZ(z);                                                   \
                if (last) STOREM(c2p + v * VL, z, mlast); else STOREU(c2p + v * VL, z);  \
            }                                                                            \
        }                                                                                \
    }

/* The tile function for constant MR and NV (array sizes must be constants, or acc[][]
 * would live in memory). */
#define FNN_SMALL_TILE_FN(ISA, ATTR, NAME, MRC, NVC, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,  \
                          FMA, SET1, ZERO, ADD, MAXZ)                                        \
    static ATTR inline __attribute__((always_inline)) void fnn_small_tile_##ISA##_##NAME( \
        int i0, int j0, int n, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa,          \
        const float *b, int accumulate, const float *bias, int relu, MASKT mlast, float *c,  \
        float *c2) {                                                                          \
        enum { MR = MRC, NV = NVC };                                                          \
        FNN_SMALL_TILE_BODY(V, VL, MASKT, LOADU, LOADM, STOREU, STOREM, FMA, SET1, ZERO,      \
                            ADD, MAXZ)                                                        \
    }

/* A whole product: column blocks of 2 vectors, row tiles of MR1 (one vector) or MR2 rows,
 * then the remaining rows in tiles of 4, 2 and 1: a one-row tile waits on its FMA chain's
 * latency (one accumulator a vector), so it is kept for the last row only. */
#define FNN_SMALL_CALL(ISA, NAME)                                                            \
    fnn_small_tile_##ISA##_##NAME(i0, j0, n, k, a, rsa, csa, b, accumulate, bias, relu, mlast, \
                                  c, c2)
#define FNN_SMALL_DEFINE(ISA, ATTR, V, VL, MR1, MR2, MASKT, MKMASK, LOADU, LOADM, STOREU,    \
                         STOREM, FMA, SET1, ZERO, ADD, MAXZ)                                  \
    FNN_SMALL_TILE_FN(ISA, ATTR, rows1, MR1, 1, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,  \
                       FMA, SET1, ZERO, ADD, MAXZ)                                            \
    FNN_SMALL_TILE_FN(ISA, ATTR, four1, 4, 1, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,    \
                       FMA, SET1, ZERO, ADD, MAXZ)                                            \
    FNN_SMALL_TILE_FN(ISA, ATTR, two1, 2, 1, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,     \
                       FMA, SET1, ZERO, ADD, MAXZ)                                            \
    FNN_SMALL_TILE_FN(ISA, ATTR, one1, 1, 1, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,     \
                       FMA, SET1, ZERO, ADD, MAXZ)                                            \
    FNN_SMALL_TILE_FN(ISA, ATTR, rows2, MR2, 2, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,  \
                       FMA, SET1, ZERO, ADD, MAXZ)                                            \
    FNN_SMALL_TILE_FN(ISA, ATTR, two2, 2, 2, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,     \
                       FMA, SET1, ZERO, ADD, MAXZ)                                            \
    FNN_SMALL_TILE_FN(ISA, ATTR, one2, 1, 2, V, VL, MASKT, LOADU, LOADM, STOREU, STOREM,     \
                       FMA, SET1, ZERO, ADD, MAXZ)                                            \
    static ATTR FNN_MAYBE_UNUSED void fnn_small_run_##ISA(                                    \
        int m, int n, int k, const float *a, ptrdiff_t rsa, ptrdiff_t csa, const float *b,   \
        int accumulate, const float *bias, int relu, float *c, float *c2) {                   \
        for (int j0 = 0; j0 < n; j0 += 2 * VL) {                                              \
            int w = n - j0 < 2 * VL ? n - j0 : 2 * VL;                                        \
            int nv = (w + VL - 1) / VL;                                                       \
            MASKT mlast = MKMASK(w - (nv - 1) * VL);                                          \
            int i0 = 0;                                                                       \
            if (nv == 1) {                                                                    \
                for (; i0 + MR1 <= m; i0 += MR1) FNN_SMALL_CALL(ISA, rows1);                  \
                for (; i0 + 4 <= m; i0 += 4) FNN_SMALL_CALL(ISA, four1);                      \
                for (; i0 + 2 <= m; i0 += 2) FNN_SMALL_CALL(ISA, two1);                       \
                for (; i0 < m; i0++) FNN_SMALL_CALL(ISA, one1);                               \
            } else {                                                                          \
                for (; i0 + MR2 <= m; i0 += MR2) FNN_SMALL_CALL(ISA, rows2);                  \
                for (; i0 + 2 <= m; i0 += 2) FNN_SMALL_CALL(ISA, two2);                       \
                for (; i0 < m; i0++) FNN_SMALL_CALL(ISA, one2);                               \
            }                                                                                 \
        }                                                                                     \
    }

#ifndef FNN_MR1_512 /* row tiles, measured at the digits shapes */
#define FNN_MR1_512 8
#define FNN_MR2_512 4
#define FNN_MR1_256 4
#define FNN_MR2_256 4
#endif
#define FNN_ATTR_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define FNN_ATTR_AVX2 __attribute__((target("avx2,fma")))

#define FNN_MK512(cnt) ((__mmask16)((1u << (cnt)) - 1u))
#define FNN_LM512(p, mk) _mm512_maskz_loadu_ps(mk, p)
#define FNN_SM512(p, v, mk) _mm512_mask_storeu_ps(p, mk, v)
#define FNN_MAXZ512(z) _mm512_max_ps(z, _mm512_setzero_ps())
FNN_SMALL_DEFINE(avx512, FNN_ATTR_AVX512, __m512, 16, FNN_MR1_512, FNN_MR2_512, __mmask16, FNN_MK512,
                 _mm512_loadu_ps, FNN_LM512, _mm512_storeu_ps, FNN_SM512, _mm512_fmadd_ps,
                 _mm512_set1_ps, _mm512_setzero_ps(), _mm512_add_ps, FNN_MAXZ512)

/* AVX2: masks are lane vectors; lanes past the count are neither read nor written */
static FNN_ATTR_AVX2 inline __attribute__((always_inline)) __m256i fnn_mk256(int cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define FNN_LM256(p, mk) _mm256_maskload_ps(p, mk)
#define FNN_SM256(p, v, mk) _mm256_maskstore_ps(p, mk, v)
#define FNN_MAXZ256(z) _mm256_max_ps(z, _mm256_setzero_ps())
FNN_SMALL_DEFINE(avx2, FNN_ATTR_AVX2, __m256, 8, FNN_MR1_256, FNN_MR2_256, __m256i, fnn_mk256, _mm256_loadu_ps,
                 FNN_LM256, _mm256_storeu_ps, FNN_SM256, _mm256_fmadd_ps, _mm256_set1_ps,
                 _mm256_setzero_ps(), _mm256_add_ps, FNN_MAXZ256)

static inline void fnn_small_run(int isa, int m, int n, int k, const float *a, ptrdiff_t rsa,
                                 ptrdiff_t csa, const float *b, int accumulate,
                                 const float *bias, int relu, float *c, float *c2) {
    if (isa == FNN_ISA_AVX512)
        fnn_small_run_avx512(m, n, k, a, rsa, csa, b, accumulate, bias, relu, c, c2);
    else
        fnn_small_run_avx2(m, n, k, a, rsa, csa, b, accumulate, bias, relu, c, c2);
}
#endif /* FNN_SMALL_X86 */

/* C = op(A) op(B) (+ C when accumulate).  Returns 1 when done, 0 when this build or CPU
 * has no FMA body or op(B)^T does not fit the stack buffer (the caller then computes C
 * itself). */
static FNN_MAYBE_UNUSED int fnn_small_gemm_f32(int trans_a, int trans_b, int m, int n, int k,
                                               const float *a, const float *b, int accumulate,
                                               float *c) {
#ifdef FNN_SMALL_X86
    int isa = fnn_small_isa();
    if (isa == FNN_ISA_NONE || m < 1 || n < 1 || k < 1) return 0;
    if (trans_b) {
        if ((long)n * k > FNN_SMALL_MAX_BT) return 0;
        float bt[FNN_SMALL_MAX_BT];
        /* scalar, p outer: ~1 cycle an element here, faster than vector gathers */
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++) bt[(ptrdiff_t)p * n + j] = b[(ptrdiff_t)j * k + p];
        fnn_small_run(isa, m, n, k, a, trans_a ? 1 : k, trans_a ? m : 1, bt, accumulate, NULL,
                      0, c, NULL);
    } else {
        fnn_small_run(isa, m, n, k, a, trans_a ? 1 : k, trans_a ? m : 1, b, accumulate, NULL,
                      0, c, NULL);
    }
    return 1;
#else
    (void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)a; (void)b;
    (void)accumulate; (void)c;
    return 0;
#endif
}

/* The dense forward pass z = x w + bias (bias may be NULL), act = act(z) with relu != 0
 * for ReLU and 0 for the identity (act may equal z).  Returns 1 when done, 0 as above. */
static FNN_MAYBE_UNUSED int fnn_small_dense_f32(int m, int n, int k, const float *x,
                                                const float *w, const float *bias, int relu,
                                                float *z, float *act) {
#ifdef FNN_SMALL_X86
    int isa = fnn_small_isa();
    if (isa == FNN_ISA_NONE || m < 1 || n < 1 || k < 1) return 0;
    /* act == z with ReLU: z is stored, then overwritten by relu(z) */
    fnn_small_run(isa, m, n, k, x, k, 1, w, 0, bias, relu, z, act == z && !relu ? NULL : act);
    return 1;
#else
    (void)m; (void)n; (void)k; (void)x; (void)w; (void)bias; (void)relu; (void)z; (void)act;
    return 0;
#endif
}

/* ------------------------------------------------------------------ elementwise helpers */

/* g *= relu'(z) = [z > 0] (0 at the kink and for NaN z), the backward pass's ReLU; and
 * out[j] = sum_i g[i][j], rows added in order: plain loops that each FNN_CLONES body
 * vectorises at its own width (the value of every element is the same in all). */
#define FNN_DEFINE_ELEM(T, SUF)                                                        \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_relu_grad_##SUF(                       \
        fnn_index_t size, const T *FNN_RESTRICT z, T *FNN_RESTRICT g) {                \
        for (fnn_index_t j = 0; j < size; j++) g[j] = z[j] > 0 ? g[j] : (T)0;          \
    }                                                                                  \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_column_sums_loop_##SUF(                \
        fnn_index_t n, fnn_index_t m, const T *FNN_RESTRICT g, T *FNN_RESTRICT out) {  \
        for (fnn_index_t j = 0; j < m; j++) out[j] = g[j];                             \
        for (fnn_index_t i = 1; i < n; i++)                                            \
            for (fnn_index_t j = 0; j < m; j++) out[j] = out[j] + g[i * m + j];        \
    }
FNN_DEFINE_ELEM(float, f32)
FNN_DEFINE_ELEM(double, f64)

#ifdef FNN_SMALL_X86
/* Column sums with the running sums of 16 columns in a register (gcc's vectorised loop
 * above spends most of its time in the remainders of rows 10-25 wide); the same sums, in
 * the same order. */
static FNN_ATTR_AVX512 void fnn_column_sums_avx512(fnn_index_t n, fnn_index_t m, const float *g,
                                                   float *out) {
    for (fnn_index_t j0 = 0; j0 < m; j0 += 32) {
        int w = m - j0 < 32 ? (int)(m - j0) : 32;
        __mmask16 m0 = w >= 16 ? (__mmask16)0xFFFF : FNN_MK512(w);
        __mmask16 m1 = w > 16 ? FNN_MK512(w - 16) : 0;
        __m512 s0 = _mm512_maskz_loadu_ps(m0, g + j0);
        __m512 s1 = _mm512_maskz_loadu_ps(m1, g + j0 + 16);
        for (fnn_index_t i = 1; i < n; i++) {
            s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m0, g + i * m + j0));
            s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m1, g + i * m + j0 + 16));
        }
        _mm512_mask_storeu_ps(out + j0, m0, s0);
        _mm512_mask_storeu_ps(out + j0 + 16, m1, s1);
    }
}
#endif

static inline void fnn_column_sums_f32(fnn_index_t n, fnn_index_t m, const float *g,
                                       float *out) {
#ifdef FNN_SMALL_X86
    if (fnn_small_isa() == FNN_ISA_AVX512) {
        fnn_column_sums_avx512(n, m, g, out);
        return;
    }
#endif
    fnn_column_sums_loop_f32(n, m, g, out);
}

static inline void fnn_column_sums_f64(fnn_index_t n, fnn_index_t m, const double *g,
                                       double *out) {
    fnn_column_sums_loop_f64(n, m, g, out);
}

/* out[r] = x[order[r]] for rows of `width` elements: the training step's batch gather.
 * Rows of a small net are a few hundred bytes, where a memcpy call per row costs more
 * than the copy itself. */
#ifdef FNN_SMALL_X86
static FNN_ATTR_AVX512 void fnn_gather_rows_avx512(fnn_index_t rows, fnn_index_t width,
                                                   const long long *order, const float *x,
                                                   float *out) {
    for (fnn_index_t r = 0; r < rows; r++) {
        const float *src = x + (fnn_index_t)order[r] * width;
        float *dst = out + r * width;
        fnn_index_t c = 0;
        for (; c + 16 <= width; c += 16) _mm512_storeu_ps(dst + c, _mm512_loadu_ps(src + c));
        if (c < width) {
            __mmask16 mk = FNN_MK512(width - c);
            _mm512_mask_storeu_ps(dst + c, mk, _mm512_maskz_loadu_ps(mk, src + c));
        }
    }
}
#endif

static inline void fnn_gather_rows_f32(fnn_index_t rows, fnn_index_t width,
                                       const long long *order, const float *x, float *out) {
#ifdef FNN_SMALL_X86
    if (width <= 256 && fnn_small_isa() == FNN_ISA_AVX512) {
        fnn_gather_rows_avx512(rows, width, order, x, out);
        return;
    }
#endif
    for (fnn_index_t r = 0; r < rows; r++)
        memcpy(out + r * width, x + (fnn_index_t)order[r] * width, width * sizeof(float));
}

static inline void fnn_gather_rows_f64(fnn_index_t rows, fnn_index_t width,
                                       const long long *order, const double *x, double *out) {
    for (fnn_index_t r = 0; r < rows; r++)
        memcpy(out + r * width, x + (fnn_index_t)order[r] * width, width * sizeof(double));
}

/* ------------------------------------------------- sparse softmax cross-entropy, AVX-512 */
#ifdef FNN_SMALL_X86
/* fnn_math.h's fnn_exp_nonpos_f32 on 16 lanes, operation for operation (no FMA), so every
 * lane has the scalar function's bits. */
static FNN_ATTR_AVX512 inline __attribute__((always_inline)) __m512 fnn_exp_nonpos_v16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    __m512 xc = _mm512_mask_blend_ps(under, x, lo);
    __m512 t = _mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 n = _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
    __m512 r = _mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
    r = _mm512_add_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(2.12194440e-4f)));
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, r2), r), _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n),
                                                      _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    return _mm512_mask_blend_ps(under, y, _mm512_setzero_ps());
}

/* G rows from row i.  The rows are independent, but each is a ~60-operation chain (max,
 * exp, sum); written G at a time, their operations sit side by side in the instruction
 * stream and the CPU overlaps them (measured, 32x10: 0.51 us one row at a time, 0.32 with
 * G = 8).  The loss terms and the products of the sums are taken in row order. */
#define FNN_XENT_ROWS(G)                                                                   \
    do {                                                                                   \
        __m512 v[G], e[G];                                                                 \
        float mx[G], s[G];                                                                 \
        _Pragma("GCC unroll 8") for (int r = 0; r < G; r++) {                             \
            v[r] = _mm512_maskz_loadu_ps(mk, z + (ptrdiff_t)(i + r) * m);                  \
            mx[r] = _mm512_mask_reduce_max_ps(mk, v[r]);                                   \
        }                                                                                  \
        _Pragma("GCC unroll 8") for (int r = 0; r < G; r++)                               \
            e[r] = fnn_exp_nonpos_v16(_mm512_sub_ps(v[r], _mm512_set1_ps(mx[r])));         \
        _Pragma("GCC unroll 8") for (int r = 0; r < G; r++) {                             \
            const float *row = z + (ptrdiff_t)(i + r) * m;                                 \
            float w = sw ? sw[i + r] : 1.0f;                                               \
            s[r] = _mm512_mask_reduce_add_ps(mk, e[r]);                                    \
            if (sw) {                                                                      \
                total += w * (logf(s[r]) - (row[labels[i + r]] - mx[r]));                  \
            } else {                                                                       \
                total -= row[labels[i + r]] - mx[r];                                       \
                prod *= s[r];                                                              \
                if (++since_log == 64) { /* 1 <= s <= 16: 16^64 < 1e300 */                 \
                    total += log(prod);                                                    \
                    prod = 1;                                                              \
                    since_log = 0;                                                         \
                }                                                                          \
            }                                                                              \
            /* the label's lane is corrected in the register: a scalar store into the      \
             * vector just written would stall on store forwarding */                      \
            __m512 g = _mm512_mul_ps(e[r], _mm512_set1_ps(w * scale / s[r]));              \
            g = _mm512_mask_sub_ps(g, (__mmask16)(1u << labels[i + r]), g,                 \
                                   _mm512_set1_ps(w * scale));                             \
            _mm512_mask_storeu_ps(grad + (ptrdiff_t)(i + r) * m, mk, g);                   \
        }                                                                                  \
    } while (0)

static FNN_ATTR_AVX512 double fnn_sparse_xent_avx512(int n, int m, const float *z,
                                                     const int *labels, const float *sw,
                                                     float scale, float *grad) {
    __mmask16 mk = FNN_MK512(m);
    double total = 0, prod = 1; /* without weights: sum of logs = log of the product */
    int since_log = 0, i = 0;
    for (; i + 8 <= n; i += 8) FNN_XENT_ROWS(8);
    for (; i < n; i++) FNN_XENT_ROWS(1);
    return prod == 1 ? total : total + log(prod);
}
#endif

/* Sparse categorical accuracy over (n, m) float32 scores, m <= 16: the number of rows
 * whose first maximum is at the label, as _loss.pxd's _argmax finds it (a NaN is never
 * the maximum, unless it is the row's first entry: then the argmax is 0). */
#ifdef FNN_SMALL_X86
static FNN_ATTR_AVX512 long fnn_sparse_hits_avx512(int n, int m, const float *z,
                                                   const int *labels) {
    __mmask16 mk = FNN_MK512(m);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    long hits = 0;
    for (int i = 0; i < n; i++) {
        const float *row = z + (ptrdiff_t)i * m;
        __m512 v = _mm512_maskz_loadu_ps(mk, row);
        __mmask16 num = _mm512_mask_cmp_ps_mask(mk, v, v, _CMP_ORD_Q);
        int best;
        if (!(num & 1)) {
            best = 0;
        } else {
            v = _mm512_mask_blend_ps(num, ninf, v);
            float mx = _mm512_reduce_max_ps(v);
            __mmask16 at = _mm512_mask_cmp_ps_mask(num, v, _mm512_set1_ps(mx), _CMP_EQ_OQ);
            best = __builtin_ctz((unsigned)at);
        }
        hits += best == labels[i];
    }
    return hits;
}
#endif

/* Returns the hit count, or -1 when m > 16 or the CPU has no AVX-512 (caller loops). */
static FNN_MAYBE_UNUSED long fnn_small_sparse_hits_f32(int n, int m, const float *z,
                                                       const int *labels) {
#ifdef FNN_SMALL_X86
    if (m >= 1 && m <= 16 && fnn_small_isa() == FNN_ISA_AVX512)
        return fnn_sparse_hits_avx512(n, m, z, labels);
#endif
    (void)n; (void)m; (void)z; (void)labels;
    return -1;
}

/* Softmax cross-entropy from logits z (n, m) against integer labels, float32, m <= 16:
 * *total = sum_i w_i (log sum_j exp(z_ij - max_i) - (z_i,label - max_i)) and grad =
 * scale w_i (softmax - onehot), one masked vector per row.  fastnn/_kernels/_loss.pxd's
 * _softmax_xent sums each row's exponentials in index order and takes a float logf per
 * row; here a vector reduction adds them and, without sample weights, the logs are taken
 * in double of products of rows, so the last bits may differ (the loss is, if anything,
 * more accurate).  Returns 1 when done, 0 when m > 16 or the CPU
 * has no AVX-512 (the caller then runs its loop). */
static FNN_MAYBE_UNUSED int fnn_small_sparse_xent_f32(int n, int m, const float *z,
                                                      const int *labels, const float *sw,
                                                      float scale, float *grad,
                                                      double *total) {
#ifdef FNN_SMALL_X86
    if (m < 1 || m > 16 || fnn_small_isa() != FNN_ISA_AVX512) return 0;
    *total = fnn_sparse_xent_avx512(n, m, z, labels, sw, scale, grad);
    return 1;
#else
    (void)n; (void)m; (void)z; (void)labels; (void)sw; (void)scale; (void)grad; (void)total;
    return 0;
#endif
}

#endif /* FNN_SMALL_H */
