"""Fused loss-and-gradient kernels, float32 and float64.

Contract: pred and targets are C-contiguous (n, m) blocks of one dtype, labels
are int32 in [0, m), sample_weight is (n,) or None.  Each kernel returns
sum_i w_i * loss_i as a float and writes grad_out = scale * w_i * dloss_i/dpred
(use scale = 1/n for Keras's mean over the batch).  The GIL is released.

Design: the loss value and its gradient share every intermediate (the row max,
the exponentials, the clipped probabilities), so computing them in one pass
halves the memory traffic and keeps the stable formulation in one place
(_loss.pxd).  With logits, softmax cross-entropy subtracts the row max before
exp and sigmoid cross-entropy never exponentiates a positive number, so logits
of +-1e4 give finite, exact results.
"""
from cython cimport floating
from libc.math cimport isfinite

from fastnn._kernels._csrc cimport fnn_small_force_isa, fnn_small_isa

from fastnn._kernels._loss cimport (LOSS_BCE, LOSS_CCE, LOSS_COUNT, LOSS_HUBER, LOSS_MAE,
                                    LOSS_MSE, LOSS_SIGMOID_BCE, LOSS_SOFTMAX_XENT,
                                    LOSS_SPARSE_CCE,
                                    LOSS_SPARSE_SOFTMAX_XENT, METRIC_BINARY_ACCURACY,
                                    METRIC_CATEGORICAL_ACCURACY, METRIC_MAE, METRIC_MSE,
                                    METRIC_SPARSE_CATEGORICAL_ACCURACY, loss_block,
                                    metric_block)

LOSSES = {"sparse_softmax_xent": LOSS_SPARSE_SOFTMAX_XENT, "softmax_xent": LOSS_SOFTMAX_XENT,
          "sigmoid_bce": LOSS_SIGMOID_BCE, "sparse_cce": LOSS_SPARSE_CCE, "cce": LOSS_CCE,
          "bce": LOSS_BCE, "mse": LOSS_MSE, "mae": LOSS_MAE, "huber": LOSS_HUBER}
METRICS = {"binary_accuracy": METRIC_BINARY_ACCURACY,
           "sparse_categorical_accuracy": METRIC_SPARSE_CATEGORICAL_ACCURACY,
           "categorical_accuracy": METRIC_CATEGORICAL_ACCURACY,
           "mse": METRIC_MSE, "mae": METRIC_MAE}


def small_isa(level=None):
    """As fastnn._kernels.dense.small_isa, for this module's copy of csrc/fnn_small.h (the
    AVX-512 sparse softmax cross-entropy runs at level 2 only)."""
    if level is not None:
        fnn_small_force_isa(level)
    return fnn_small_isa()


def _loss_call(int kind, const floating[:, ::1] pred not None, const floating[:, ::1] y,
               const int[::1] labels, const floating[::1] sample_weight, double scale,
               floating[:, ::1] grad_out not None, double param=0.0):
    cdef Py_ssize_t n = pred.shape[0], m = pred.shape[1], i
    cdef double total
    if n == 0 or m == 0:
        raise ValueError("loss kernel: empty prediction block")
    if (y is None) == (labels is None):
        raise ValueError("loss kernel: pass exactly one of targets y and labels")
    if y is not None and (y.shape[0] != n or y.shape[1] != m):
        raise ValueError("loss kernel: targets must have the shape of the predictions")
    if labels is not None:
        if labels.shape[0] != n:
            raise ValueError("loss kernel: labels must have one entry per row")
        for i in range(n):
            if labels[i] < 0 or labels[i] >= m:
                raise ValueError("loss kernel: label out of range")
    if sample_weight is not None and sample_weight.shape[0] != n:
        raise ValueError("loss kernel: sample_weight must have one entry per row")
    if grad_out.shape[0] != n or grad_out.shape[1] != m:
        raise ValueError("loss kernel: grad_out must have the shape of the predictions")
    if kind < 0 or kind >= LOSS_COUNT:
        raise ValueError(f"loss kernel: unknown kind {kind}")
    if kind == LOSS_HUBER and not (isfinite(param) and param > 0):
        raise ValueError(f"huber: delta must be a finite number > 0, got {param}")
    with nogil:
        total = loss_block(kind, n, m, &pred[0, 0],
                           &y[0, 0] if y is not None else NULL,
                           &labels[0] if labels is not None else NULL,
                           &sample_weight[0] if sample_weight is not None else NULL,
                           <floating>param, <floating>scale, &grad_out[0, 0])
    return total


def sparse_softmax_xent(z, labels, sample_weight, scale, grad_out):
    """Softmax cross-entropy from logits z against integer labels."""
    return _loss_call(LOSS_SPARSE_SOFTMAX_XENT, z, None, labels, sample_weight, scale, grad_out)


def softmax_xent(z, y, sample_weight, scale, grad_out):
    """Softmax cross-entropy from logits z against one-hot or soft targets y."""
    return _loss_call(LOSS_SOFTMAX_XENT, z, y, None, sample_weight, scale, grad_out)


def sigmoid_bce(z, y, sample_weight, scale, grad_out):
    """Binary cross-entropy from logits z, mean over the row (multi-label)."""
    return _loss_call(LOSS_SIGMOID_BCE, z, y, None, sample_weight, scale, grad_out)


def sparse_cce(p, labels, sample_weight, scale, grad_out):
    """Categorical cross-entropy from probabilities p against integer labels."""
    return _loss_call(LOSS_SPARSE_CCE, p, None, labels, sample_weight, scale, grad_out)


def cce(p, y, sample_weight, scale, grad_out):
    """Categorical cross-entropy from probabilities p (rows rescaled to sum 1, clipped)."""
    return _loss_call(LOSS_CCE, p, y, None, sample_weight, scale, grad_out)


def bce(p, y, sample_weight, scale, grad_out):
    """Binary cross-entropy from clipped probabilities p, mean over the row."""
    return _loss_call(LOSS_BCE, p, y, None, sample_weight, scale, grad_out)


def mse(p, y, sample_weight, scale, grad_out):
    """Mean squared error over the row."""
    return _loss_call(LOSS_MSE, p, y, None, sample_weight, scale, grad_out)


def mae(p, y, sample_weight, scale, grad_out):
    """Mean absolute error over the row; d|e|/de = sign(e), 0 at e = 0."""
    return _loss_call(LOSS_MAE, p, y, None, sample_weight, scale, grad_out)


def huber(p, y, sample_weight, scale, grad_out, delta):
    """Huber loss over the row (Keras 3): 0.5 e^2 for |e| <= delta, else
    delta |e| - 0.5 delta^2, with e = p - y and delta > 0."""
    return _loss_call(LOSS_HUBER, p, y, None, sample_weight, scale, grad_out, delta)


def metric_sum(int metric, const floating[:, ::1] pred not None, const floating[:, ::1] y,
               const int[::1] labels, const floating[::1] sample_weight, double threshold):
    """sum_i w_i * metric_i with metric_i averaged over the row (Keras's convention)."""
    cdef double total
    if metric < METRIC_BINARY_ACCURACY or metric > METRIC_MAE:
        raise ValueError(f"unknown metric code {metric}")
    if metric == METRIC_SPARSE_CATEGORICAL_ACCURACY and labels is None:
        raise ValueError("metric_sum: sparse categorical accuracy needs labels")
    if metric != METRIC_SPARSE_CATEGORICAL_ACCURACY and y is None:
        raise ValueError("metric_sum: this metric needs targets y")
    if pred.shape[0] == 0 or pred.shape[1] == 0:
        raise ValueError("metric_sum: empty prediction block")
    if y is not None and (y.shape[0] != pred.shape[0] or y.shape[1] != pred.shape[1]):
        raise ValueError("metric_sum: targets must have the shape of the predictions")
    if labels is not None and labels.shape[0] != pred.shape[0]:
        raise ValueError("metric_sum: labels must have one entry per row")
    if sample_weight is not None and sample_weight.shape[0] != pred.shape[0]:
        raise ValueError("metric_sum: sample_weight must have one entry per row")
    with nogil:
        total = metric_block(metric, pred.shape[0], pred.shape[1], &pred[0, 0],
                             &y[0, 0] if y is not None else NULL,
                             &labels[0] if labels is not None else NULL,
                             &sample_weight[0] if sample_weight is not None else NULL,
                             <floating>threshold)
    return total
