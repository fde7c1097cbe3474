"""Helpers for the Keras parity tests: twin models, dtype handling, error bookkeeping.

Relative error of an array: ``max|got - want| / max|want|``. It is scale-aware, so a weight that
happens to sit near zero is judged against the scale of its array, not against its own
magnitude. Tolerances follow the issue: 1e-4 in float32 and 1e-9 in float64, for weights and
for History losses.

Keras on the torch backend computes some float64 ops in float32 (KERAS_NOTES.md, section 0).
`keras_floatx("float64")` lifts that for the duration of a block, as the TensorFlow backend
does, so that Keras can serve as a float64 oracle.
"""

import contextlib
import math

import keras
import numpy as np
from keras.src.backend.common import dtypes as _keras_dtypes
from keras.src.backend.common import global_state as _keras_global_state

import fastnn
from fastnn import layers as fl
from fastnn import losses as flosses
from fastnn import optimizers as fopt
from fastnn import regularizers as freg
from fastnn.regularizers import L2

DTYPES = ["float32", "float64"]
TOL = {"float32": 1e-4, "float64": 1e-9}
# Single forward passes and single loss evaluations: no training drift, so tighter.
FWD_TOL = {"float32": 2e-6, "float64": 1e-12}

# (group, dtype, kind) -> worst relative error seen; kind in {"weights", "history", "outputs"}.
WORST = {}


@contextlib.contextmanager
def keras_floatx(dtype):
    """Run a block with Keras in `dtype`: floatx, the layers' dtype policy, real float64.

    `set_floatx` alone is not enough once any layer exists in the process: layers take the
    global dtype policy, which Keras creates from floatx on first use and then keeps.
    """
    # A private table (keras 3.15); should a later Keras drop it, run unpatched, and the
    # float64 tests will say whether Keras still computes float64 in float32.
    bit_map = getattr(_keras_dtypes, "BIT64_TO_BIT32_DTYPE", None)
    old_map = bit_map.get("float64") if isinstance(bit_map, dict) else None
    old_floatx = keras.config.floatx()
    old_policy = _keras_global_state.get_global_attribute("dtype_policy", None)
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    if dtype == "float64" and old_map is not None:
        bit_map["float64"] = "float64"
    try:
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        _keras_global_state.set_global_attribute("dtype_policy", old_policy)
        if old_map is not None:
            bit_map["float64"] = old_map


def to_numpy(value):
    """Keras returns torch tensors from ops and, under -W error, in History; NumPy them."""
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def rel_err(got, want):
    """``max|got - want| / max|want|`` in float64 (0 when both are all zeros)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    if scale == 0.0:
        return diff
    return diff / scale


def record(group, dtype, kind, err):
    key = (group, dtype, kind)
    WORST[key] = max(WORST.get(key, 0.0), float(err))


def check_close(got, want, dtype, group, kind, what, tol=None):
    """Assert relative agreement and remember the error under (group, dtype, kind)."""
    tol = TOL[dtype] if tol is None else tol
    err = rel_err(got, want)
    record(group, dtype, kind, err)
    assert np.all(np.isfinite(np.asarray(got, dtype=np.float64))), f"{what}: fastnn not finite"
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.0e} ({dtype})"
    return err


def check_weights(fast_model, keras_weights, dtype, group, what="weights"):
    fw = fast_model.get_weights()
    assert len(fw) == len(keras_weights), f"{len(fw)} fastnn arrays vs {len(keras_weights)} Keras"
    for i, (a, b) in enumerate(zip(fw, keras_weights, strict=True)):
        assert np.asarray(a).dtype == np.dtype(dtype), f"{what}[{i}] dtype {np.asarray(a).dtype}"
        check_close(a, b, dtype, group, "weights", f"{what}[{i}]")


def check_history(fast_hist, keras_hist, dtype, group, keys=("loss",)):
    for key in keys:
        assert key in fast_hist.history, f"History lacks {key!r}: {sorted(fast_hist.history)}"
        got = np.array([float(v) for v in fast_hist.history[key]])
        want = np.array([float(to_numpy(v)) for v in keras_hist.history[key]])
        assert got.shape == want.shape, f"{key}: {got.size} epochs vs Keras {want.size}"
        # Per epoch: each loss is judged against its own magnitude.
        for e, (g, w) in enumerate(zip(got, want, strict=True)):
            check_close(g, w, dtype, group, "history", f"history[{key!r}][epoch {e}]")


# ----------------------------------------------------------------------------- data

def make_weights(rng, sizes, dtype="float64"):
    """Glorot-uniform kernels and small non-zero biases, as a Keras-ordered list."""
    out = []
    for k, m in zip(sizes[:-1], sizes[1:], strict=True):
        limit = math.sqrt(6.0 / (k + m))
        out.append(rng.uniform(-limit, limit, size=(k, m)).astype(dtype))
        out.append((0.1 * rng.standard_normal(m)).astype(dtype))
    return out


# ----------------------------------------------------------------------------- twins

# Activation names that fastnn and Keras spell the same and define the same way.
SHARED_ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "swish", "softmax"]


def keras_activation(name):
    """Keras counterpart of a fastnn activation name (leaky_relu: the course's slope 0.01)."""
    if name == "leaky_relu":
        return lambda z: keras.activations.leaky_relu(z, negative_slope=0.01)
    return name


# Weight penalties on every Dense layer: {"kernel": (class name, kwargs), "bias": ...}.
# Factors are binary fractions, exact in float32 (Keras's L1 keeps its factor as a tensor
# of floatx, so an inexact one would differ between the dtypes).
PENALTIES = {
    "L1": {"kernel": ("L1", {"l1": 2.0 ** -7})},
    "L1L2": {"kernel": ("L1L2", {"l1": 2.0 ** -8, "l2": 2.0 ** -6})},
    "bias-L2": {"bias": ("L2", {"l2": 2.0 ** -5})},
    "bias-L1": {"bias": ("L1", {"l1": 2.0 ** -7})},
    "all": {"kernel": ("L1L2", {"l1": 2.0 ** -8, "l2": 2.0 ** -7}),
            "bias": ("L1L2", {"l1": 2.0 ** -7, "l2": 2.0 ** -6})},
}


def _penalty_kwargs(penalty):
    """(fastnn Dense kwargs, Keras Dense kwargs) for a PENALTIES entry (None: none)."""
    fast, kers = {}, {}
    for where, (cls, kwargs) in (PENALTIES[penalty] if penalty else {}).items():
        fast[f"{where}_regularizer"] = getattr(freg, cls)(**kwargs)
        kers[f"{where}_regularizer"] = getattr(keras.regularizers, cls)(**kwargs)
    return fast, kers


def twin_models(sizes, activations, dtype, weights, l2=0.0, dropout=None, penalty=None):
    """A fastnn and a Keras Sequential with identical architecture and weights.

    `sizes` = [inputs, units1, units2, ...]; `dropout` = rate of a Dropout after each hidden
    layer, or None; `penalty` = a PENALTIES key (instead of `l2`), or None. Keras is built
    under `keras_floatx(dtype)` by the caller.
    """
    fast_layers = []
    keras_layers = [keras.Input((sizes[0],))]
    n_dense = len(sizes) - 1
    for i, (units, act) in enumerate(zip(sizes[1:], activations, strict=True)):
        reg_f = {"kernel_regularizer": L2(l2) if l2 else None}
        reg_k = {"kernel_regularizer": keras.regularizers.L2(l2) if l2 else None}
        kw = {"input_dim": sizes[0]} if i == 0 else {}
        pen_f, pen_k = _penalty_kwargs(penalty)
        fast_layers.append(fl.Dense(units, activation=act, **{**kw, **reg_f, **pen_f}))
        keras_layers.append(
            keras.layers.Dense(units, activation=keras_activation(act), **{**reg_k, **pen_k})
        )
        if dropout is not None and i < n_dense - 1:
            fast_layers.append(fl.Dropout(dropout))
            keras_layers.append(keras.layers.Dropout(dropout))
    fast = fastnn.Sequential(fast_layers, dtype=dtype)
    kmodel = keras.Sequential(keras_layers)
    fast.set_weights([np.asarray(w, dtype=dtype) for w in weights])
    kmodel.set_weights([np.asarray(w, dtype=dtype) for w in weights])
    return fast, kmodel


# Optimizers: non-default values are exact in float32 (binary fractions), so both libraries
# and both dtypes see the very same numbers.
OPTIMIZERS = {
    "adam_default": (lambda: fopt.Adam(), lambda: keras.optimizers.Adam()),
    "adam_custom": (
        lambda: fopt.Adam(learning_rate=0.0078125, beta_1=0.75, beta_2=0.9375,
                          epsilon=0.0009765625),
        lambda: keras.optimizers.Adam(learning_rate=0.0078125, beta_1=0.75, beta_2=0.9375,
                                      epsilon=0.0009765625),
    ),
    "sgd": (lambda: fopt.SGD(learning_rate=0.0625),
            lambda: keras.optimizers.SGD(learning_rate=0.0625)),
    "sgd_momentum": (
        lambda: fopt.SGD(learning_rate=0.03125, momentum=0.875),
        lambda: keras.optimizers.SGD(learning_rate=0.03125, momentum=0.875),
    ),
    "sgd_nesterov": (
        lambda: fopt.SGD(learning_rate=0.03125, momentum=0.875, nesterov=True),
        lambda: keras.optimizers.SGD(learning_rate=0.03125, momentum=0.875, nesterov=True),
    ),
}

# name -> (fastnn class, Keras class)
LOSSES = {
    "bce": (flosses.BinaryCrossentropy, keras.losses.BinaryCrossentropy),
    "cce": (flosses.CategoricalCrossentropy, keras.losses.CategoricalCrossentropy),
    "scce": (flosses.SparseCategoricalCrossentropy, keras.losses.SparseCategoricalCrossentropy),
    "mse": (flosses.MeanSquaredError, keras.losses.MeanSquaredError),
    "mae": (flosses.MeanAbsoluteError, keras.losses.MeanAbsoluteError),
    "huber": (flosses.Huber, keras.losses.Huber),
}


def twin_losses(name, **kwargs):
    """(fastnn loss, Keras loss); build under keras_floatx, as a Keras loss fixes its dtype."""
    f_cls, k_cls = LOSSES[name]
    return f_cls(**kwargs), k_cls(**kwargs)


def compile_twins(fast, kmodel, opt_name, loss_name, loss_kwargs=None, metrics=None):
    f_opt, k_opt = OPTIMIZERS[opt_name]
    f_loss, k_loss = twin_losses(loss_name, **(loss_kwargs or {}))
    fast.compile(optimizer=f_opt(), loss=f_loss, metrics=metrics)
    kmodel.compile(optimizer=k_opt(), loss=k_loss, metrics=metrics)


def fit_twins(fast, kmodel, x, y, **fit_kwargs):
    """Same call on both sides, never shuffled, silent."""
    kw = dict(shuffle=False, verbose=0)
    kw.update(fit_kwargs)
    fast_hist = fast.fit(x, y, **kw)
    keras_hist = kmodel.fit(x, y, **kw)
    return fast_hist, keras_hist


# ----------------------------------------------------------------------------- problems

MODEL_COMBOS = [
    # id, output activation, units, loss name, kwargs
    ("sigmoid+bce", "sigmoid", 1, "bce", {}),
    ("sigmoid+bce-multilabel", "sigmoid", 3, "bce", {}),
    ("linear+bce-logits", "linear", 1, "bce", {"from_logits": True}),
    ("softmax+cce", "softmax", 3, "cce", {}),
    ("softmax+scce", "softmax", 3, "scce", {}),
    ("linear+cce-logits", "linear", 3, "cce", {"from_logits": True}),
    ("linear+scce-logits", "linear", 3, "scce", {"from_logits": True}),
    ("linear+mse", "linear", 2, "mse", {}),
    ("relu+mse", "relu", 2, "mse", {}),
    ("tanh+mse", "tanh", 2, "mse", {}),
    ("linear+mae", "linear", 2, "mae", {}),
    ("tanh+mae", "tanh", 2, "mae", {}),
    ("linear+huber", "linear", 2, "huber", {}),
    ("linear+huber-delta", "linear", 2, "huber", {"delta": 0.375}),
]


def combo_targets(rng, n, units, loss):
    if loss == "bce":
        return (rng.random((n, units)) < 0.5).astype(float)
    if loss == "cce":
        return np.eye(units)[rng.integers(0, units, n)]
    if loss == "scce":
        return rng.integers(0, units, n)
    return rng.standard_normal((n, units))
