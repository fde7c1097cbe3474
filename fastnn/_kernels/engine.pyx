"""The training engine: whole mini-batch steps of a Sequential stack in compiled code.

Contract: an Engine is built from a layer description and the model's flat
parameter buffer; it owns the gradient buffer and a workspace sized for
`max_rows` rows.  `train` runs a run of mini-batches -- row gather, forward
through every layer, fused loss gradient, backward, optimizer update -- with
the GIL released and no allocation; `forward` and `evaluate` run inference.
All arrays are C-contiguous, of the engine's dtype, and validated by the
Python layer above (fastnn._validation); the entry points re-check only sizes.

Design notes
------------
* Memory.  Parameters (all kernels and biases) are one flat vector, so the
  optimizer is a single pass over params, grads and its state.  The workspace
  is one flat block: per layer a pre-activation block z, an output block a
  (the same block as z for an identity activation) and a gradient block g, each
  max_rows x width.  Dropout keeps its mask in the z slot.
* Backward.  g of the last layer receives dLoss/dOutput from the fused loss
  kernel (dLoss/dz when the loss is fused with a sigmoid/softmax output, in
  which case that layer's activation derivative is skipped).  Each Dense layer
  turns its g into dz in place and writes dx straight into the previous
  layer's g, so no gradient is ever copied.
* Determinism.  Reductions run in a fixed order, dropout masks come from a
  counter-based generator keyed on (seed, step, layer, element), and the thread
  count is fixed per run, so the same inputs give bit-identical weights.
* Denormals are flushed to zero for the duration of a training call (see
  csrc/fnn_common.h) and the caller's floating-point mode is restored after.
"""
from cython cimport floating
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

from fastnn._kernels._act cimport ACT_LINEAR, ACT_SOFTMAX
from fastnn._kernels._csrc cimport fnn_denormals_off, fnn_denormals_restore, fnn_uniform
from fastnn._kernels._dense cimport dense_backward_core, dense_forward_core
from fastnn._kernels._loss cimport (LOSS_MSE, LOSS_SPARSE_CCE, LOSS_SPARSE_SOFTMAX_XENT,
                                    METRIC_BINARY_ACCURACY, METRIC_MAE,
                                    METRIC_SPARSE_CATEGORICAL_ACCURACY, loss_block,
                                    metric_block)
from fastnn._kernels._update cimport (CLIP_GLOBAL_NORM, CLIP_NONE, CLIP_NORM, CLIP_VALUE,
                                      OPT_ADAM, OPT_ADAMW, OPT_RMSPROP, OPT_SGD, OptState,
                                      update_core)

cdef enum:
    LAYER_DENSE = 0
    LAYER_DROPOUT = 1
    LAYER_NORMALIZATION = 2

cdef enum:
    MAX_METRICS = 8

LAYER_KINDS = {"dense": LAYER_DENSE, "dropout": LAYER_DROPOUT,
               "normalization": LAYER_NORMALIZATION}
OPTIMIZERS = {"sgd": OPT_SGD, "adam": OPT_ADAM, "rmsprop": OPT_RMSPROP, "adamw": OPT_ADAMW}


ctypedef struct Layer:
    int kind, n_in, n_out, act
    double alpha, l2, rate
    Py_ssize_t w_off, b_off      # into params/grads; b_off < 0: no bias
    Py_ssize_t aux_off           # Normalization: mean at aux_off, std at aux_off + n_out
    bint need_dx                 # propagate the gradient into this layer's input
    Py_ssize_t z_off, a_off, g_off


ctypedef struct Net:
    int n_layers, n_in, n_out
    Layer* layers
    void** outs                  # each layer's output block in the current pass
    void* params
    void* grads
    void* aux
    void* ws
    int* labels_ws
    Py_ssize_t n_params, x_off, y_off, sw_off
    int loss_kind
    bint fused                   # loss takes the last Dense layer's pre-activation
    int n_metrics
    int metrics[MAX_METRICS]
    double threshold
    OptState opt                 # optimizer kind, state pointers, hyper-parameters, clipping


cdef void _forward(floating* ws, Net* net, const floating* x, Py_ssize_t n, bint training,
                   long long step, uint64_t seed) noexcept nogil:
    """Inference or training forward pass of n rows; sets net.outs."""
    cdef Py_ssize_t l, i, size
    cdef Layer* lay
    cdef const floating* prev = x
    cdef floating* params = <floating*>net.params
    cdef floating* aux = <floating*>net.aux
    cdef floating* a
    cdef floating* mask
    cdef floating keep
    cdef Py_ssize_t j, m
    for l in range(net.n_layers):
        lay = &net.layers[l]
        a = ws + lay.a_off
        if lay.kind == LAYER_DENSE:
            dense_forward_core(<int>n, lay.n_in, lay.n_out, prev, params + lay.w_off,
                               params + lay.b_off if lay.b_off >= 0 else NULL,
                               lay.act, <floating>lay.alpha, ws + lay.z_off, a)
        elif lay.kind == LAYER_DROPOUT:
            if not training or lay.rate == 0:
                a = <floating*>prev     # identity at inference: no copy
            else:
                # inverted dropout: keep with probability 1 - rate, scale by 1 / (1 - rate)
                mask = ws + lay.z_off
                keep = 1 - <floating>lay.rate
                size = n * lay.n_out
                for i in range(size):
                    mask[i] = 1 if fnn_uniform(seed, <uint64_t>(step * net.n_layers + l),
                                               <uint64_t>i) >= lay.rate else 0
                for i in range(size):
                    a[i] = prev[i] / keep if mask[i] != 0 else 0
        else:
            m = lay.n_out
            for i in range(n):
                for j in range(m):
                    a[i * m + j] = (prev[i * m + j] - aux[lay.aux_off + j]) / aux[lay.aux_off + m + j]
        net.outs[l] = a
        prev = a


cdef void _backward(floating* ws, Net* net, const floating* x, Py_ssize_t n,
                    bint training) noexcept nogil:
    """Backward pass from g of the last layer; fills net.grads."""
    cdef Py_ssize_t l, i, j, m, size
    cdef Layer* lay
    cdef floating* params = <floating*>net.params
    cdef floating* grads = <floating*>net.grads
    cdef floating* aux = <floating*>net.aux
    cdef floating* g
    cdef floating* dx
    cdef floating* mask
    cdef const floating* inp
    cdef floating keep
    cdef int act
    for l in range(net.n_layers - 1, -1, -1):
        lay = &net.layers[l]
        g = ws + lay.g_off
        if l > 0:
            inp = <const floating*>net.outs[l - 1]
        else:
            inp = x
        dx = ws + net.layers[l - 1].g_off if lay.need_dx else NULL
        if lay.kind == LAYER_DENSE:
            act = ACT_LINEAR if (net.fused and l == net.n_layers - 1) else lay.act
            dense_backward_core(<int>n, lay.n_in, lay.n_out, inp, params + lay.w_off,
                                ws + lay.z_off, ws + lay.a_off, act, <floating>lay.alpha,
                                <floating>lay.l2, g, grads + lay.w_off,
                                grads + lay.b_off if lay.b_off >= 0 else NULL, dx)
        elif dx == NULL:
            continue
        elif lay.kind == LAYER_DROPOUT:
            size = n * lay.n_out
            if training and lay.rate != 0:
                mask = ws + lay.z_off
                keep = 1 - <floating>lay.rate
                for i in range(size):
                    dx[i] = g[i] / keep if mask[i] != 0 else 0
            else:
                memcpy(dx, g, size * sizeof(floating))
        else:
            m = lay.n_out
            for i in range(n):
                for j in range(m):
                    dx[i * m + j] = g[i * m + j] / aux[lay.aux_off + m + j]


cdef double _l2_penalty(floating* ws, Net* net) noexcept nogil:
    """sum over Dense layers of l2 * sum(W^2) (Keras's L2 regularization loss)."""
    cdef double total = 0, s
    cdef Py_ssize_t l, i, size
    cdef floating* w
    for l in range(net.n_layers):
        if net.layers[l].kind == LAYER_DENSE and net.layers[l].l2 != 0:
            w = <floating*>net.params + net.layers[l].w_off
            size = <Py_ssize_t>net.layers[l].n_in * net.layers[l].n_out
            s = 0
            for i in range(size):
                s += w[i] * w[i]
            total += net.layers[l].l2 * s
    return total


cdef double _loss_and_metrics(floating* ws, Net* net, Py_ssize_t n, const floating* y,
                              const int* labels, const floating* sw, double* stats) noexcept nogil:
    """Loss gradient into g of the last layer; metric sums into stats[2:]; returns the loss sum."""
    cdef Layer* last = &net.layers[net.n_layers - 1]
    cdef const floating* pred = ws + last.z_off if net.fused else <floating*>net.outs[net.n_layers - 1]
    cdef const floating* out = <floating*>net.outs[net.n_layers - 1]
    cdef double loss
    cdef int k
    loss = loss_block(net.loss_kind, n, net.n_out, pred, y, labels, sw,
                      <floating>(1.0 / n), ws + last.g_off)
    # compiled metrics ignore sample and class weights, as Keras's MeanMetricWrapper does
    for k in range(net.n_metrics):
        stats[2 + 2 * k] += metric_block(net.metrics[k], n, net.n_out, out, y, labels, NULL,
                                         <floating>net.threshold)
        stats[3 + 2 * k] += n
    return loss


cdef void _train_batches(floating* ws, Net* net, const floating* x, const floating* y,
                         const int* labels, const floating* sw, const long long* order,
                         Py_ssize_t n_rows, Py_ssize_t batch_size, Py_ssize_t first,
                         Py_ssize_t count, const double* lrs, long long step, uint64_t seed,
                         double* stats) noexcept nogil:
    """Mini-batches first .. first + count - 1 of the row order; one optimizer step each."""
    cdef Py_ssize_t b, r, src, start, bs
    cdef int n_in = net.n_in, n_out = net.n_out
    cdef floating* xb = ws + net.x_off
    cdef floating* yb = ws + net.y_off
    cdef floating* swb = ws + net.sw_off
    cdef double loss
    for b in range(first, first + count):
        start = b * batch_size
        bs = min(batch_size, n_rows - start)
        for r in range(bs):
            src = order[start + r]
            memcpy(xb + r * n_in, x + src * n_in, n_in * sizeof(floating))
            if y != NULL:
                memcpy(yb + r * n_out, y + src * n_out, n_out * sizeof(floating))
            if labels != NULL:
                net.labels_ws[r] = labels[src]
            if sw != NULL:
                swb[r] = sw[src]
        _forward(ws, net, xb, bs, True, step, seed)
        loss = _loss_and_metrics(ws, net, bs, yb if y != NULL else NULL,
                                 net.labels_ws if labels != NULL else NULL,
                                 swb if sw != NULL else NULL, stats)
        # Keras reports the batch loss (mean over rows plus the L2 penalty), averaged
        # over the epoch with the batch size as weight
        stats[0] += loss + _l2_penalty(ws, net) * bs
        stats[1] += bs
        _backward(ws, net, xb, bs, True)
        step += 1
        # set_optimizer admits only known kinds; should one slip through, stop here
        if update_core(&net.opt, net.n_params, <floating*>net.params, <floating*>net.grads,
                       lrs[b - first], step) != 0:
            return


cdef class Engine:
    """Compiled forward/backward/update of a layer stack over caller-owned parameters.

    Parameters
    ----------
    layers : list of dict
        One dict per layer with keys ``kind`` ("dense", "dropout", "normalization"),
        ``n_in``, ``n_out`` and, for Dense, ``activation`` (code), ``alpha``, ``l2``,
        ``w_off``, ``b_off`` (-1 for no bias); Dropout ``rate``; Normalization ``aux_off``.
    params : ndarray of shape (n_params,)
        Flat parameter vector (float32 or float64); updated in place by `train`.
    aux : ndarray
        Non-trainable statistics (Normalization mean and std), same dtype.
    loss : int
        Loss kernel code (fastnn._kernels.losses.LOSSES); ``fused`` says whether
        it reads the last Dense layer's pre-activation.
    metrics : list of int
        Metric codes (fastnn._kernels.losses.METRICS); ``threshold`` is binary accuracy's.
    """
    cdef Net net
    cdef bint is_f64
    cdef readonly object dtype
    cdef readonly Py_ssize_t max_rows
    cdef readonly object params, grads, aux
    cdef object _ws, _labels, _opt_refs

    def __cinit__(self):
        self.net.layers = NULL
        self.net.outs = NULL

    def __dealloc__(self):
        free(self.net.layers)
        free(self.net.outs)

    def __init__(self, list layers, params, aux, int loss, bint fused, list metrics,
                 double threshold):
        cdef Py_ssize_t l, n_layers = len(layers)
        cdef Layer* lay
        if n_layers == 0:
            raise ValueError("Engine: no layers")
        if len(metrics) > MAX_METRICS:
            raise ValueError(f"Engine: at most {MAX_METRICS} metrics")
        self.dtype = params.dtype
        if self.dtype not in (np.float32, np.float64) or aux.dtype != self.dtype:
            raise TypeError("Engine: params and aux must share a float32/float64 dtype")
        if not (params.flags.c_contiguous and aux.flags.c_contiguous):
            raise ValueError("Engine: params and aux must be contiguous")
        self.params, self.aux = params, aux
        self.is_f64 = self.dtype == np.float64
        self.grads = _aligned_zeros(params.shape[0], params.dtype)
        self.net.layers = <Layer*>malloc(n_layers * sizeof(Layer))
        self.net.outs = <void**>malloc(n_layers * sizeof(void*))
        if self.net.layers == NULL or self.net.outs == NULL:
            raise MemoryError()
        self.net.n_layers = <int>n_layers
        for l, spec in enumerate(layers):
            lay = &self.net.layers[l]
            lay.kind = LAYER_KINDS[spec["kind"]]
            lay.n_in, lay.n_out = spec["n_in"], spec["n_out"]
            lay.act = spec.get("activation", ACT_LINEAR)
            if lay.act < ACT_LINEAR or lay.act > ACT_SOFTMAX:
                raise ValueError(f"Engine: unknown activation code {lay.act}")
            if lay.n_in < 1 or lay.n_out < 1:
                raise ValueError("Engine: layer widths must be >= 1")
            lay.alpha = spec.get("alpha", 0.0)
            lay.l2 = spec.get("l2", 0.0)
            lay.rate = spec.get("rate", 0.0)
            lay.w_off, lay.b_off = spec.get("w_off", 0), spec.get("b_off", -1)
            lay.aux_off = spec.get("aux_off", 0)
            if l > 0 and lay.n_in != self.net.layers[l - 1].n_out:
                raise ValueError("Engine: consecutive layer widths do not match")
            if lay.kind == LAYER_DENSE and (
                    lay.w_off < 0 or lay.w_off + lay.n_in * lay.n_out > params.shape[0]
                    or lay.b_off + lay.n_out > params.shape[0]):
                raise ValueError("Engine: parameter offsets out of range")
            if lay.kind == LAYER_NORMALIZATION and (
                    lay.aux_off < 0 or lay.aux_off + 2 * lay.n_out > aux.shape[0]):
                raise ValueError("Engine: statistics offsets out of range")
        # a layer needs dx when some trainable layer lies below it
        trainable_below = False
        for l in range(n_layers):
            self.net.layers[l].need_dx = trainable_below
            if self.net.layers[l].kind == LAYER_DENSE:
                trainable_below = True
        last = self.net.layers[n_layers - 1]
        if fused and last.kind != LAYER_DENSE:
            raise ValueError("Engine: a fused loss needs a Dense output layer")
        self.net.n_in = self.net.layers[0].n_in
        self.net.n_out = last.n_out
        self.net.n_params = params.shape[0]
        if loss < LOSS_SPARSE_SOFTMAX_XENT or loss > LOSS_MSE:
            raise ValueError(f"Engine: unknown loss code {loss}")
        sparse = loss in (LOSS_SPARSE_SOFTMAX_XENT, LOSS_SPARSE_CCE)
        for code in metrics:
            if code < METRIC_BINARY_ACCURACY or code > METRIC_MAE:
                raise ValueError(f"Engine: unknown metric code {code}")
            if (code == METRIC_SPARSE_CATEGORICAL_ACCURACY) != sparse:
                raise ValueError("Engine: sparse categorical accuracy goes with (and only "
                                 "with) a loss on integer labels")
        self.net.loss_kind = loss
        self.net.fused = fused
        self.net.n_metrics = <int>len(metrics)
        for l, code in enumerate(metrics):
            self.net.metrics[l] = code
        self.net.threshold = threshold
        # a stack without trainable parameters (only Normalization, say) has empty buffers
        self.net.params = _data_ptr(params) if params.shape[0] else NULL
        self.net.aux = _data_ptr(aux) if aux.shape[0] else NULL
        self.net.grads = _data_ptr(self.grads) if params.shape[0] else NULL
        self.net.opt = OptState(kind=OPT_SGD, s1=NULL, s2=NULL, s3=NULL, beta_1=0.9,
                                beta_2=0.999, epsilon=1e-7, momentum=0, rho=0.9,
                                weight_decay=0, nesterov=False, centered=False,
                                clip_kind=CLIP_NONE, clip=0, n_segments=0, segments=NULL)
        self.max_rows = 0
        self.reserve(1)

    def reserve(self, Py_ssize_t rows):
        """Size the workspace for batches of up to `rows` rows (grows, never shrinks).

        Every block starts on a 64-byte boundary (a cache line, and one AVX-512 vector),
        so the vector loops and BLAS see the same alignment whatever the allocator did.
        """
        cdef Py_ssize_t l, off = 0
        cdef Layer* lay
        if rows <= self.max_rows:
            return
        for l in range(self.net.n_layers):
            lay = &self.net.layers[l]
            lay.z_off = off
            off = _block_end(off, rows * lay.n_out, self.dtype)
            if lay.kind == LAYER_DENSE and lay.act == ACT_LINEAR:
                lay.a_off = lay.z_off
            else:
                lay.a_off = off
                off = _block_end(off, rows * lay.n_out, self.dtype)
            lay.g_off = off
            off = _block_end(off, rows * lay.n_out, self.dtype)
        self.net.x_off = off
        off = _block_end(off, rows * self.net.n_in, self.dtype)
        self.net.y_off = off
        off = _block_end(off, rows * self.net.n_out, self.dtype)
        self.net.sw_off = off
        off = _block_end(off, rows, self.dtype)
        self._ws = _aligned_zeros(off, self.dtype)
        self._labels = _aligned_zeros(rows, np.intc)
        self.net.ws = _data_ptr(self._ws)
        self.net.labels_ws = _int_ptr(self._labels)
        self.max_rows = rows

    def set_optimizer(self, str kind, m, v, double beta_1=0.9, double beta_2=0.999,
                      double epsilon=1e-7, double momentum=0.0, bint nesterov=False, *,
                      average_grad=None, double rho=0.9, bint centered=False,
                      double weight_decay=0.0, double clipnorm=0.0,
                      double global_clipnorm=0.0, double clipvalue=0.0, segments=None):
        """Attach optimizer state buffers (owned by the optimizer object) and settings.

        State slots: Adam/AdamW m, v; SGD m = velocity (momentum != 0); RMSprop m =
        velocity (mean square), v = momentum buffer (momentum > 0), average_grad
        (centered).  At most one of clipnorm, global_clipnorm, clipvalue may be > 0
        (0: off, as in Keras); clipnorm clips each (offset, length) row of `segments`
        (int64, shape (k, 2)) -- one row per variable -- by its own norm.
        """
        if kind not in OPTIMIZERS:
            raise ValueError(f"Engine: unknown optimizer {kind!r}")
        cdef int code = OPTIMIZERS[kind]
        for buf in (m, v, average_grad):
            if buf is not None and (buf.dtype != self.dtype or buf.shape != self.params.shape
                                    or not buf.flags.c_contiguous):
                raise ValueError("Engine: optimizer state must match the parameters")
        if code in (OPT_ADAM, OPT_ADAMW) and (m is None or v is None):
            raise ValueError("Engine: Adam needs m and v")
        if code == OPT_SGD and momentum != 0 and m is None:
            raise ValueError("Engine: SGD with momentum needs a velocity buffer")
        if code == OPT_RMSPROP and (m is None or (momentum > 0 and v is None)
                                    or (centered and average_grad is None)):
            raise ValueError("Engine: RMSprop needs velocity, and momentum and average "
                             "gradient buffers when those are on")
        cdef int clip_kind = CLIP_NONE
        cdef double clip = 0
        for value, ck in ((clipnorm, CLIP_NORM), (global_clipnorm, CLIP_GLOBAL_NORM),
                          (clipvalue, CLIP_VALUE)):
            if not value >= 0:
                raise ValueError("Engine: clipping thresholds must be >= 0")
            if value > 0:
                if clip_kind != CLIP_NONE:
                    raise ValueError("Engine: at most one of clipnorm, global_clipnorm and "
                                     "clipvalue")
                clip_kind, clip = ck, value
        cdef const long long[:, ::1] seg
        cdef Py_ssize_t s, end = 0
        if clip_kind == CLIP_NORM:
            if segments is None:
                raise ValueError("Engine: clipnorm needs the variable segments")
            segments = np.array(segments, dtype=np.int64)   # a private copy: no later edits
            seg = segments
            if seg.shape[1] != 2:
                raise ValueError("Engine: segments must have shape (k, 2)")
            for s in range(seg.shape[0]):    # in order, disjoint, inside the parameters
                if seg[s, 0] < end or seg[s, 1] < 0 or seg[s, 0] + seg[s, 1] > self.net.n_params:
                    raise ValueError("Engine: segments must be ordered, disjoint ranges "
                                     "of the parameters")
                end = seg[s, 0] + seg[s, 1]
        else:
            segments = None
        self._opt_refs = (m, v, average_grad, segments)
        self.net.opt.kind = code
        self.net.opt.s1 = _data_ptr(m) if m is not None and m.shape[0] else NULL
        self.net.opt.s2 = _data_ptr(v) if v is not None and v.shape[0] else NULL
        self.net.opt.s3 = (_data_ptr(average_grad)
                           if average_grad is not None and average_grad.shape[0] else NULL)
        self.net.opt.beta_1, self.net.opt.beta_2 = beta_1, beta_2
        self.net.opt.epsilon, self.net.opt.momentum = epsilon, momentum
        self.net.opt.nesterov, self.net.opt.rho, self.net.opt.centered = nesterov, rho, centered
        self.net.opt.weight_decay = weight_decay if code == OPT_ADAMW else 0.0
        self.net.opt.clip_kind, self.net.opt.clip = clip_kind, clip
        self.net.opt.n_segments = seg.shape[0] if segments is not None else 0
        self.net.opt.segments = &seg[0, 0] if segments is not None and seg.shape[0] else NULL

    def _check_data(self, x, y, labels, sample_weight, Py_ssize_t n, bint targets=True):
        if x.dtype != self.dtype or x.ndim != 2 or x.shape[1] != self.net.n_in:
            raise ValueError("Engine: x must be (n, n_in) of the engine's dtype")
        if x.shape[0] != n or not x.flags.c_contiguous:
            raise ValueError("Engine: x must be C-contiguous with n rows")
        if targets:
            sparse = self.net.loss_kind in (LOSS_SPARSE_SOFTMAX_XENT, LOSS_SPARSE_CCE)
            if sparse and (labels is None or y is not None):
                raise ValueError("Engine: this loss takes integer labels, not y")
            if not sparse and (y is None or labels is not None):
                raise ValueError("Engine: this loss takes dense targets y, not labels")
        if y is not None and (y.dtype != self.dtype or y.shape != (n, self.net.n_out)
                              or not y.flags.c_contiguous):
            raise ValueError("Engine: y must be (n, n_out) of the engine's dtype")
        if labels is not None:
            if labels.dtype != np.intc or labels.shape != (n,) or not labels.flags.c_contiguous:
                raise ValueError("Engine: labels must be contiguous int32 of shape (n,)")
            if not _labels_in_range(labels, self.net.n_out):
                raise ValueError("Engine: label out of range")
        if sample_weight is not None and (sample_weight.dtype != self.dtype
                                          or sample_weight.shape != (n,)):
            raise ValueError("Engine: sample_weight must be (n,) of the engine's dtype")

    def train(self, x, y, labels, sample_weight, long long[::1] order not None,
              Py_ssize_t batch_size, Py_ssize_t first, Py_ssize_t count,
              const double[::1] lrs not None, long long step, uint64_t seed,
              double[::1] stats not None):
        """Train on batches first .. first+count-1 of x[order]; returns the new step count.

        stats accumulates [sum of batch loss * batch size, rows, then per metric its sum
        over rows and the row count].  lrs holds one learning rate per batch.
        """
        cdef Py_ssize_t n = order.shape[0], i
        cdef unsigned int fp_mode
        self._check_data(x, y, labels, sample_weight, x.shape[0])
        if batch_size < 1 or first < 0 or count < 0 or (first + count - 1) * batch_size >= n > 0:
            raise ValueError("Engine.train: batch range outside the data")
        if lrs.shape[0] < count or stats.shape[0] < 2 + 2 * self.net.n_metrics:
            raise ValueError("Engine.train: lrs or stats too short")
        if (self.net.opt.kind in (OPT_ADAM, OPT_ADAMW, OPT_RMSPROP) and self.net.opt.s1 == NULL
                and self.net.n_params):
            raise ValueError("Engine.train: no optimizer attached")
        cdef long long n_rows = x.shape[0]
        cdef bint in_range = True
        with nogil:
            for i in range(n):
                in_range = in_range & (order[i] >= 0) & (order[i] < n_rows)
        if not in_range:
            raise ValueError("Engine.train: order index out of range")
        if count == 0 or n == 0:
            return step
        self.reserve(min(batch_size, n))
        cdef void* xp = _data_ptr(x)
        cdef void* yp = _data_ptr(y) if y is not None else NULL
        cdef int* lp = _int_ptr(labels) if labels is not None else NULL
        cdef void* sp = _data_ptr(sample_weight) if sample_weight is not None else NULL
        with nogil:
            fp_mode = fnn_denormals_off()
            if self.is_f64:
                _train_batches(<double*>self.net.ws, &self.net, <double*>xp, <double*>yp, lp,
                               <double*>sp, &order[0], n, batch_size, first, count,
                               &lrs[0], step, seed, &stats[0])
            else:
                _train_batches(<float*>self.net.ws, &self.net, <float*>xp, <float*>yp, lp,
                               <float*>sp, &order[0], n, batch_size, first, count,
                               &lrs[0], step, seed, &stats[0])
            fnn_denormals_restore(fp_mode)
        return step + count

    def forward(self, x, out):
        """out = the stack's output for x in inference mode (dropout off)."""
        self._check_data(x, None, None, None, x.shape[0], False)
        if out.dtype != self.dtype or out.shape != (x.shape[0], self.net.n_out) \
                or not out.flags.c_contiguous:
            raise ValueError("Engine.forward: out must be (n, n_out) of the engine's dtype")
        if self.is_f64:
            self._forward_into[double](x, out)
        else:
            self._forward_into[float](x, out)
        return out

    def infer(self, x):
        """The stack's output for x as a new array; the low-latency path behind model(x).

        x must already be a C-contiguous 2-D array of the engine's dtype (the caller checks
        that much); its width and finiteness are checked here, in one pass without the GIL.
        """
        if self.is_f64:
            return self._infer[double](x)
        return self._infer[float](x)

    cdef object _infer(self, const floating[:, ::1] x):
        cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1]
        cdef bint finite
        if n_in != self.net.n_in:
            raise ValueError(f"x has {n_in} features, but the model expects {self.net.n_in}")
        if n == 0:
            raise ValueError(f"x must be non-empty, got shape ({n}, {n_in})")
        with nogil:
            finite = _all_finite(&x[0, 0], n * n_in)
        if not finite:
            raise ValueError("x contains NaN or infinity")
        out = np.empty((n, self.net.n_out), dtype=self.dtype)
        self._forward_into[floating](x, out)
        return out

    cdef int _forward_into(self, const floating[:, ::1] x, floating[:, ::1] out) except -1:
        """Inference forward pass in workspace-sized chunks of rows, copied into out."""
        cdef Py_ssize_t n = x.shape[0], n_out = self.net.n_out, start, rows
        cdef Py_ssize_t chunk = min(n, max(self.max_rows, 1024))
        if n == 0:
            return 0
        self.reserve(chunk)
        with nogil:
            start = 0
            while start < n:
                rows = min(chunk, n - start)
                _forward(<floating*>self.net.ws, &self.net, &x[start, 0], rows, False, 0, 0)
                memcpy(&out[start, 0], self.net.outs[self.net.n_layers - 1],
                       rows * n_out * sizeof(floating))
                start += rows
        return 0

    def evaluate(self, x, y, labels, sample_weight, double[::1] stats not None):
        """Inference-mode loss and metric sums over x, accumulated into stats (no L2)."""
        self._check_data(x, y, labels, sample_weight, x.shape[0])
        if stats.shape[0] < 2 + 2 * self.net.n_metrics:
            raise ValueError("Engine.evaluate: stats too short")
        if self.is_f64:
            self._evaluate[double](x, y, labels, sample_weight, stats)
        else:
            self._evaluate[float](x, y, labels, sample_weight, stats)

    cdef int _evaluate(self, const floating[:, ::1] x, const floating[:, ::1] y,
                       const int[::1] labels, const floating[::1] sample_weight,
                       double[::1] stats) except -1:
        cdef Py_ssize_t n = x.shape[0], start, rows
        cdef Py_ssize_t chunk = min(n, max(self.max_rows, 1024))
        if n == 0:
            return 0
        self.reserve(chunk)
        with nogil:
            start = 0
            while start < n:
                rows = min(chunk, n - start)
                _forward(<floating*>self.net.ws, &self.net, &x[start, 0], rows, False, 0, 0)
                stats[0] += _loss_and_metrics(
                    <floating*>self.net.ws, &self.net, rows,
                    &y[start, 0] if y is not None else NULL,
                    &labels[start] if labels is not None else NULL,
                    &sample_weight[start] if sample_weight is not None else NULL, &stats[0])
                stats[1] += rows
                start += rows
        return 0

    def l2_penalty(self):
        """sum over Dense layers of l2 * sum(W^2) at the current weights."""
        if self.is_f64:
            return _l2_penalty(<double*>self.net.ws, &self.net)
        return _l2_penalty(<float*>self.net.ws, &self.net)


cdef enum:
    _ALIGN = 64


cdef Py_ssize_t _block_end(Py_ssize_t start, Py_ssize_t size, dtype):
    """End of a block of `size` elements from `start`, rounded up to the next 64 bytes."""
    cdef Py_ssize_t per_line = _ALIGN // np.dtype(dtype).itemsize
    return (start + size + per_line - 1) // per_line * per_line


def _aligned_zeros(Py_ssize_t n, dtype):
    """A zeroed 1-D array of n elements whose data starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n * itemsize + _ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % _ALIGN
    return raw[start:start + n * itemsize].view(dtype)


cdef bint _labels_in_range(const int[::1] labels, int n_classes) noexcept:
    cdef Py_ssize_t i
    cdef bint ok = True
    with nogil:
        for i in range(labels.shape[0]):
            ok = ok & (labels[i] >= 0) & (labels[i] < n_classes)
    return ok


cdef bint _all_finite(const floating* x, Py_ssize_t size) noexcept nogil:
    """True when no element is NaN or infinite (v - v is NaN exactly for those)."""
    cdef Py_ssize_t i
    cdef floating acc = 0
    for i in range(size):
        acc = acc + (x[i] - x[i])
    return acc == 0


cdef void* _data_ptr(arr) except NULL:
    """Address of a C-contiguous float32/float64 array's first element."""
    cdef float[::1] f
    cdef double[::1] d
    flat = arr.reshape(-1)
    if flat.shape[0] == 0:
        raise ValueError("empty buffer")
    if arr.dtype == np.float32:
        f = flat
        return &f[0]
    d = flat
    return &d[0]


cdef int* _int_ptr(arr) except NULL:
    cdef int[::1] v = arr
    if v.shape[0] == 0:
        raise ValueError("empty buffer")
    return &v[0]
