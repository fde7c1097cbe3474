/* BLAS gemm entry points, filled in at first use.
 *
 * The kernels call an OpenBLAS (the scipy-openblas32 wheel's, or scipy's through
 * scipy.linalg.cython_blas: fastnn/_kernels/_blas_import.py), but a `cimport` of scipy's
 * would make importing any kernel module import scipy.linalg (~0.3 s) or require inserting
 * the extension into sys.modules by hand.  Instead each extension module that calls gemm
 * keeps these two pointers (static: one copy per module) and fills them the first time a
 * kernel entry point needs them (_blas.pxd: ensure_blas).  The signatures are the Fortran
 * BLAS ones (every argument by pointer, 32-bit integers).
 */
#ifndef FNN_BLAS_H
#define FNN_BLAS_H

#include <stdio.h>
#include <stdlib.h>

typedef void (*fnn_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                             float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                             int *ldc);
typedef void (*fnn_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                             double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                             int *ldc);

/* Until they are filled the pointers hold these stubs, so that a kernel entry point that
 * forgot ensure_blas() fails with a message instead of jumping to address 0. */
static void fnn_blas_missing(void) {
    fputs("fastnn: BLAS called before ensure_blas() (a kernel entry point lacks it)\n", stderr);
    abort();
}
static void fnn_sgemm_missing(char *ta, char *tb, int *m, int *n, int *k, float *alpha,
                              float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                              int *ldc) {
    fnn_blas_missing();
}
static void fnn_dgemm_missing(char *ta, char *tb, int *m, int *n, int *k, double *alpha,
                              double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                              int *ldc) {
    fnn_blas_missing();
}

static fnn_sgemm_fn fnn_sgemm = fnn_sgemm_missing;
static fnn_dgemm_fn fnn_dgemm = fnn_dgemm_missing;

static inline int fnn_blas_ready(void) {
    return fnn_sgemm != fnn_sgemm_missing && fnn_dgemm != fnn_dgemm_missing;
}

static inline void fnn_blas_set(void *sgemm, void *dgemm) {
    if (sgemm == 0 || dgemm == 0) return; /* keep the stubs: ensure_blas raises */
    fnn_sgemm = (fnn_sgemm_fn)sgemm;
    fnn_dgemm = (fnn_dgemm_fn)dgemm;
}

#endif /* FNN_BLAS_H */
