/* Small-GEMM shapes of a mini-batch step: OpenBLAS (the one SciPy ships, the one fastnn
 * calls) against the register-tiled kernel in csrc/fnn_gemm.h and, in float32, the FMA
 * kernel of csrc/fnn_small.h (-1 where this CPU has no FMA or B^T does not fit), timed in
 * C so that no Python call overhead hides sub-microsecond differences.  Built and run by
 * bench_gemm.py. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fnn_gemm.h"
#include "fnn_small.h"

void scipy_sgemm_(const char *, const char *, const int *, const int *, const int *,
                  const float *, const float *, const int *, const float *, const int *,
                  const float *, float *, const int *);
void scipy_dgemm_(const char *, const char *, const int *, const int *, const int *,
                  const double *, const double *, const int *, const double *, const int *,
                  const double *, double *, const int *);

/* csrc/fnn_small.h has float32 kernels only */
static int small_float(int ta, int tb, int m, int n, int k, const float *a, const float *b,
                       float *c) {
    return fnn_small_gemm_f32(ta, tb, m, n, k, a, b, 0, c);
}
static int small_double(int ta, int tb, int m, int n, int k, const double *a, const double *b,
                        double *c) {
    (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)a; (void)b; (void)c;
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* row-major C = op(A) op(B) through column-major BLAS (the swap of _blas.pxd) */
#define BLAS_ROWMAJOR(T, FN)                                                              \
    static void blas_##T(int ta, int tb, int m, int n, int k, const T *a, const T *b, T *c) { \
        char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';                                  \
        int lda = ta ? m : k, ldb = tb ? k : n, ldc = n;                                  \
        T one = 1, zero = 0;                                                              \
        FN(&ctb, &cta, &n, &m, &k, &one, b, &ldb, a, &lda, &zero, c, &ldc);               \
    }
BLAS_ROWMAJOR(float, scipy_sgemm_)
BLAS_ROWMAJOR(double, scipy_dgemm_)

#define BENCH(T, SUF)                                                                     \
    static void bench_##SUF(int ta, int tb, int m, int n, int k, int rounds) {            \
        T *a = malloc(sizeof(T) * m * k), *b = malloc(sizeof(T) * n * k);                 \
        T *c1 = malloc(sizeof(T) * m * n), *c2 = malloc(sizeof(T) * m * n);               \
        for (int i = 0; i < m * k; i++) a[i] = (T)(rand() / (double)RAND_MAX - 0.5);      \
        for (int i = 0; i < n * k; i++) b[i] = (T)(rand() / (double)RAND_MAX - 0.5);      \
        long reps = 2000000L / ((long)m * n * k / 64 + 1) + 10;                           \
        double best_blas = 1e9, best_tiled = 1e9, best_small = 1e9;                       \
        int has_small = small_##T(ta, tb, m, n, k, a, b, c2);                             \
        for (int r = 0; r < rounds; r++) { /* interleaved, best of rounds */              \
            double t = now();                                                             \
            for (long i = 0; i < reps; i++) blas_##T(ta, tb, m, n, k, a, b, c1);          \
            t = (now() - t) / reps;                                                       \
            if (t < best_blas) best_blas = t;                                             \
            t = now();                                                                    \
            for (long i = 0; i < reps; i++) fnn_gemm_small_##SUF(ta, tb, m, n, k, a, b, 0, c2); \
            t = (now() - t) / reps;                                                       \
            if (t < best_tiled) best_tiled = t;                                           \
            if (!has_small) continue;                                                     \
            t = now();                                                                    \
            for (long i = 0; i < reps; i++) small_##T(ta, tb, m, n, k, a, b, c2);         \
            t = (now() - t) / reps;                                                       \
            if (t < best_small) best_small = t;                                           \
        }                                                                                 \
        fnn_gemm_small_##SUF(ta, tb, m, n, k, a, b, 0, c2);                               \
        double diff = 0;                                                                  \
        for (int i = 0; i < m * n; i++) {                                                 \
            double d = c1[i] > c2[i] ? c1[i] - c2[i] : c2[i] - c1[i];                     \
            if (d > diff) diff = d;                                                       \
        }                                                                                 \
        printf("%s %c%c %d %d %d %.4f %.4f %.4f %.2e\n", #T, ta ? 'T' : 'N', tb ? 'T' : 'N', m, \
               n, k, best_blas * 1e6, best_tiled * 1e6, has_small ? best_small * 1e6 : -1.0, \
               diff);                                                                     \
        free(a); free(b); free(c1); free(c2);                                             \
    }
BENCH(float, f32)
BENCH(double, f64)

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    /* (trans_a, trans_b, m, n, k): the digits network 64-25-15-10 at batch 32 (forward
     * x W, weight gradient x^T dz, input gradient dz W^T) and a few wider layers */
    static const int shapes[][5] = {
        {0, 0, 32, 25, 64}, {0, 0, 32, 15, 25}, {0, 0, 32, 10, 15},
        {1, 0, 64, 25, 32}, {1, 0, 25, 15, 32}, {1, 0, 15, 10, 32},
        {0, 1, 32, 25, 15}, {0, 1, 32, 15, 10}, {0, 1, 1, 15, 10},
        {0, 1, 32, 64, 64}, {0, 1, 128, 32, 32}, {0, 0, 32, 64, 64}, {0, 0, 256, 64, 64},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *p = shapes[s];
        bench_f32(p[0], p[1], p[2], p[3], p[4], rounds);
        bench_f64(p[0], p[1], p[2], p[3], p[4], rounds);
    }
    return 0;
}
