# The engine's Dropout layer (inverted dropout): in training a = x * mask / (1 - rate),
# mask[i] = 1 with probability 1 - rate; the identity at inference.  No parameters.
# Workspace: z holds the mask for the backward pass.  Masks come from the counter-based
# generator keyed on (seed, step, layer, element), or on (layer seed, step, element) for
# a Dropout given its own seed.
from cython cimport floating
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from fastnn._kernels._csrc cimport fnn_uniform
from fastnn._kernels._layer cimport (LOGITS_NONE, Layer, LayerNeeds, Pass, elementwise_needs,
                                     require_same_width)


cdef inline int dropout_read(dict spec, Layer* lay) except -1:
    require_same_width(lay, "dropout")
    lay.rate = spec.get("rate", 0.0)
    layer_seed = spec.get("seed")
    lay.has_seed = layer_seed is not None
    lay.seed = 0
    if lay.has_seed:
        if not isinstance(layer_seed, int) or not 0 <= layer_seed < 2 ** 64:
            raise ValueError("Engine: a layer seed is a Dropout's int in [0, 2**64)")
        lay.seed = layer_seed
    return 0


cdef inline void dropout_needs(const Layer* lay, LayerNeeds* needs) noexcept nogil:
    elementwise_needs(lay, needs, lay.n_out, LOGITS_NONE)


cdef inline floating* dropout_forward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                      const floating* x, const floating* params,
                                      const floating* aux, floating* z, floating* a,
                                      floating* s) noexcept nogil:
    cdef Py_ssize_t i, size = n * lay.n_out
    cdef floating keep
    cdef uint64_t key, stream
    if not p.training or lay.rate == 0:
        return <floating*>x     # identity at inference: no copy
    # keep with probability 1 - rate, scale by 1 / (1 - rate); z is the mask
    keep = 1 - <floating>lay.rate
    # a layer seed (Dropout(seed=...)) replaces the fit's seed, and the stream is then
    # the step alone: the masks do not depend on the global stream, nor on where the
    # layer sits in the stack
    if lay.has_seed:
        key, stream = lay.seed, <uint64_t>p.step
    else:
        key, stream = p.seed, <uint64_t>(p.step * p.n_layers + lay.index)
    for i in range(size):
        z[i] = 1 if fnn_uniform(key, stream, <uint64_t>i) >= lay.rate else 0
    for i in range(size):
        a[i] = x[i] / keep if z[i] != 0 else 0
    return a


cdef inline void dropout_backward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                  const floating* x, const floating* params,
                                  const floating* aux, const floating* z, const floating* a,
                                  floating* s, int act, floating* g, floating* grads,
                                  floating* dx) noexcept nogil:
    cdef Py_ssize_t i, size = n * lay.n_out
    cdef floating keep
    if dx == NULL:
        return
    if p.training and lay.rate != 0:
        keep = 1 - <floating>lay.rate
        for i in range(size):
            dx[i] = g[i] / keep if z[i] != 0 else 0
    else:
        memcpy(dx, g, size * sizeof(floating))
