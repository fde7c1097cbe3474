/* Shared macros for fastnn's C helpers.
 *
 * Every helper is a static inline function over raw pointers and sizes, with
 * _f32/_f64 suffixes; Cython chooses the suffix from its fused type. */
#ifndef FNN_COMMON_H
#define FNN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define FNN_RESTRICT __restrict__
#define FNN_INLINE inline __attribute__((always_inline))
#define FNN_MAYBE_UNUSED __attribute__((unused)) /* not every extension calls every helper */
#else
#define FNN_RESTRICT
#define FNN_INLINE inline
#define FNN_MAYBE_UNUSED
#endif

typedef ptrdiff_t fnn_index_t;

/* Runtime ISA dispatch for the hot element loops.  Distributed builds target baseline
 * x86-64 (SSE2), but vector division and sqrt in Adam, exp in the softmax and the small
 * GEMM tiles run 2-4x faster with 256/512-bit vectors.  A function marked FNN_CLONES is
 * compiled for AVX-512, AVX2 and the baseline, and the dynamic loader picks the best one
 * for the CPU (a GNU ifunc).  Elsewhere it is compiled once for the baseline.  The build
 * uses -ffp-contract=off, so every clone rounds exactly like the baseline: the results do
 * not depend on the CPU.  The one exception is csrc/fnn_small.h: its float32 training
 * GEMMs use FMA on purpose (explicit intrinsics, its own run-time choice), so those
 * products have the same bits on every CPU with FMA (AVX2 or AVX-512) and other last bits
 * where the CPU has none and BLAS or the tile computes them. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) \
    && __GNUC__ >= 8 && !defined(FNN_NO_CLONES)
#define FNN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FNN_CLONES
#endif

/* Flush-to-zero / denormals-are-zero for the training loop.  About 2% of Adam's
 * second moments become denormal floats, and each denormal operation costs
 * ~100 cycles on x86; flushing them changes results only below 1e-38.  The
 * previous control word is returned so the caller can restore it on exit. */
#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
static inline unsigned int fnn_denormals_off(void) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return old;
}
static inline void fnn_denormals_restore(unsigned int old) { _mm_setcsr(old); }
/* The calling thread's SSE control/status word, to hand to OpenMP workers. */
static inline unsigned int fnn_fp_mode_get(void) { return _mm_getcsr(); }
/* Run this thread in `mode`'s control bits (FTZ, DAZ, rounding, exception masks) and
 * keep its own status flags; returns the previous word for fnn_denormals_restore.
 * A worker thread otherwise keeps whatever mode it had when it was created (POSIX
 * threads inherit their creator's mode), so flushing would depend on which call
 * happened to start the OpenMP pool. */
static inline unsigned int fnn_fp_mode_swap(unsigned int mode) {
    unsigned int old = _mm_getcsr();
    _mm_setcsr((mode & ~0x3Fu) | (old & 0x3Fu));
    return old;
}
#else
static inline unsigned int fnn_denormals_off(void) { return 0u; }
static inline void fnn_denormals_restore(unsigned int old) { (void)old; }
static inline unsigned int fnn_fp_mode_get(void) { return 0u; }
static inline unsigned int fnn_fp_mode_swap(unsigned int mode) { (void)mode; return 0u; }
#endif

#endif /* FNN_COMMON_H */
