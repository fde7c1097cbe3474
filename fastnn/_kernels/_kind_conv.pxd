# The engine's Conv1D / Conv2D layer: z = im2col(x) @ W + b, a = act(z) over every window
# (a 1-D layer is the 2-D case with h = kh = 1).  Parameters: the kernel (kh*kw*c, f) in
# Keras's order at w_off, the bias (f,) at b_off (b_off < 0: none).  Workspace: z (the
# pre-activation; a itself when linear) and a scratch block of the im2col columns,
# oh*ow*kh*kw*c elements per row.  The math is in _conv.pxd; read_geometry also serves
# max pooling.
from cython cimport floating
from libc.limits cimport INT_MAX

from fastnn._kernels._act cimport ACT_LINEAR
from fastnn._kernels._blas cimport GEMM_AUTO, GEMM_ROWS
from fastnn._kernels._conv cimport (conv_backward_core, conv_forward_core, conv_patch,
                                    conv_positions)
from fastnn._kernels._layer cimport (LAYER_MAXPOOL, LOGITS_Z, Layer, LayerNeeds, Pass,
                                     read_params, read_penalty)


cdef inline int read_geometry(dict spec, Layer* lay) except -1:
    """Conv / MaxPool: the window geometry ("geom", fastnn._kernels._shapes.geometry's
    tuple), checked against the layer's widths and recomputed from "padding"."""
    from fastnn._kernels._shapes import geometry
    if "geom" not in spec or "padding" not in spec:
        raise ValueError("Engine: a conv or maxpool layer needs 'geom' and 'padding'")
    g = tuple(spec["geom"])
    # a plain loop: Cython cannot compile a generator expression in a .pxd function
    if len(g) != 12:
        raise ValueError(f"Engine: bad window geometry {g!r}")
    for v in g:
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"Engine: bad window geometry {g!r}")
    h, w, c, kh, kw, sh, sw, pt, pl, oh, ow, f = g
    if min(h, w, c, kh, kw, sh, sw, f) < 1:
        raise ValueError(f"Engine: bad window geometry {g!r}")
    if geometry((h, w, c), (kh, kw), (sh, sw), spec.get("padding"), f) != g:
        raise ValueError(f"Engine: window geometry {g!r} does not follow padding="
                         f"{spec.get('padding')!r}")
    if lay.kind == LAYER_MAXPOOL and f != c:
        raise ValueError("Engine: a pooling layer keeps its channels")
    if lay.n_in != h * w * c or lay.n_out != oh * ow * f:
        raise ValueError("Engine: window geometry does not match the layer's widths")
    if kh * kw * c > INT_MAX or oh * ow > INT_MAX:
        raise ValueError("Engine: window sizes must fit BLAS's 32-bit sizes")
    lay.geom.h, lay.geom.w, lay.geom.c, lay.geom.kh, lay.geom.kw = h, w, c, kh, kw
    lay.geom.sh, lay.geom.sw, lay.geom.pt, lay.geom.pl = sh, sw, pt, pl
    lay.geom.oh, lay.geom.ow, lay.geom.f = oh, ow, f
    return 0


cdef inline int conv_read(dict spec, Layer* lay, Py_ssize_t n_params) except -1:
    read_geometry(spec, lay)
    lay.alpha = spec.get("alpha", 0.0)
    read_penalty(spec, lay)
    read_params(spec, lay, conv_patch(&lay.geom) * lay.geom.f, lay.geom.f, n_params)
    return 0


cdef inline void conv_needs(const Layer* lay, LayerNeeds* needs) noexcept nogil:
    needs.kernel, needs.bias = conv_patch(&lay.geom) * lay.geom.f, lay.geom.f
    needs.z, needs.a_is_z = lay.n_out, lay.act == ACT_LINEAR
    needs.scratch = conv_positions(&lay.geom) * conv_patch(&lay.geom)
    needs.gemm_rows = conv_positions(&lay.geom)
    needs.row_work = lay.n_out * conv_patch(&lay.geom)
    needs.logits = LOGITS_Z


cdef inline floating* conv_forward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                   const floating* x, const floating* params,
                                   const floating* aux, floating* z, floating* a,
                                   floating* s) noexcept nogil:
    # inference takes the row-exact product, as Dense does
    conv_forward_core(n, &lay.geom, x, params + lay.w_off,
                      params + lay.b_off if lay.b_off >= 0 else NULL, lay.act,
                      <floating>lay.alpha, s, z, a, GEMM_AUTO if p.training else GEMM_ROWS)
    return a


cdef inline void conv_backward(const Layer* lay, const Pass* p, Py_ssize_t n,
                               const floating* x, const floating* params,
                               const floating* aux, const floating* z, const floating* a,
                               floating* s, int act, floating* g, floating* grads,
                               floating* dx) noexcept nogil:
    # The engine runs a backward pass only right after the training forward pass of the
    # same batch (engine._train_batches), which left im2col(x) in this layer's own
    # scratch block `s` (nothing else writes it): no second im2col.
    conv_backward_core(n, &lay.geom, x, params + lay.w_off,
                       params + lay.b_off if lay.b_off >= 0 else NULL, z, a, act,
                       <floating>lay.alpha, &lay.pen, g, s, grads + lay.w_off,
                       grads + lay.b_off if lay.b_off >= 0 else NULL, dx, True)
