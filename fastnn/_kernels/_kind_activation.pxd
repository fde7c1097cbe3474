# The engine's activation layer (Activation, ReLU, LeakyReLU, Softmax): a = act(x).  No
# parameters and no workspace of its own; a fused loss reads its input as the logits.
from cython cimport floating
from libc.string cimport memcpy

from fastnn._kernels._act cimport activation_block, activation_grad
from fastnn._kernels._layer cimport (LOGITS_INPUT, Layer, LayerNeeds, Pass, elementwise_needs,
                                     require_same_width)


cdef inline int activation_read(dict spec, Layer* lay) except -1:
    require_same_width(lay, "activation")
    lay.alpha = spec.get("alpha", 0.0)
    return 0


cdef inline void activation_needs(const Layer* lay, LayerNeeds* needs) noexcept nogil:
    elementwise_needs(lay, needs, 0, LOGITS_INPUT)


cdef inline floating* activation_forward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                         const floating* x, const floating* params,
                                         const floating* aux, floating* z, floating* a,
                                         floating* s) noexcept nogil:
    activation_block(n, lay.n_out, x, lay.act, <floating>lay.alpha, a)
    return a


cdef inline void activation_backward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                     const floating* x, const floating* params,
                                     const floating* aux, const floating* z,
                                     const floating* a, floating* s, int act, floating* g,
                                     floating* grads, floating* dx) noexcept nogil:
    if dx == NULL:
        return
    # dx = g * act'(input); softmax: dx = a * (g - rowsum(g * a))
    memcpy(dx, g, n * lay.n_out * sizeof(floating))
    activation_grad(n, lay.n_out, x, a, act, <floating>lay.alpha, dx)
