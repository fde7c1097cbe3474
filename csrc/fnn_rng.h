/* Counter-based random numbers for dropout masks.
 *
 * u(seed, stream, index) is a pure function, so a mask does not depend on the
 * order in which elements or threads are visited, and a given seed reproduces
 * the same masks on every build.  The mixer is SplitMix64's finaliser, applied
 * to a key that combines the per-fit seed, a per-(step, layer) stream id and
 * the element index. */
#ifndef FNN_RNG_H
#define FNN_RNG_H

#include "fnn_common.h"

static FNN_INLINE uint64_t fnn_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform double in [0, 1) with 53 random bits. */
static FNN_INLINE double fnn_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t key = fnn_mix64(seed ^ (stream * 0x9e3779b97f4a7c15ULL));
    uint64_t bits = fnn_mix64(key + index * 0x9e3779b97f4a7c15ULL);
    return (double)(bits >> 11) * (1.0 / 9007199254740992.0);
}

#endif /* FNN_RNG_H */
