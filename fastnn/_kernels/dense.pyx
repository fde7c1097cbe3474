"""Dense-layer kernels, float32 and float64.

Contract: arrays are C-contiguous and validated by fastnn._validation; outputs
are written into caller-owned buffers; the GIL is released for the whole
computation.  Activations are given by code (ACTIVATIONS maps names to codes).

Design: the forward pass is one GEMM into z followed by one pass over the block
that adds the bias and applies the activation (written to a, which may be z
itself for the identity).  The backward pass keeps the pre-activation z and the
output a, so each derivative is read from whichever is cheaper (sigmoid' from a,
relu' from z), and multiplies it into the incoming gradient in the same pass.
"""
from cython cimport floating
from libc.string cimport memcpy

from fastnn._kernels._act cimport (ACT_COUNT, ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH,
                                   ACT_LEAKY_RELU, ACT_SWISH, ACT_SOFTMAX, activation_block)
from fastnn._kernels._blas cimport (GEMM_AUTO, GEMM_BLAS, GEMM_ROWS, GEMM_SMALL, GEMM_TILED,
                                    ensure_blas, gemm_rowmajor)
from fastnn._kernels._csrc cimport fnn_gemm_rows_fused, fnn_small_force_isa, fnn_small_isa
from fastnn._kernels._dense cimport (Penalty, blas_dims_fit, dense_backward_core,
                                     dense_forward_core)

GEMM_METHODS = {"auto": GEMM_AUTO, "blas": GEMM_BLAS, "tiled": GEMM_TILED, "rows": GEMM_ROWS,
                "small": GEMM_SMALL}
# True when the row-exact kernel ("rows", all inference) sums each term with one FMA on
# this CPU (AVX-512 with FMA), False when with a rounded product and a rounded sum
# (csrc/fnn_gemm_rows.h): the same on every path of one machine, not across machines.
ROWS_FUSED = bool(fnn_gemm_rows_fused())


def small_isa(level=None):
    """The instruction set of csrc/fnn_small.h's float32 kernels in this module: 0 (none:
    BLAS and the tile instead), 1 (AVX2 + FMA) or 2 (AVX-512).  ``level`` caps it (tests run
    the AVX2 body on an AVX-512 CPU); -1 restores detection."""
    if level is not None:
        fnn_small_force_isa(level)
    return fnn_small_isa()

ACTIVATIONS = {"linear": ACT_LINEAR, "relu": ACT_RELU, "sigmoid": ACT_SIGMOID,
               "tanh": ACT_TANH, "leaky_relu": ACT_LEAKY_RELU, "swish": ACT_SWISH,
               "softmax": ACT_SOFTMAX}


def _load_blas():
    """Look up BLAS for this module now (otherwise done by the first call that needs it)."""
    ensure_blas()


def _check_activation(int activation):
    if activation < 0 or activation >= ACT_COUNT:
        raise ValueError(f"unknown activation code {activation}")


def _check_blas_dims(str what, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c):
    # BLAS takes 32-bit ints: each dimension must fit (their products need not)
    if not blas_dims_fit(a, b, c):
        raise ValueError(f"{what}: a dimension of ({a}, {b}, {c}) exceeds BLAS's 32-bit "
                         "integer sizes")


def activation_forward(const floating[:, ::1] z not None, int activation, double alpha,
                       floating[:, ::1] a_out not None):
    """a_out = act(z) (softmax over rows); shapes (n, m)."""
    cdef Py_ssize_t n = z.shape[0], m = z.shape[1]
    _check_activation(activation)
    if a_out.shape[0] != n or a_out.shape[1] != m:
        raise ValueError("activation_forward: z and a_out must have the same shape")
    if n == 0 or m == 0:
        return
    with nogil:
        activation_block(n, m, &z[0, 0], activation, <floating>alpha, &a_out[0, 0])


def dense_forward(const floating[:, ::1] x not None, const floating[:, ::1] w not None,
                  const floating[::1] b, int activation, double alpha,
                  floating[:, ::1] z_out not None, floating[:, ::1] a_out not None):
    """z_out = x @ w + b; a_out = act(z_out); shapes (n, k), (k, m), (m,) or None, (n, m)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], m = w.shape[1]
    _check_activation(activation)
    _check_blas_dims("dense_forward", n, k, m)
    if w.shape[0] != k or z_out.shape[0] != n or z_out.shape[1] != m:
        raise ValueError("dense_forward: inconsistent shapes of x, w and z_out")
    if a_out.shape[0] != n or a_out.shape[1] != m:
        raise ValueError("dense_forward: a_out must have the shape of z_out")
    if b is not None and b.shape[0] != m:
        raise ValueError("dense_forward: b must have w.shape[1] entries")
    if n == 0 or k == 0 or m == 0:
        raise ValueError("dense_forward: empty dimension")
    ensure_blas()
    with nogil:
        dense_forward_core(n, k, m, &x[0, 0], &w[0, 0], &b[0] if b is not None else NULL,
                           activation, <floating>alpha, &z_out[0, 0], &a_out[0, 0], GEMM_AUTO)


def dense_backward(x, w, z, a, da, activation, alpha, l2, dz_out, dw_out, db_out, dx_out, *,
                   l1=0.0, b=None, bias_l1=0.0, bias_l2=0.0):
    """Backward through act(x @ w + b) given da = dL/da, with Keras's weight penalties.

    dz_out = da * act'(z); dw_out = x^T dz + 2 l2 w + l1 sign(w); db_out = column sums
    of dz + 2 bias_l2 b + bias_l1 sign(b) (skipped when None; the bias terms need b);
    dx_out = dz w^T (skipped when None).  sign(0) = 0, as TensorFlow and torch.
    """
    # a plain def in front of the fused one: Cython 3 misreports the signature of a fused
    # function with keyword-only defaults, and the twin-parity test reads it
    _dense_backward(x, w, z, a, da, activation, alpha, l1, l2, b, bias_l1, bias_l2, dz_out,
                    dw_out, db_out, dx_out)


def _dense_backward(const floating[:, ::1] x not None, const floating[:, ::1] w not None,
                    const floating[:, ::1] z not None, const floating[:, ::1] a not None,
                    const floating[:, ::1] da not None, int activation, double alpha,
                    double l1, double l2, const floating[::1] b, double bias_l1,
                    double bias_l2, floating[:, ::1] dz_out not None,
                    floating[:, ::1] dw_out not None, floating[::1] db_out,
                    floating[:, ::1] dx_out):
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], m = w.shape[1]
    cdef Penalty pen
    _check_activation(activation)
    _check_blas_dims("dense_backward", n, k, m)
    if w.shape[0] != k or dw_out.shape[0] != k or dw_out.shape[1] != m:
        raise ValueError("dense_backward: inconsistent shapes of x, w and dw_out")
    if (z.shape[0] != n or z.shape[1] != m or a.shape[0] != n or a.shape[1] != m
            or da.shape[0] != n or da.shape[1] != m or dz_out.shape[0] != n
            or dz_out.shape[1] != m):
        raise ValueError("dense_backward: z, a, da and dz_out must be (n, m)")
    if db_out is not None and db_out.shape[0] != m:
        raise ValueError("dense_backward: db_out must have w.shape[1] entries")
    if dx_out is not None and (dx_out.shape[0] != n or dx_out.shape[1] != k):
        raise ValueError("dense_backward: dx_out must have the shape of x")
    if b is not None and b.shape[0] != m:
        raise ValueError("dense_backward: b must have w.shape[1] entries")
    if (bias_l1 != 0 or bias_l2 != 0) and (b is None or db_out is None):
        raise ValueError("dense_backward: a bias penalty needs b and db_out")
    if n == 0 or k == 0 or m == 0:
        raise ValueError("dense_backward: empty dimension")
    pen.l1, pen.l2, pen.bias_l1, pen.bias_l2 = l1, l2, bias_l1, bias_l2
    ensure_blas()
    with nogil:
        memcpy(&dz_out[0, 0], &da[0, 0], n * m * sizeof(floating))
        dense_backward_core(n, k, m, &x[0, 0], &w[0, 0], &b[0] if b is not None else NULL,
                            &z[0, 0], &a[0, 0], activation, <floating>alpha, &pen,
                            &dz_out[0, 0], &dw_out[0, 0],
                            &db_out[0] if db_out is not None else NULL,
                            &dx_out[0, 0] if dx_out is not None else NULL)


def matmul(const floating[:, ::1] a not None, const floating[:, ::1] b not None, bint trans_a,
           bint trans_b, floating[:, ::1] c_out not None, str method="auto", double beta=0.0):
    """c_out = op(a) @ op(b) + beta * c_out; "auto" picks BLAS or the tiled kernel by shape.

    "rows" is the row-exact inference kernel: no transposes, beta 0, and every element
    summed as ``c = 0; c = c + a[i, p] * b[p, j]`` for p ascending (bit-exact to the twin).

    "small" is csrc/fnn_small.h's float32 FMA kernel (BLAS where the CPU lacks FMA, and
    for float64), beta in {0, 1}.

    "tiled" needs op(b) at least 8 columns wide, b of at most 4096 elements and beta in
    {0, 1} (the accumulation the backward pass uses for dW + 2 l2 W).  With beta = 0,
    c_out is only written (NaN in it does not propagate), as BLAS specifies.
    """
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    if method not in GEMM_METHODS:
        raise ValueError(f"matmul: method must be one of {sorted(GEMM_METHODS)}")
    cdef int code = GEMM_METHODS[method]
    if kb != k or c_out.shape[0] != m or c_out.shape[1] != n:
        raise ValueError("matmul: inconsistent shapes")
    if m == 0 or n == 0 or k == 0:
        raise ValueError("matmul: empty dimension")
    _check_blas_dims("matmul", m, n, k)
    if code == GEMM_TILED and not (n >= 8 and n * k <= 4096):
        raise ValueError("matmul: the tiled kernel needs n >= 8 and n * k <= 4096")
    if (code == GEMM_TILED or code == GEMM_SMALL) and beta != 0 and beta != 1:
        raise ValueError(f"matmul: the {method} kernel needs beta 0 or 1")
    if code == GEMM_ROWS and (trans_a or trans_b or beta != 0):
        raise ValueError("matmul: the row-exact kernel takes no transposes and beta 0")
    ensure_blas()
    with nogil:
        gemm_rowmajor(trans_a, trans_b, <int>m, <int>n, <int>k, 1, &a[0, 0], &b[0, 0],
                      <floating>beta,
                      &c_out[0, 0], code)
