# The engine's Normalization layer: a = (x - mean) / std per feature, with mean at aux_off
# and std at aux_off + n_out in the non-trainable statistics (aux).  No parameters and no
# workspace of its own.
from cython cimport floating

from fastnn._kernels._layer cimport (LOGITS_NONE, Layer, LayerNeeds, Pass, elementwise_needs,
                                     require_same_width)


cdef inline int normalization_read(dict spec, Layer* lay, Py_ssize_t n_aux) except -1:
    require_same_width(lay, "normalization")
    lay.aux_off = spec.get("aux_off", 0)
    if lay.aux_off < 0 or lay.aux_off + 2 * lay.n_out > n_aux:
        raise ValueError("Engine: statistics offsets out of range")
    return 0


cdef inline void normalization_needs(const Layer* lay, LayerNeeds* needs) noexcept nogil:
    elementwise_needs(lay, needs, 0, LOGITS_NONE)


cdef inline floating* normalization_forward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                            const floating* x, const floating* params,
                                            const floating* aux, floating* z, floating* a,
                                            floating* s) noexcept nogil:
    cdef Py_ssize_t i, j, m = lay.n_out
    cdef const floating* mean = aux + lay.aux_off
    cdef const floating* std = aux + lay.aux_off + m
    for i in range(n):
        for j in range(m):
            a[i * m + j] = (x[i * m + j] - mean[j]) / std[j]
    return a


cdef inline void normalization_backward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                        const floating* x, const floating* params,
                                        const floating* aux, const floating* z,
                                        const floating* a, floating* s, int act,
                                        floating* g, floating* grads,
                                        floating* dx) noexcept nogil:
    cdef Py_ssize_t i, j, m = lay.n_out
    cdef const floating* std = aux + lay.aux_off + m
    if dx == NULL:
        return
    for i in range(n):
        for j in range(m):
            dx[i * m + j] = g[i * m + j] / std[j]
