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

FNN_DEFINE_ADAM(float, f32, sqrtf)
FNN_DEFINE_ADAM(double, f64, sqrt)
FNN_DEFINE_SGD(float, f32)
FNN_DEFINE_SGD(double, f64)

#endif /* FNN_OPTIM_H */
