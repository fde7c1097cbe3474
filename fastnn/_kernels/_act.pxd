# Activation cores: the dense-layer epilogue (bias + activation in one pass over
# the GEMM output) and the derivative fused with the incoming gradient.
# Inline so that the kernels in dense.pyx and the training engine share one body.
from cython cimport floating
from libc.math cimport NAN, tanh, tanhf, fabs
from fastnn._kernels._csrc cimport (fnn_exp_nonpos_f32, fnn_exp_nonpos_f64, fnn_relu_grad_f32,
                                    fnn_relu_grad_f64, fnn_sigmoid_f32, fnn_sigmoid_f64)

cdef enum:
    ACT_LINEAR = 0
    ACT_RELU = 1
    ACT_SIGMOID = 2
    ACT_TANH = 3
    ACT_LEAKY_RELU = 4
    ACT_SWISH = 5
    ACT_SOFTMAX = 6
    ACT_COUNT = 7       # sentinel: codes are valid in [0, ACT_COUNT)


cdef inline floating _sigmoid(floating z) noexcept nogil:
    if floating is float:
        return fnn_sigmoid_f32(z)
    else:
        return fnn_sigmoid_f64(z)


cdef inline floating _exp_nonpos(floating x) noexcept nogil:
    if floating is float:
        return fnn_exp_nonpos_f32(x)
    else:
        return fnn_exp_nonpos_f64(x)


cdef inline floating _sign(floating x) noexcept nogil:
    """-1, 0 or 1: d|x|/dx with the subgradient 0 at x = 0 (torch's and TF's abs, sign)."""
    return (x > 0) - (x < 0)


cdef inline void softmax_rows(Py_ssize_t n, Py_ssize_t m, const floating* z,
                              floating* a) noexcept nogil:
    """a[i] = exp(z[i] - max z[i]) / sum(...), row by row; a may alias z."""
    cdef Py_ssize_t i, j
    cdef floating mx, s
    for i in range(n):
        mx = z[i * m]
        for j in range(1, m):
            if z[i * m + j] > mx:
                mx = z[i * m + j]
        for j in range(m):
            a[i * m + j] = z[i * m + j] - mx
    # one flat, vectorisable pass of exp over the whole block (all arguments <= 0)
    for j in range(n * m):
        a[j] = _exp_nonpos(a[j])
    for i in range(n):
        s = 0
        for j in range(m):
            s = s + a[i * m + j]
        s = 1 / s
        for j in range(m):
            a[i * m + j] = a[i * m + j] * s


cdef inline void activation_block(Py_ssize_t n, Py_ssize_t m, const floating* z, int act,
                                  floating alpha, floating* a) noexcept nogil:
    """a = act(z) elementwise over an (n, m) block (softmax over rows); a may alias z."""
    cdef Py_ssize_t j, size = n * m
    cdef floating v
    if act == ACT_LINEAR:
        if a != z:
            for j in range(size):
                a[j] = z[j]
    elif act == ACT_RELU:
        for j in range(size):
            a[j] = z[j] if z[j] > 0 else 0
    elif act == ACT_SIGMOID:
        for j in range(size):
            a[j] = _sigmoid(z[j])
    elif act == ACT_TANH:
        for j in range(size):
            if floating is float:
                a[j] = tanhf(z[j])
            else:
                a[j] = tanh(z[j])
    elif act == ACT_LEAKY_RELU:
        for j in range(size):
            v = z[j]
            a[j] = v if v > 0 else alpha * v
    elif act == ACT_SWISH:
        for j in range(size):
            a[j] = z[j] * _sigmoid(z[j])
    elif act == ACT_SOFTMAX:
        softmax_rows(n, m, z, a)
    else:
        # unknown code: callers validate codes before entering nogil code, so this is
        # unreachable; NaN makes a slip visible instead of passing z through silently
        for j in range(size):
            a[j] = NAN


cdef inline void bias_activation(Py_ssize_t n, Py_ssize_t m, floating* z, const floating* b,
                                 int act, floating alpha, floating* a) noexcept nogil:
    """z += b (row broadcast; b may be NULL), then a = act(z); a may alias z."""
    cdef Py_ssize_t i, j
    if b != NULL:
        for i in range(n):
            for j in range(m):
                z[i * m + j] = z[i * m + j] + b[j]
    activation_block(n, m, z, act, alpha, a)


cdef inline void activation_grad(Py_ssize_t n, Py_ssize_t m, const floating* z,
                                 const floating* a, int act, floating alpha,
                                 floating* g) noexcept nogil:
    """g *= act'(z) in place (softmax: g = a * (g - sum(g * a)) per row).

    Derivatives use the stored forward values: relu' = [z > 0] (0 at the kink),
    leaky' = 1 or alpha (alpha at 0), sigmoid' = a(1 - a), tanh' = 1 - a^2,
    swish' = s(1 + z(1 - s)) with s = sigmoid(z).
    """
    cdef Py_ssize_t i, j, size = n * m
    cdef floating s
    if act == ACT_LINEAR:
        return
    elif act == ACT_RELU:
        # the same loop in C, vectorised at the CPU's width (FNN_CLONES)
        if floating is float:
            fnn_relu_grad_f32(size, z, g)
        else:
            fnn_relu_grad_f64(size, z, g)
    elif act == ACT_SIGMOID:
        for j in range(size):
            g[j] = g[j] * (a[j] * (1 - a[j]))
    elif act == ACT_TANH:
        for j in range(size):
            g[j] = g[j] * (1 - a[j] * a[j])
    elif act == ACT_LEAKY_RELU:
        for j in range(size):
            g[j] = g[j] if z[j] > 0 else alpha * g[j]
    elif act == ACT_SWISH:
        for j in range(size):
            s = _sigmoid(z[j])
            g[j] = g[j] * (s * (1 + z[j] * (1 - s)))
    elif act == ACT_SOFTMAX:
        for i in range(n):
            s = 0
            for j in range(m):
                s = s + g[i * m + j] * a[i * m + j]
            for j in range(m):
                g[i * m + j] = a[i * m + j] * (g[i * m + j] - s)
    else:
        # unknown code (unreachable after the callers' validation): poison, never pass through
        for j in range(size):
            g[j] = NAN
