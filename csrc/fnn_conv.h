/* Max pooling's per-channel steps (fastnn/_kernels/_conv.pxd).
 *
 * One window cell's channels at a time, written as selects on restrict pointers so that
 * gcc vectorises them (Cython's `a if c else b` comes out as a branch, which it did not
 * if-convert; with random data the branch was a coin toss).  The selects compute the
 * very values of the plain loops: the comparison `v > m` keeps the first maximum on ties
 * and never takes a NaN, and an unselected sum is thrown away, never stored. */
#ifndef FNN_CONV_H
#define FNN_CONV_H

#include "fnn_common.h"

#define FNN_POOL_STEPS(T, SUFFIX)                                                        \
    /* out, idx = max(out, x) and its cell, channel by channel (ties keep out) */        \
    static FNN_MAYBE_UNUSED inline void fnn_pool_max_##SUFFIX(                           \
            fnn_index_t c, const T *FNN_RESTRICT x, T *FNN_RESTRICT out,                 \
            T *FNN_RESTRICT idx, T cell) {                                               \
        for (fnn_index_t ch = 0; ch < c; ch++) {                                         \
            /* the comparison twice, not kept in an int: gcc turns that form back     \
             * into a branch (measured: not vectorised) */                             \
            T v = x[ch], m = out[ch], d = idx[ch];                                       \
            T new_m = v > m ? v : m, new_d = v > m ? cell : d;                           \
            out[ch] = new_m;                                                             \
            idx[ch] = new_d;                                                             \
        }                                                                                \
    }                                                                                    \
    /* dx += g where idx == cell, channel by channel */                                 \
    static FNN_MAYBE_UNUSED inline void fnn_pool_route_##SUFFIX(                         \
            fnn_index_t c, const T *FNN_RESTRICT g, const T *FNN_RESTRICT idx,           \
            T *FNN_RESTRICT dx, T cell) {                                                \
        for (fnn_index_t ch = 0; ch < c; ch++) {                                         \
            T old = dx[ch], sum = old + g[ch];                                           \
            dx[ch] = idx[ch] == cell ? sum : old;                                        \
        }                                                                                \
    }

FNN_POOL_STEPS(float, f32)
FNN_POOL_STEPS(double, f64)

#undef FNN_POOL_STEPS

#endif /* FNN_CONV_H */
