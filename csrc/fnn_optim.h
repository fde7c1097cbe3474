/* Optimizer element loops over flat parameter buffers (Keras 3 update rules).
 *
 * One pass over each buffer; restrict pointers let gcc vectorise, building with
 * -fno-math-errno lets it use the vector sqrt (results are unchanged), and FNN_CLONES
 * picks 512/256-bit vectors at run time where the CPU has them.
 * The callers split [0, n) into chunks for OpenMP; every element is independent,
 * so the result does not depend on the thread count. */
#ifndef FNN_OPTIM_H
#define FNN_OPTIM_H

#include <math.h>
#include "fnn_common.h"

/* Adam (Keras): m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
 *               w -= alpha * m / (sqrt(v) + eps),  alpha = lr sqrt(1 - b2^t) / (1 - b1^t). */
#define FNN_DEFINE_ADAM(T, SUF, SQRT)                                              \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_adam_update_##SUF(                                  \
        fnn_index_t n, T *FNN_RESTRICT w, const T *FNN_RESTRICT g,                 \
        T *FNN_RESTRICT m, T *FNN_RESTRICT v, T alpha, T one_minus_b1,             \
        T one_minus_b2, T eps) {                                                   \
        for (fnn_index_t i = 0; i < n; i++) {                                      \
            T gi = g[i];                                                           \
            T mi = m[i] + (gi - m[i]) * one_minus_b1;                              \
            T vi = v[i] + (gi * gi - v[i]) * one_minus_b2;                         \
            m[i] = mi;                                                             \
            v[i] = vi;                                                             \
            w[i] -= (mi * alpha) / (SQRT(vi) + eps);                               \
        }                                                                          \
    }

/* SGD (Keras): plain w -= lr g; with momentum u = mu u - lr g and then
 * w += u (classical) or w += mu u - lr g (Nesterov). */
#define FNN_DEFINE_SGD(T, SUF)                                                     \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_sgd_update_##SUF(                                   \
        fnn_index_t n, T *FNN_RESTRICT w, const T *FNN_RESTRICT g,                 \
        T *FNN_RESTRICT u, T lr, T momentum, int nesterov) {                       \
        if (momentum == (T)0) {                                                    \
            for (fnn_index_t i = 0; i < n; i++) w[i] -= lr * g[i];                 \
        } else if (nesterov) {                                                     \
            for (fnn_index_t i = 0; i < n; i++) {                                  \
                T ui = -g[i] * lr + u[i] * momentum;                               \
                u[i] = ui;                                                         \
                w[i] += -g[i] * lr + ui * momentum;                                \
            }                                                                      \
        } else {                                                                   \
            for (fnn_index_t i = 0; i < n; i++) {                                  \
                T ui = -g[i] * lr + u[i] * momentum;                               \
                u[i] = ui;                                                         \
                w[i] += ui;                                                        \
            }                                                                      \
        }                                                                          \
    }

/* AdamW (Keras): decoupled weight decay w *= keep (keep = 1 - wd lr) before the Adam
 * step; the product is rounded to T before the step is subtracted, as in two passes. */
#define FNN_DEFINE_ADAMW(T, SUF, SQRT)                                             \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_adamw_update_##SUF(                \
        fnn_index_t n, T *FNN_RESTRICT w, const T *FNN_RESTRICT g,                 \
        T *FNN_RESTRICT m, T *FNN_RESTRICT v, T alpha, T one_minus_b1,             \
        T one_minus_b2, T eps, T keep) {                                           \
        for (fnn_index_t i = 0; i < n; i++) {                                      \
            T gi = g[i];                                                           \
            T mi = m[i] + (gi - m[i]) * one_minus_b1;                              \
            T vi = v[i] + (gi * gi - v[i]) * one_minus_b2;                         \
            T wi = w[i] * keep;                                                    \
            m[i] = mi;                                                             \
            v[i] = vi;                                                             \
            w[i] = wi - (mi * alpha) / (SQRT(vi) + eps);                           \
        }                                                                          \
    }

/* RMSprop (Keras): v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g and
 * d = sqrt(v + eps - a^2), else d = sqrt(v + eps); step = lr g / d; with momentum
 * u = momentum u + step and w -= u, else w -= step.  u and a may be NULL when unused;
 * the flags are loop-invariant, so gcc unswitches the loop. */
#define FNN_DEFINE_RMSPROP(T, SUF, SQRT)                                           \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_rmsprop_update_##SUF(              \
        fnn_index_t n, T *FNN_RESTRICT w, const T *FNN_RESTRICT g,                 \
        T *FNN_RESTRICT v, T *FNN_RESTRICT u, T *FNN_RESTRICT a, T lr, T rho,      \
        T one_minus_rho, T momentum, T eps, int centered, int use_momentum) {      \
        for (fnn_index_t i = 0; i < n; i++) {                                      \
            T gi = g[i];                                                           \
            T vi = v[i] * rho + (gi * gi) * one_minus_rho;                         \
            T d = vi + eps;                                                        \
            v[i] = vi;                                                             \
            if (centered) {                                                        \
                T ai = a[i] * rho + gi * one_minus_rho;                            \
                a[i] = ai;                                                         \
                d = d - ai * ai;                                                   \
            }                                                                      \
            T step = (gi * lr) / SQRT(d);                                          \
            if (use_momentum) {                                                    \
                T ui = u[i] * momentum + step;                                     \
                u[i] = ui;                                                         \
                w[i] -= ui;                                                        \
            } else {                                                               \
                w[i] -= step;                                                      \
            }                                                                      \
        }                                                                          \
    }

/* Gradient clipping (Keras).  Sum of squares in double with four accumulators in a
 * fixed order: no dependence on vector width, CPU or thread count. */
#define FNN_DEFINE_CLIP(T, SUF)                                                    \
    static FNN_MAYBE_UNUSED double fnn_sumsq_##SUF(fnn_index_t n,                  \
                                                   const T *FNN_RESTRICT x) {      \
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                     \
        fnn_index_t i = 0;                                                         \
        for (; i + 4 <= n; i += 4) {                                               \
            s0 += (double)x[i] * x[i];                                             \
            s1 += (double)x[i + 1] * x[i + 1];                                     \
            s2 += (double)x[i + 2] * x[i + 2];                                     \
            s3 += (double)x[i + 3] * x[i + 3];                                     \
        }                                                                          \
        for (; i < n; i++) s0 += (double)x[i] * x[i];                              \
        return (s0 + s1) + (s2 + s3);                                              \
    }                                                                              \
    /* x = (x * num) / den: Keras's clip by norm, (g * clipnorm) / max(norm, clipnorm) */ \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_mul_div_##SUF(                     \
        fnn_index_t n, T *FNN_RESTRICT x, T num, T den) {                          \
        for (fnn_index_t i = 0; i < n; i++) x[i] = (x[i] * num) / den;             \
    }                                                                              \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_scale_##SUF(                       \
        fnn_index_t n, T *FNN_RESTRICT x, T s) {                                   \
        for (fnn_index_t i = 0; i < n; i++) x[i] *= s;                             \
    }                                                                              \
    /* clamp to [-c, c]; NaN stays NaN (both comparisons are false) */             \
    static FNN_CLONES FNN_MAYBE_UNUSED void fnn_clip_value_##SUF(                  \
        fnn_index_t n, T *FNN_RESTRICT x, T c) {                                   \
        for (fnn_index_t i = 0; i < n; i++) {                                      \
            T xi = x[i];                                                           \
            x[i] = xi < -c ? -c : (xi > c ? c : xi);                               \
        }                                                                          \
    }

FNN_DEFINE_ADAM(float, f32, sqrtf)
FNN_DEFINE_ADAM(double, f64, sqrt)
FNN_DEFINE_SGD(float, f32)
FNN_DEFINE_SGD(double, f64)
FNN_DEFINE_ADAMW(float, f32, sqrtf)
FNN_DEFINE_ADAMW(double, f64, sqrt)
FNN_DEFINE_RMSPROP(float, f32, sqrtf)
FNN_DEFINE_RMSPROP(double, f64, sqrt)
FNN_DEFINE_CLIP(float, f32)
FNN_DEFINE_CLIP(double, f64)

#endif /* FNN_OPTIM_H */
