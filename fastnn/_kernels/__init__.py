"""Compiled kernels (Cython over caller-owned contiguous buffers).

Every function named in KERNEL_NAMES has a NumPy twin of the same name and
signature in fastnn._kernels.reference; the tests keep the two in step.
"""
from fastnn._kernels._blas_import import load_blas
from fastnn._kernels._omp import get_num_threads, openmp_available, set_num_threads
from fastnn._kernels.conv import conv_backward, conv_forward, maxpool_backward, maxpool_forward
from fastnn._kernels.dense import (
    ACTIVATIONS,
    GEMM_METHODS,
    ROWS_FUSED,
    activation_forward,
    dense_backward,
    dense_forward,
    matmul,
)
from fastnn._kernels.engine import LAYER_KINDS, OPTIMIZERS, Engine, all_finite
from fastnn._kernels.losses import (
    LOSSES,
    METRICS,
    bce,
    cce,
    huber,
    mae,
    metric_sum,
    mse,
    sigmoid_bce,
    softmax_xent,
    sparse_cce,
    sparse_softmax_xent,
)
from fastnn._kernels.optim import (
    CHUNK,
    PARALLEL_MIN,
    adam_update,
    adamw_update,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    rmsprop_update,
    sgd_update,
)

KERNEL_NAMES = (
    "matmul", "activation_forward", "dense_forward", "dense_backward",
    "conv_forward", "conv_backward", "maxpool_forward", "maxpool_backward",
    "sparse_softmax_xent", "softmax_xent", "sigmoid_bce", "sparse_cce", "cce", "bce", "mse",
    "mae", "huber", "metric_sum", "adam_update", "adamw_update", "sgd_update", "rmsprop_update",
    "clip_by_norm", "clip_by_global_norm", "clip_by_value", "all_finite", "Engine",
)

__all__ = ["load_blas", "ACTIVATIONS", "GEMM_METHODS", "ROWS_FUSED", "CHUNK", "PARALLEL_MIN",
           "LOSSES", "METRICS", "LAYER_KINDS", "OPTIMIZERS", "KERNEL_NAMES", "openmp_available",
           "set_num_threads", "get_num_threads", "matmul", "activation_forward", "dense_forward",
           "dense_backward", "conv_forward", "conv_backward", "maxpool_forward",
           "maxpool_backward", "sparse_softmax_xent", "softmax_xent", "sigmoid_bce", "sparse_cce",
           "cce", "bce", "mse", "mae", "huber", "metric_sum", "adam_update", "adamw_update",
           "sgd_update", "rmsprop_update", "clip_by_norm", "clip_by_global_norm",
           "clip_by_value", "all_finite", "Engine"]
