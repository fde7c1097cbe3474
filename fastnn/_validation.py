"""Every boundary check: the only place user data becomes kernel-ready.

Each function raises ValueError (bad value or shape) or TypeError (wrong type)
with a message naming the argument, and returns C-contiguous arrays of the
model's dtype that the kernels can read without further checks.
"""
import math
import numbers

import numpy as np

from fastnn._kernels import all_finite


def check_int(value, name, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _real_array(value, name):
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must contain numbers, got object values") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    return arr


def _check_finite(arr, name):
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")


def as_finite(arr, name, dtype):
    """`arr` as a C-contiguous array of `dtype` whose every value is finite *in `dtype`*.

    The check runs after the cast: a float64 value beyond float32's range (|v| > 3.4e38)
    is finite where it is given but becomes inf in a float32 model, and would train to
    garbage.  Integers always fit both float dtypes, so only float input is scanned.
    """
    with np.errstate(over="ignore"):  # an overflowing value becomes inf: reported below
        out = np.ascontiguousarray(arr, dtype=dtype)
    # the compiled scan allocates nothing (np.isfinite(out).all() would make a bool
    # temporary of out.size bytes: 25% of a float32 input); out is C-contiguous, so the
    # reshape is a view
    if arr.dtype.kind == "f" and not all_finite(out.reshape(-1)):
        _check_finite(arr, name)  # NaN or inf in the input itself: the plainer message
        raise ValueError(f"{name} contains values beyond the range of {out.dtype.name} "
                         f"(|value| > {np.finfo(out.dtype).max:.4g}), the dtype the model "
                         f"computes in")
    return out


def as_features(x, name, dtype, n_features=None):
    """2-D, non-empty, finite, C-contiguous array of `dtype`."""
    arr = _real_array(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D of shape (n_samples, n_features), "
                         f"got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, but the model expects "
                         f"{n_features}")
    return as_finite(arr, name, dtype)


def as_inputs(x, name, dtype, shape=None):
    """Non-empty, finite, C-contiguous array of `dtype` of shape ``(n, *shape)``; any
    shape of rank >= 2 when `shape` is None.  Rank-1 shapes (and 2-D data when the shape
    is unknown) go through `as_features`, so dense models see exactly its checks."""
    if shape is not None and len(shape) == 1:
        return as_features(x, name, dtype, shape[0])
    arr = _real_array(x, name)
    if shape is None and arr.ndim <= 2:
        return as_features(arr, name, dtype)
    if shape is not None and arr.shape[1:] != tuple(shape):
        want = ", ".join(str(s) for s in shape)
        raise ValueError(f"{name} must have shape (n_samples, {want}) to match the model's "
                         f"input, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    return as_finite(arr, name, dtype)


def check_rows(n, other, name, other_name="x"):
    if other != n:
        raise ValueError(f"{name} has {other} rows but {other_name} has {n}")


def as_labels(y, name, n, n_classes):
    """Integer class labels of shape (n,) or (n, 1) -> int32 array of shape (n,)."""
    arr = _real_array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must hold integer labels of shape (n,) or (n, 1), "
                         f"got shape {np.shape(y)}")
    check_rows(n, arr.shape[0], name)
    if arr.dtype.kind == "f":
        _check_finite(arr, name)
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} labels must lie in [0, {n_classes - 1}] for an output of "
                         f"width {n_classes}, got values in [{arr.min()}, {arr.max()}]")
    return np.ascontiguousarray(arr, dtype=np.intc)


def as_dense_targets(y, name, n, width, dtype):
    """Targets of shape (n, width) ((n,) allowed for width 1), finite, of `dtype`."""
    arr = _real_array(y, name)
    if arr.ndim == 1 and width == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{name} must have shape (n, {width}) to match the model's output, "
                         f"got {np.shape(y)}")
    check_rows(n, arr.shape[0], name)
    return as_finite(arr, name, dtype)


def as_sample_weight(sample_weight, n, dtype, name="sample_weight"):
    if sample_weight is None:
        return None
    arr = _real_array(sample_weight, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got {arr.shape}")
    check_rows(n, arr.shape[0], name)
    out = as_finite(arr, name, dtype)
    if (out < 0).any():
        raise ValueError(f"{name} must be >= 0")
    return out


def class_weights(class_weight, labels, dtype):
    """Per-row weights from a {class: weight} dict and int labels of shape (n,)."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class: weight}}, got "
                        f"{type(class_weight).__name__}")
    table = {}
    for key, value in class_weight.items():
        k = check_int(key, "class_weight key", 0)
        table[k] = check_float(value, f"class_weight[{k}]", low=0)
        if table[k] > float(np.finfo(dtype).max):  # finite in Python, inf in a float32 model
            raise ValueError(f"class_weight[{k}] is beyond the range of {np.dtype(dtype).name}"
                             f" (> {np.finfo(dtype).max:.4g}), the dtype the model computes in")
    # a class without an entry keeps weight 1 (Keras)
    lookup = np.ones(max(max(table), int(labels.max(initial=0))) + 1)
    for k, v in table.items():
        lookup[k] = v
    return np.ascontiguousarray(lookup[labels], dtype=dtype)
