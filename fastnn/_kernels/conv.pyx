"""Convolution and max-pooling kernels, float32 and float64, channels last.

Contract: x is (n, h, w, c) and a kernel (kh, kw, c, filters), Keras's layouts (a 1-D
layer passes h = kh = 1); every array is C-contiguous; outputs and scratch are
caller-owned; the GIL is released for the whole computation.

Design: a convolution is Dense over windows.  im2col copies each output position's
window into one row of `cols` ((n*oh*ow, kh*kw*c), the kernel's own row order), and
then the Dense cores do the rest: one GEMM with the kernel seen as a (kh*kw*c, filters)
matrix, the bias and the activation; backward, dW = cols^T dz is one GEMM and
dX = col2im(dz W^T) one GEMM plus the scatter back onto the input.  The output rows
(n*oh*ow, filters) are already the channels-last (n, oh, ow, filters) layout, so no
transposition is needed anywhere.  Max pooling records the window position of each
maximum (first one on ties, as TensorFlow and torch) for its backward pass.
"""
from cython cimport floating

from fastnn._kernels._act cimport ACT_COUNT
from fastnn._kernels._blas cimport GEMM_AUTO, ensure_blas
from fastnn._kernels._conv cimport (ConvGeom, conv_backward_core, conv_forward_core,
                                    maxpool_backward_core, maxpool_forward_core)
from fastnn._kernels._dense cimport Penalty, blas_dims_fit
from fastnn._kernels._shapes import geometry


cdef ConvGeom _geom(tuple t):
    cdef ConvGeom g
    g.h, g.w, g.c, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.oh, g.ow, g.f = t
    return g


def _check_out(name, arr, shape):
    if arr is None or tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got "
                         f"{None if arr is None else tuple(arr.shape)}")


def _conv_geometry(x, w, strides, padding):
    if w.shape[2] != x.shape[3]:
        raise ValueError(f"kernel has {w.shape[2]} input channels, x has {x.shape[3]}")
    return geometry(tuple(x.shape[1:4]), tuple(w.shape[:2]), tuple(strides), padding,
                    w.shape[3])


def conv_forward(const floating[:, :, :, ::1] x not None,
                 const floating[:, :, :, ::1] w not None, const floating[::1] b,
                 strides, padding, int activation, double alpha,
                 floating[:, ::1] cols_out not None, floating[:, :, :, ::1] z_out not None,
                 floating[:, :, :, ::1] a_out not None):
    """z_out = im2col(x) @ w + b, a_out = act(z_out); cols_out receives the windows."""
    cdef ConvGeom g = _geom(_conv_geometry(x, w, strides, padding))
    cdef Py_ssize_t n = x.shape[0]
    if activation < 0 or activation >= ACT_COUNT:
        raise ValueError(f"unknown activation code {activation}")
    if b is not None and b.shape[0] != g.f:
        raise ValueError("conv_forward: b must have one entry per filter")
    _check_out("cols_out", cols_out, (n * g.oh * g.ow, g.kh * g.kw * g.c))
    _check_out("z_out", z_out, (n, g.oh, g.ow, g.f))
    _check_out("a_out", a_out, (n, g.oh, g.ow, g.f))
    if n == 0 or not blas_dims_fit(n * g.oh * g.ow, g.kh * g.kw * g.c, g.f):
        raise ValueError("conv_forward: empty batch or sizes beyond BLAS's 32-bit ints")
    ensure_blas()
    with nogil:
        conv_forward_core(n, &g, &x[0, 0, 0, 0], &w[0, 0, 0, 0],
                          &b[0] if b is not None else NULL, activation, <floating>alpha,
                          &cols_out[0, 0], &z_out[0, 0, 0, 0], &a_out[0, 0, 0, 0],
                          GEMM_AUTO)


def conv_backward(const floating[:, :, :, ::1] x not None,
                  const floating[:, :, :, ::1] w not None, const floating[::1] b,
                  const floating[:, :, :, ::1] z not None,
                  const floating[:, :, :, ::1] a not None,
                  const floating[:, :, :, ::1] da not None, strides, padding,
                  int activation, double alpha, double l2,
                  floating[:, :, :, ::1] dz_out not None,
                  floating[:, :, :, ::1] dw_out not None, floating[::1] db_out,
                  floating[:, :, :, ::1] dx_out, floating[:, ::1] cols_out not None):
    """dz_out = da * act'(z); dw_out = im2col(x)^T dz + 2 l2 w; db_out = sums of dz over
    (n, oh, ow) (skipped when None); dx_out = col2im(dz w^T) (skipped when None).
    cols_out is scratch ((n*oh*ow, kh*kw*c), overwritten)."""
    cdef ConvGeom g = _geom(_conv_geometry(x, w, strides, padding))
    cdef Py_ssize_t n = x.shape[0], i
    cdef Penalty pen
    if activation < 0 or activation >= ACT_COUNT:
        raise ValueError(f"unknown activation code {activation}")
    out_shape = (n, g.oh, g.ow, g.f)
    _check_out("z", z, out_shape)
    _check_out("a", a, out_shape)
    _check_out("da", da, out_shape)
    _check_out("dz_out", dz_out, out_shape)
    _check_out("dw_out", dw_out, (w.shape[0], w.shape[1], w.shape[2], w.shape[3]))
    _check_out("cols_out", cols_out, (n * g.oh * g.ow, g.kh * g.kw * g.c))
    if db_out is not None:
        _check_out("db_out", db_out, (g.f,))
    if dx_out is not None:
        _check_out("dx_out", dx_out, (x.shape[0], x.shape[1], x.shape[2], x.shape[3]))
    if b is not None and b.shape[0] != g.f:
        raise ValueError("conv_backward: b must have one entry per filter")
    if n == 0 or not blas_dims_fit(n * g.oh * g.ow, g.kh * g.kw * g.c, g.f):
        raise ValueError("conv_backward: empty batch or sizes beyond BLAS's 32-bit ints")
    pen.l1, pen.l2, pen.bias_l1, pen.bias_l2 = 0, l2, 0, 0
    ensure_blas()
    with nogil:
        for i in range(n * g.oh * g.ow * g.f):
            (&dz_out[0, 0, 0, 0])[i] = (&da[0, 0, 0, 0])[i]
        conv_backward_core(n, &g, &x[0, 0, 0, 0], &w[0, 0, 0, 0],
                           &b[0] if b is not None else NULL, &z[0, 0, 0, 0], &a[0, 0, 0, 0],
                           activation, <floating>alpha, &pen, &dz_out[0, 0, 0, 0],
                           &cols_out[0, 0], &dw_out[0, 0, 0, 0],
                           &db_out[0] if db_out is not None else NULL,
                           &dx_out[0, 0, 0, 0] if dx_out is not None else NULL)


def maxpool_forward(const floating[:, :, :, ::1] x not None, pool_size, strides, padding,
                    floating[:, :, :, ::1] out not None, floating[:, :, :, ::1] idx_out not None):
    """out = window maxima of x; idx_out = window position (i * pool_w + j) of each."""
    cdef ConvGeom g = _geom(geometry((x.shape[1], x.shape[2], x.shape[3]), tuple(pool_size),
                                     tuple(strides), padding, x.shape[3]))
    cdef Py_ssize_t n = x.shape[0]
    _check_out("out", out, (n, g.oh, g.ow, g.c))
    _check_out("idx_out", idx_out, (n, g.oh, g.ow, g.c))
    with nogil:
        maxpool_forward_core(n, &g, &x[0, 0, 0, 0], &out[0, 0, 0, 0], &idx_out[0, 0, 0, 0])


def maxpool_backward(const floating[:, :, :, ::1] dout not None,
                     const floating[:, :, :, ::1] idx not None, pool_size, strides, padding,
                     floating[:, :, :, ::1] dx_out not None):
    """dx_out = dout routed to the recorded maxima (dx_out has the input's shape)."""
    cdef ConvGeom g = _geom(geometry((dx_out.shape[1], dx_out.shape[2], dx_out.shape[3]),
                                     tuple(pool_size), tuple(strides), padding,
                                     dx_out.shape[3]))
    cdef Py_ssize_t n = dx_out.shape[0]
    _check_out("dout", dout, (n, g.oh, g.ow, g.c))
    _check_out("idx", idx, (n, g.oh, g.ow, g.c))
    with nogil:
        maxpool_backward_core(n, &g, &dout[0, 0, 0, 0], &idx[0, 0, 0, 0], &dx_out[0, 0, 0, 0])
