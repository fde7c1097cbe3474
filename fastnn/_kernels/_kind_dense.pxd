# The engine's Dense layer: z = x @ W + b, a = act(z).  Parameters: the kernel (n_in, n_out)
# at w_off and the bias (n_out,) at b_off (b_off < 0: none).  Workspace: z (the
# pre-activation, which is a itself for a linear layer).  The math is in _dense.pxd.
from cython cimport floating

from fastnn._kernels._act cimport ACT_LINEAR
from fastnn._kernels._blas cimport GEMM_AUTO, GEMM_ROWS
from fastnn._kernels._dense cimport dense_backward_core, dense_forward_core
from fastnn._kernels._layer cimport (LOGITS_Z, Layer, LayerNeeds, Pass, read_params,
                                     read_penalty)


cdef inline int dense_read(dict spec, Layer* lay, Py_ssize_t n_params) except -1:
    lay.alpha = spec.get("alpha", 0.0)
    read_penalty(spec, lay)
    read_params(spec, lay, lay.n_in * lay.n_out, lay.n_out, n_params)
    return 0


cdef inline void dense_needs(const Layer* lay, LayerNeeds* needs) noexcept nogil:
    needs.kernel, needs.bias = lay.n_in * lay.n_out, lay.n_out
    needs.z, needs.a_is_z = lay.n_out, lay.act == ACT_LINEAR
    needs.scratch, needs.gemm_rows = 0, 1
    needs.row_work = lay.n_in * lay.n_out
    needs.logits = LOGITS_Z


cdef inline floating* dense_forward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                    const floating* x, const floating* params,
                                    const floating* aux, floating* z, floating* a,
                                    floating* s) noexcept nogil:
    # inference (predict, model(x), evaluate) takes the row-exact product, so a row's
    # output never depends on the batch it came in (see the engine's module notes)
    dense_forward_core(n, lay.n_in, lay.n_out, x, params + lay.w_off,
                       params + lay.b_off if lay.b_off >= 0 else NULL, lay.act,
                       <floating>lay.alpha, z, a, GEMM_AUTO if p.training else GEMM_ROWS)
    return a


cdef inline void dense_backward(const Layer* lay, const Pass* p, Py_ssize_t n,
                                const floating* x, const floating* params,
                                const floating* aux, const floating* z, const floating* a,
                                floating* s, int act, floating* g, floating* grads,
                                floating* dx) noexcept nogil:
    dense_backward_core(n, lay.n_in, lay.n_out, x, params + lay.w_off,
                        params + lay.b_off if lay.b_off >= 0 else NULL, z, a, act,
                        <floating>lay.alpha, &lay.pen, g, grads + lay.w_off,
                        grads + lay.b_off if lay.b_off >= 0 else NULL, dx)
