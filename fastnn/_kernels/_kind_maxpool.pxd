# The engine's MaxPooling1D / MaxPooling2D layer: a = the maximum over each window (per
# channel).  No parameters.  Workspace: z holds each maximum's window position (argmax)
# for the backward pass.  The math is in _conv.pxd.
from cython cimport floating

from fastnn._kernels._conv cimport maxpool_backward_core, maxpool_forward_core
from fastnn._kernels._kind_conv cimport read_geometry
from fastnn._kernels._layer cimport (LOGITS_NONE, Layer, LayerNeeds, Pass,
                                     elementwise_needs)


cdef inline int maxpool_read(dict spec, Layer* lay) except -1:
    read_geometry(spec, lay)
    return 0


cdef inline void maxpool_needs(const Layer* lay, LayerNeeds* needs) noexcept nogil:
    elementwise_needs(lay, needs, lay.n_out, LOGITS_NONE)     # z: the argmax
    needs.row_work = lay.n_out * lay.geom.kh * lay.geom.kw


cdef inline floating* maxpool_forward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                      const floating* x, const floating* params,
                                      const floating* aux, floating* z, floating* a,
                                      floating* s) noexcept nogil:
    maxpool_forward_core(n, &lay.geom, x, a, z)
    return a


cdef inline void maxpool_backward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                  const floating* x, const floating* params,
                                  const floating* aux, const floating* z, const floating* a,
                                  floating* s, int act, floating* g, floating* grads,
                                  floating* dx) noexcept nogil:
    if dx != NULL:
        maxpool_backward_core(n, &lay.geom, g, z, dx)
