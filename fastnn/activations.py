"""Activation functions, callable on arrays and usable as ``Dense(activation=...)``.

Each function takes an array-like or a scalar of any real dtype (float64 stays
float64, everything else computes in float32) and returns a new array of the same
shape (0-d in, 0-d out) that also answers ``.numpy()`` (fastnn._tensor.Tensor, what
course code expects of a Keras tensor); the work is done by the same compiled
kernel the layers use.  ``Dense(...).activation`` is one of these functions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnn._kernels import ACTIVATIONS as _CODES
from fastnn._kernels import activation_forward as _activation_forward
from fastnn._tensor import wrap as _wrap

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastnn._tensor import Tensor
    from fastnn._typing import ActivationLike, ArrayLike

#: Slope of leaky_relu for negative inputs: the course's 0.01 (Keras's default is 0.2).
LEAKY_RELU_SLOPE = 0.01


def _apply(x: ArrayLike, name: str, alpha: float = 0.0) -> Tensor:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x must be a real-valued array, got dtype {x.dtype}")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    z = np.asarray(x, dtype=dtype, order="C")   # ascontiguousarray would make 0-d 1-d
    shape = z.shape
    out = np.empty(shape, dtype)
    if z.size:
        flat = z.reshape(-1, shape[-1] if z.ndim else 1)
        _activation_forward(flat, _CODES[name], alpha, out.reshape(flat.shape))
    return _wrap(out)


def linear(x: ArrayLike) -> Tensor:
    """Identity: ``x``."""
    return _apply(x, "linear")


def relu(x: ArrayLike) -> Tensor:
    """Rectified linear unit ``max(0, x)``; its derivative at 0 is taken as 0."""
    return _apply(x, "relu")


def sigmoid(x: ArrayLike) -> Tensor:
    """Logistic ``1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""
    return _apply(x, "sigmoid")


def tanh(x: ArrayLike) -> Tensor:
    """Hyperbolic tangent."""
    return _apply(x, "tanh")


def leaky_relu(x: ArrayLike, negative_slope: float = LEAKY_RELU_SLOPE) -> Tensor:
    """``x`` for ``x > 0``, else ``negative_slope * x`` (default 0.01, the course's value)."""
    return _apply(x, "leaky_relu", float(negative_slope))


def swish(x: ArrayLike) -> Tensor:
    """``x * sigmoid(x)`` (also known as SiLU)."""
    return _apply(x, "swish")


def softmax(x: ArrayLike) -> Tensor:
    """Softmax over the last axis, with the row maximum subtracted before ``exp``."""
    return _apply(x, "softmax")


_BY_NAME = {"linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh,
            "leaky_relu": leaky_relu, "swish": swish, "silu": swish, "softmax": softmax}
_NAME_OF = {linear: "linear", relu: "relu", sigmoid: "sigmoid", tanh: "tanh",
            leaky_relu: "leaky_relu", swish: "swish", softmax: "softmax"}


def get(identifier: ActivationLike) -> Callable[..., Tensor]:
    """The activation function for a name, one of this module's functions, or None
    (the identity, ``linear``, as Keras)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(f"activation: unknown name {identifier!r}; "
                             f"expected one of {sorted(_BY_NAME)}")
        return _BY_NAME[key]
    if callable(identifier) and identifier in _NAME_OF:
        return identifier
    raise TypeError("activation must be None, a name or a function from fastnn.activations, "
                    f"got {identifier!r}")


def serialize(activation: ActivationLike) -> str:
    """Canonical name of an activation function (or name), as stored in configs."""
    return _NAME_OF[get(activation)]


def code(activation: ActivationLike) -> int:
    """Kernel code of an activation function or name."""
    return _CODES[serialize(activation)]
