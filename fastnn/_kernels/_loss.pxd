# Loss and metric cores over an (n, m) block of predictions.
#
# Each loss returns sum_i w_i * loss_i (in double) and writes
#     grad[i, j] = scale * w_i * d loss_i / d pred[i, j],
# where `param` is the loss's hyper-parameter (Huber's delta; unused by the others)
# so with scale = 1 / n the gradient is that of Keras's "sum over batch size"
# reduction.  The logit forms are the fused, stable ones: softmax cross-entropy
# subtracts the row max before exp, sigmoid cross-entropy uses
# max(z, 0) - z y + log1p(exp(-|z|)).  The probability forms follow Keras:
# clip to [eps, 1 - eps] in the block's dtype (eps = 1e-7, zero gradient outside),
# and categorical ones first rescale each row to sum to 1.  The regression losses
# (MSE, MAE, Huber) average over the row; |e| has derivative sign(e) with
# sign(0) = 0, as torch's and TensorFlow's abs gradients.
from cython cimport floating
from libc.math cimport NAN, fabs, log, log1p, log1pf, logf
from fastnn._kernels._act cimport _exp_nonpos, _sigmoid, _sign
from fastnn._kernels._csrc cimport fnn_small_sparse_hits_f32, fnn_small_sparse_xent_f32

cdef enum:
    LOSS_SPARSE_SOFTMAX_XENT = 0  # logits, integer labels
    LOSS_SOFTMAX_XENT = 1         # logits, one-hot or soft targets
    LOSS_SIGMOID_BCE = 2          # logits, 0/1 targets (multi-label)
    LOSS_SPARSE_CCE = 3           # probabilities, integer labels
    LOSS_CCE = 4                  # probabilities, one-hot or soft targets
    LOSS_BCE = 5                  # probabilities, 0/1 targets
    LOSS_MSE = 6
    LOSS_MAE = 7
    LOSS_HUBER = 8                # param = delta > 0
    LOSS_COUNT = 9                # range-check sentinel, not a loss

cdef enum:
    METRIC_BINARY_ACCURACY = 0
    METRIC_SPARSE_CATEGORICAL_ACCURACY = 1
    METRIC_CATEGORICAL_ACCURACY = 2
    METRIC_MSE = 3
    METRIC_MAE = 4
    METRIC_COUNT = 5              # sentinel: codes are valid in [0, METRIC_COUNT)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline double _softmax_xent(Py_ssize_t n, Py_ssize_t m, const floating* z,
                                 const floating* y, const int* labels, const floating* sw,
                                 floating scale, floating* grad) noexcept nogil:
    """Cross-entropy of softmax(z) against labels (labels != NULL) or targets y."""
    cdef Py_ssize_t i, j
    cdef floating mx, s, w, ysum, ydot
    cdef double total = 0
    for i in range(n):
        mx = z[i * m]
        for j in range(1, m):
            if z[i * m + j] > mx:
                mx = z[i * m + j]
        for j in range(m):
            grad[i * m + j] = z[i * m + j] - mx
    for j in range(n * m):  # flat, vectorisable; every argument is <= 0
        grad[j] = _exp_nonpos(grad[j])
    for i in range(n):
        w = sw[i] if sw != NULL else 1
        mx = z[i * m]
        for j in range(1, m):
            if z[i * m + j] > mx:
                mx = z[i * m + j]
        s = 0
        for j in range(m):
            s = s + grad[i * m + j]
        if labels != NULL:
            # loss = log(sum exp(z - mx)) - (z_label - mx); grad = softmax - onehot
            total += w * (_log(s) - (z[i * m + labels[i]] - mx))
            s = w * scale / s
            for j in range(m):
                grad[i * m + j] = grad[i * m + j] * s
            grad[i * m + labels[i]] -= w * scale
        else:
            # loss = sum_j y_j (log s - (z_j - mx)); grad = softmax * sum(y) - y
            ysum = 0
            ydot = 0
            for j in range(m):
                ysum = ysum + y[i * m + j]
                ydot = ydot + y[i * m + j] * (z[i * m + j] - mx)
            total += w * (ysum * _log(s) - ydot)
            s = ysum / s
            for j in range(m):
                grad[i * m + j] = w * scale * (grad[i * m + j] * s - y[i * m + j])
    return total


cdef inline double _sigmoid_bce(Py_ssize_t n, Py_ssize_t m, const floating* z,
                                const floating* y, const floating* sw, floating scale,
                                floating* grad) noexcept nogil:
    """Binary cross-entropy of sigmoid(z), mean over the row."""
    cdef Py_ssize_t i, j
    cdef floating w, zz, row
    cdef double total = 0
    for i in range(n):
        w = sw[i] if sw != NULL else 1
        row = 0
        for j in range(m):
            zz = z[i * m + j]
            row = row + ((zz if zz > 0 else 0) - zz * y[i * m + j]
                         + _log1p(_exp_nonpos(-fabs(zz))))
        total += w * row / m
        w = w * scale / m
        for j in range(m):
            grad[i * m + j] = w * (_sigmoid(z[i * m + j]) - y[i * m + j])
    return total


cdef inline double _bce(Py_ssize_t n, Py_ssize_t m, const floating* p, const floating* y,
                        const floating* sw, floating scale, floating* grad) noexcept nogil:
    """Binary cross-entropy of clipped probabilities, mean over the row."""
    cdef Py_ssize_t i, j
    cdef floating w, pc, yy, row, d
    # Keras's epsilon() = 1e-7, as a value of the block's dtype
    cdef floating lo = <floating>1e-7
    cdef floating hi = 1 - lo
    cdef double total = 0
    for i in range(n):
        w = sw[i] if sw != NULL else 1
        row = 0
        for j in range(m):
            pc = p[i * m + j]
            yy = y[i * m + j]
            d = 1
            if pc < lo:
                pc = lo
                d = 0
            elif pc > hi:
                pc = hi
                d = 0
            # log1p(-p) keeps log(1 - p) accurate for p near the lower clip bound (as torch)
            row = row - (yy * _log(pc) + (1 - yy) * _log1p(-pc))
            grad[i * m + j] = d * (w * scale / m) * ((1 - yy) / (1 - pc) - yy / pc)
        total += w * row / m
    return total


cdef inline double _cce(Py_ssize_t n, Py_ssize_t m, const floating* p, const floating* y,
                        const int* labels, const floating* sw, floating scale,
                        floating* grad) noexcept nogil:
    """Categorical cross-entropy of row-normalised, clipped probabilities.

    q = p / sum(p), c = clip(q); loss = -sum_j y_j log c_j.  With u_j = dloss/dc_j
    (zero where clipped), dloss/dp_k = (u_k - sum_j u_j q_j) / sum(p).
    """
    cdef Py_ssize_t i, j
    cdef floating w, s, q, c, yy, u, uq, row
    # Keras's epsilon() = 1e-7, as a value of the block's dtype
    cdef floating lo = <floating>1e-7
    cdef floating hi = 1 - lo
    cdef double total = 0
    for i in range(n):
        w = sw[i] if sw != NULL else 1
        s = 0
        for j in range(m):
            s = s + p[i * m + j]
        row = 0
        uq = 0
        for j in range(m):
            q = p[i * m + j] / s
            if labels != NULL:
                yy = 1 if j == labels[i] else 0
            else:
                yy = y[i * m + j]
            if q < lo:
                c = lo
                u = 0
            elif q > hi:
                c = hi
                u = 0
            else:
                c = q
                u = -yy / c
            row = row - yy * _log(c)
            grad[i * m + j] = u
            uq = uq + u * q
        total += w * row
        w = w * scale / s
        for j in range(m):
            grad[i * m + j] = w * (grad[i * m + j] - uq)
    return total


cdef inline floating _pointwise(int kind, floating e, floating delta, floating w,
                                floating scale, Py_ssize_t m, floating* grad) noexcept nogil:
    """One element of a regression loss averaged over a row of m: returns the term at the
    error e = p - y and writes its gradient, w * scale / m times the derivative, into
    grad.  MSE e^2; MAE |e|; Keras 3's Huber 0.5 e^2 where |e| <= delta, else
    delta |e| - 0.5 delta^2 (the quadratic branch owns |e| = delta).  NaN for any other
    kind.  (MSE's factor is evaluated in double -- the literal 2 is a C double -- as in
    every earlier release; the same expressions keep the same bits.)"""
    cdef floating half = <floating>0.5
    if kind == LOSS_MSE:
        grad[0] = (2 * w * scale / m) * e
        return e * e
    elif kind == LOSS_MAE:
        grad[0] = (w * scale / m) * _sign(e)
        return fabs(e)
    elif kind == LOSS_HUBER:
        if fabs(e) <= delta:
            grad[0] = (w * scale / m) * e
            return half * (e * e)
        grad[0] = (w * scale / m) * (delta * _sign(e))
        return delta * fabs(e) - half * (delta * delta)
    grad[0] = NAN
    return NAN


cdef inline double _regression(int kind, Py_ssize_t n, Py_ssize_t m, const floating* p,
                               const floating* y, const floating* sw, floating delta,
                               floating scale, floating* grad) noexcept nogil:
    """Mean over the row of a pointwise loss of p - y (MSE, MAE, Huber: _pointwise)."""
    cdef Py_ssize_t i, j
    cdef floating w, row
    cdef double total = 0
    for i in range(n):
        w = sw[i] if sw != NULL else 1
        row = 0
        for j in range(m):
            row = row + _pointwise(kind, p[i * m + j] - y[i * m + j], delta, w, scale, m,
                                   grad + i * m + j)
        total += w * row / m
    return total


cdef inline double loss_block(int kind, Py_ssize_t n, Py_ssize_t m, const floating* pred,
                              const floating* y, const int* labels, const floating* sw,
                              floating param, floating scale, floating* grad) noexcept nogil:
    """Dispatch on the loss kind; see the module comment for the contract."""
    cdef double total
    if kind == LOSS_SPARSE_SOFTMAX_XENT:
        # float32 rows of at most 16 classes: one AVX-512 vector a row (csrc/fnn_small.h)
        if floating is float:
            if (n <= 0x7FFFFFFF and fnn_small_sparse_xent_f32(<int>n, <int>m, pred, labels, sw,
                                                             scale, grad, &total)):
                return total
        return _softmax_xent(n, m, pred, NULL, labels, sw, scale, grad)
    elif kind == LOSS_SOFTMAX_XENT:
        return _softmax_xent(n, m, pred, y, NULL, sw, scale, grad)
    elif kind == LOSS_SIGMOID_BCE:
        return _sigmoid_bce(n, m, pred, y, sw, scale, grad)
    elif kind == LOSS_SPARSE_CCE:
        return _cce(n, m, pred, NULL, labels, sw, scale, grad)
    elif kind == LOSS_CCE:
        return _cce(n, m, pred, y, NULL, sw, scale, grad)
    elif kind == LOSS_BCE:
        return _bce(n, m, pred, y, sw, scale, grad)
    elif kind == LOSS_MSE or kind == LOSS_MAE or kind == LOSS_HUBER:
        return _regression(kind, n, m, pred, y, sw, param, scale, grad)
    # unknown kind: unreachable (callers validate codes against LOSS_COUNT before nogil
    # code); a NaN loss, never a silent fallback to another loss
    return NAN


cdef inline Py_ssize_t _argmax(const floating* row, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j, best = 0
    for j in range(1, m):
        if row[j] > row[best]:
            best = j
    return best


cdef inline double metric_block(int kind, Py_ssize_t n, Py_ssize_t m, const floating* pred,
                                const floating* y, const int* labels, const floating* sw,
                                floating threshold) noexcept nogil:
    """sum_i w_i * metric_i, where metric_i is averaged over the row (Keras)."""
    cdef Py_ssize_t i, j
    cdef floating w, d, hit
    cdef double row, total = 0
    cdef long hits
    if floating is float:
        # unweighted float32 rows of at most 16 classes: one AVX-512 vector a row
        if kind == METRIC_SPARSE_CATEGORICAL_ACCURACY and sw == NULL and n <= 0x7FFFFFFF:
            hits = fnn_small_sparse_hits_f32(<int>n, <int>m, pred, labels)
            if hits >= 0:
                return <double>hits
    for i in range(n):
        w = sw[i] if sw != NULL else 1
        row = 0
        if kind == METRIC_BINARY_ACCURACY:
            for j in range(m):
                hit = 1 if pred[i * m + j] > threshold else 0
                row += 1 if hit == y[i * m + j] else 0
            row /= m
        elif kind == METRIC_SPARSE_CATEGORICAL_ACCURACY:
            row = 1 if _argmax(pred + i * m, m) == labels[i] else 0
        elif kind == METRIC_CATEGORICAL_ACCURACY:
            row = 1 if _argmax(pred + i * m, m) == _argmax(y + i * m, m) else 0
        elif kind == METRIC_MSE:
            for j in range(m):
                d = pred[i * m + j] - y[i * m + j]
                row += d * d
            row /= m
        elif kind == METRIC_MAE:
            for j in range(m):
                row += fabs(pred[i * m + j] - y[i * m + j])
            row /= m
        else:
            return NAN  # unknown kind: unreachable after the callers' validation
        total += w * row
    return total
