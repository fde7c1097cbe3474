/* Elementwise math that gcc can vectorise without -ffast-math.
 *
 * libm's expf is an opaque scalar call, so a loop over a softmax block runs one
 * element at a time.  fnn_exp_nonpos_f32 is a branch-free Cephes-style expf for
 * arguments x <= 0 (the only ones fastnn needs: softmax uses exp(z - max z) and
 * sigmoid uses exp(-|z|)).  Range reduction x = n ln2 + r with |r| <= ln2/2,
 * a degree-6 polynomial for exp(r), and 2^n built in the exponent bits.
 * Max error ~1 ulp; arguments below -87.33 (where the result would be denormal)
 * return exactly 0.  float64 keeps libm's exp: parity tests need its accuracy. */
#ifndef FNN_MATH_H
#define FNN_MATH_H

#include <math.h>
#include <string.h>
#include "fnn_common.h"

static FNN_INLINE float fnn_exp_nonpos_f32(float x) {
    const float lo = -87.33654f;
    float xc = x < lo ? lo : x;
    /* round-to-nearest of x*log2(e) with the 1.5*2^23 trick (exact in IEEE) */
    float t = xc * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x < lo ? 0.0f : y;
}

static FNN_INLINE double fnn_exp_nonpos_f64(double x) { return exp(x); }

/* Logistic sigmoid without overflow: e = exp(-|z|) never exceeds 1. */
static FNN_INLINE float fnn_sigmoid_f32(float z) {
    float e = fnn_exp_nonpos_f32(-fabsf(z));
    float num = z >= 0.0f ? 1.0f : e;
    return num / (1.0f + e);
}

static FNN_INLINE double fnn_sigmoid_f64(double z) {
    double e = exp(-fabs(z));
    double num = z >= 0.0 ? 1.0 : e;
    return num / (1.0 + e);
}

#endif /* FNN_MATH_H */
