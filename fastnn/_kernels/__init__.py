"""Compiled kernels (Cython over caller-owned contiguous buffers).

Every function named in KERNEL_NAMES has a NumPy twin of the same name and
signature in fastnn._kernels.reference; the tests keep the two in step.
"""
import os as _os

from fastnn._kernels._blas_import import preload as _preload_blas

_preload_blas()
# OpenMP worker threads that spin after a parallel region keep a core busy while
# OpenBLAS's own threads need it for the next GEMM: on 2 cores that made an epoch of a
# 256-wide network 90x slower (1.8 s against 20 ms, measured).  Passive waiting costs a
# few microseconds per region, which only large buffers pay.  libgomp reads this when
# it loads, with the first extension below; a value set by the user wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

# ruff: noqa: E402  (the kernels must be imported after the preload)
from fastnn._kernels._omp import get_num_threads, openmp_available, set_num_threads
from fastnn._kernels.dense import (
    ACTIVATIONS,
    GEMM_METHODS,
    activation_forward,
    dense_backward,
    dense_forward,
    matmul,
)
from fastnn._kernels.engine import LAYER_KINDS, OPTIMIZERS, Engine
from fastnn._kernels.losses import (
    LOSSES,
    METRICS,
    bce,
    cce,
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
    "sparse_softmax_xent", "softmax_xent", "sigmoid_bce", "sparse_cce", "cce", "bce", "mse",
    "metric_sum", "adam_update", "adamw_update", "sgd_update", "rmsprop_update",
    "clip_by_norm", "clip_by_global_norm", "clip_by_value", "Engine",
)

__all__ = ["ACTIVATIONS", "GEMM_METHODS", "CHUNK", "PARALLEL_MIN", "LOSSES", "METRICS",
           "LAYER_KINDS", "OPTIMIZERS", "KERNEL_NAMES", "openmp_available", "set_num_threads",
           "get_num_threads", "matmul", "activation_forward", "dense_forward", "dense_backward",
           "sparse_softmax_xent", "softmax_xent", "sigmoid_bce", "sparse_cce", "cce", "bce",
           "mse", "metric_sum", "adam_update", "adamw_update", "sgd_update", "rmsprop_update",
           "clip_by_norm", "clip_by_global_norm", "clip_by_value", "Engine"]
