"""Loss functions with Keras semantics: mean over the batch of a per-sample loss.

A loss object is callable on its own (``loss(y_true, y_pred) -> float``) and
tells the model which fused kernel to run during ``fit``: when the output layer
is sigmoid (softmax) and the loss is binary (categorical) cross-entropy with
``from_logits=False``, the loss and its gradient are computed from that layer's
pre-activation values in one stable step, as Keras does on TensorFlow.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnn import _kernels, _validation

if TYPE_CHECKING:
    from typing import Any

    from fastnn._typing import ArrayLike, ConfigDict


class Loss:
    """Base class.  Subclasses set `name`, the kernel names and the target kind."""

    name: str | None = None
    sparse = False                    # integer labels instead of dense targets
    _logit_kernel: str | None = None  # kernel on logits (from_logits=True, or fused)
    _prob_kernel: str | None = None   # kernel on outputs (probabilities, or MSE's values)
    _fuses_with: str | None = None    # output activation whose pre-activation feeds _logit_kernel

    def __init__(self, from_logits: bool = False) -> None:
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {type(from_logits).__name__}")
        self.from_logits = bool(from_logits)

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"

    def _kernel_params(self) -> tuple[float, ...]:
        """The loss kernel's trailing arguments, also the Engine's (Huber: delta)."""
        return ()

    def kernel_for(self, output_activation: str | None) -> tuple[str | None, bool]:
        """(kernel name, fused) for a model whose last layer has this activation."""
        if self.from_logits:
            return self._logit_kernel, False
        # a loss without a fused form (MSE, MAE, Huber) has _fuses_with None, which must
        # not match the None of a model whose last layer is not Dense
        if self._fuses_with is not None and output_activation == self._fuses_with:
            return self._logit_kernel, True
        return self._prob_kernel, False

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike,
                 sample_weight: ArrayLike | None = None) -> float:
        """Mean over the batch of the per-sample loss (probabilities clipped to [1e-7, 1-1e-7]).

        Parameters
        ----------
        y_true : array-like of shape (n,), (n, 1) or (n, k)
        y_pred : array-like of shape (n, k) (or (n,) for a single output)
        sample_weight : array-like of shape (n,), optional
        """
        pred = _validation._real_array(y_pred, "y_pred")
        dtype = np.float64 if pred.dtype == np.float64 else np.float32
        if pred.ndim == 1:
            pred = pred[:, None]
        pred = _validation.as_features(pred, "y_pred", dtype)
        n, k = pred.shape
        kernel = getattr(_kernels, self._logit_kernel if self.from_logits  # type: ignore[arg-type]
                         else self._prob_kernel)  # every concrete loss names its kernels
        if self.sparse:
            target = _validation.as_labels(y_true, "y_true", n, k)
        else:
            target = _validation.as_dense_targets(y_true, "y_true", n, k, dtype)
        sw = _validation.as_sample_weight(sample_weight, n, dtype)
        grad = np.empty_like(pred)
        return kernel(pred, target, sw, 1.0 / n, grad, *self._kernel_params()) / n


class BinaryCrossentropy(Loss):
    """Binary cross-entropy on 0/1 targets of shape (n,), (n, 1) or (n, k) (multi-label),
    averaged over the last axis and then over the batch."""

    name = "binary_crossentropy"
    _logit_kernel, _prob_kernel, _fuses_with = "sigmoid_bce", "bce", "sigmoid"


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot or soft targets of shape (n, k).  From probabilities,
    each row is rescaled to sum to 1 and then clipped (Keras's rule)."""

    name = "categorical_crossentropy"
    _logit_kernel, _prob_kernel, _fuses_with = "softmax_xent", "cce", "softmax"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer labels in [0, k) of shape (n,) or (n, 1)."""

    name = "sparse_categorical_crossentropy"
    sparse = True
    _logit_kernel, _prob_kernel, _fuses_with = "sparse_softmax_xent", "sparse_cce", "softmax"


class _RegressionLoss(Loss):
    """A loss on real-valued targets without a from_logits mode."""

    def __init__(self) -> None:
        super().__init__(from_logits=False)

    def get_config(self) -> ConfigDict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanSquaredError(_RegressionLoss):
    """Mean over the last axis of ``(y_true - y_pred) ** 2``, then over the batch."""

    name = "mean_squared_error"
    _logit_kernel = _prob_kernel = "mse"


class MeanAbsoluteError(_RegressionLoss):
    """Mean over the last axis of ``|y_true - y_pred|``, then over the batch.

    The gradient is ``sign(y_pred - y_true)``, with 0 where the two are equal (the
    subgradient that TensorFlow's and torch's ``abs`` give, so Keras's too).
    """

    name = "mean_absolute_error"
    _logit_kernel = _prob_kernel = "mae"


class Huber(Loss):
    """Huber loss, Keras 3's formula: with ``e = y_pred - y_true``, ``0.5 * e ** 2`` where
    ``|e| <= delta`` and ``delta * |e| - 0.5 * delta ** 2`` elsewhere; mean over the last
    axis, then over the batch.

    Parameters
    ----------
    delta : float, default 1.0
        Where the loss turns from quadratic to linear; a finite number > 0.
    """

    name = "huber_loss"   # Keras's name for the instance; "huber" in compile
    _logit_kernel = _prob_kernel = "huber"

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__(from_logits=False)
        if isinstance(delta, (bool, np.bool_)) or not isinstance(
                delta, (int, float, np.integer, np.floating)):
            raise TypeError(f"delta must be a number, got {type(delta).__name__}")
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a finite number > 0, got {delta}")
        self.delta = float(delta)

    def _kernel_params(self) -> tuple[float, ...]:
        return (self.delta,)

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "delta": self.delta}

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta})"


_CLASSES = (BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
            MeanSquaredError, MeanAbsoluteError, Huber)
# compile(loss=...) names, matched case-insensitively: Keras's function names, its short
# aliases and the class names
_BY_NAME: dict[str, type[Loss]] = {
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    **{cls.__name__.lower(): cls for cls in _CLASSES},
}
# get_config()["name"] -> class, for from_config
_BY_CONFIG_NAME: dict[Any, type[Loss]] = {cls.name: cls for cls in _CLASSES}


def get(identifier: str | Loss) -> Loss:
    """A Loss from a name or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(f"loss: unknown name {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)}")
        return _BY_NAME[key]()
    raise TypeError(f"loss must be a name or a fastnn.losses.Loss, got {identifier!r}")


def from_config(config: ConfigDict) -> Loss:
    """The loss that `Loss.get_config` described."""
    config = dict(config)
    cls = _BY_CONFIG_NAME.get(config.pop("name", None))
    if cls is None:
        raise ValueError(f"loss: unknown config {config!r}")
    return cls(**config)
