# The one switch per operation over the engine's layer kinds.  A kind's code lives in its
# own unit (_kind_<name>.pxd: read, needs, forward, backward); adding a kind means one
# unit, one code in _layer.pxd and one branch in each switch below.  Every switch ends in
# an error branch, never a default: read raises, needs and backward return -1, forward
# returns NULL, and the engine turns those into its ERR_LAYER error.  Everything is
# inline, so the training loop pays no call per layer beyond the switch itself.
from cython cimport floating

from fastnn._kernels._kind_activation cimport (activation_backward, activation_forward,
                                               activation_needs, activation_read)
from fastnn._kernels._kind_conv cimport conv_backward, conv_forward, conv_needs, conv_read
from fastnn._kernels._kind_dense cimport (dense_backward, dense_forward, dense_needs,
                                          dense_read)
from fastnn._kernels._kind_dropout cimport (dropout_backward, dropout_forward, dropout_needs,
                                            dropout_read)
from fastnn._kernels._kind_maxpool cimport (maxpool_backward, maxpool_forward,
                                            maxpool_needs, maxpool_read)
from fastnn._kernels._kind_normalization cimport (normalization_backward,
                                                  normalization_forward,
                                                  normalization_needs, normalization_read)
from fastnn._kernels._layer cimport (LAYER_ACTIVATION, LAYER_CONV, LAYER_DENSE,
                                     LAYER_DROPOUT, LAYER_MAXPOOL, LAYER_NORMALIZATION,
                                     Layer, LayerNeeds, Pass)


cdef inline int layer_read(dict spec, Layer* lay, Py_ssize_t n_params,
                           Py_ssize_t n_aux) except -1:
    """The kind's own fields of a layer description into lay (ValueError naming the
    problem); the kind, widths and activation are already read."""
    if lay.kind == LAYER_DENSE:
        return dense_read(spec, lay, n_params)
    elif lay.kind == LAYER_DROPOUT:
        return dropout_read(spec, lay)
    elif lay.kind == LAYER_NORMALIZATION:
        return normalization_read(spec, lay, n_aux)
    elif lay.kind == LAYER_ACTIVATION:
        return activation_read(spec, lay)
    elif lay.kind == LAYER_CONV:
        return conv_read(spec, lay, n_params)
    elif lay.kind == LAYER_MAXPOOL:
        return maxpool_read(spec, lay)
    else:
        raise ValueError(f"Engine: unknown layer kind code {lay.kind}")


cdef inline int layer_needs(const Layer* lay, LayerNeeds* needs) noexcept nogil:
    """Fill needs for lay; -1 for an unknown kind."""
    if lay.kind == LAYER_DENSE:
        dense_needs(lay, needs)
    elif lay.kind == LAYER_DROPOUT:
        dropout_needs(lay, needs)
    elif lay.kind == LAYER_NORMALIZATION:
        normalization_needs(lay, needs)
    elif lay.kind == LAYER_ACTIVATION:
        activation_needs(lay, needs)
    elif lay.kind == LAYER_CONV:
        conv_needs(lay, needs)
    elif lay.kind == LAYER_MAXPOOL:
        maxpool_needs(lay, needs)
    else:
        return -1
    return 0


cdef inline floating* layer_forward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                    const floating* x, const floating* params,
                                    const floating* aux, floating* z, floating* a,
                                    floating* s) noexcept nogil:
    """The layer's output for n rows of x (a, or x itself for an identity); z and s are
    its blocks (see LayerNeeds).  NULL for an unknown kind."""
    if lay.kind == LAYER_DENSE:
        return dense_forward(lay, p, n, x, params, aux, z, a, s)
    elif lay.kind == LAYER_DROPOUT:
        return dropout_forward(lay, p, n, x, params, aux, z, a, s)
    elif lay.kind == LAYER_NORMALIZATION:
        return normalization_forward(lay, p, n, x, params, aux, z, a, s)
    elif lay.kind == LAYER_ACTIVATION:
        return activation_forward(lay, p, n, x, params, aux, z, a, s)
    elif lay.kind == LAYER_CONV:
        return conv_forward(lay, p, n, x, params, aux, z, a, s)
    elif lay.kind == LAYER_MAXPOOL:
        return maxpool_forward(lay, p, n, x, params, aux, z, a, s)
    else:
        return NULL


cdef inline int layer_backward(const Layer* lay, const Pass* p, Py_ssize_t n,
                               const floating* x, const floating* params,
                               const floating* aux, const floating* z, const floating* a,
                               floating* s, int act, floating* g, floating* grads,
                               floating* dx) noexcept nogil:
    """g: dLoss/d(output) in (the kind may overwrite it); parameter gradients into grads
    and, when dx is not NULL, dLoss/dx into dx.  act is the activation whose derivative
    applies (linear when a fused loss already gave dLoss/dlogits).  -1 for an unknown
    kind."""
    if lay.kind == LAYER_DENSE:
        dense_backward(lay, p, n, x, params, aux, z, a, s, act, g, grads, dx)
    elif lay.kind == LAYER_DROPOUT:
        dropout_backward(lay, p, n, x, params, aux, z, a, s, act, g, grads, dx)
    elif lay.kind == LAYER_NORMALIZATION:
        normalization_backward(lay, p, n, x, params, aux, z, a, s, act, g, grads, dx)
    elif lay.kind == LAYER_ACTIVATION:
        activation_backward(lay, p, n, x, params, aux, z, a, s, act, g, grads, dx)
    elif lay.kind == LAYER_CONV:
        conv_backward(lay, p, n, x, params, aux, z, a, s, act, g, grads, dx)
    elif lay.kind == LAYER_MAXPOOL:
        maxpool_backward(lay, p, n, x, params, aux, z, a, s, act, g, grads, dx)
    else:
        return -1
    return 0
