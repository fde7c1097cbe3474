"""Utilities with Keras's names: ``to_categorical`` and ``set_random_seed``; and
``plot_history`` (matplotlib, imported only when it draws)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnn._plot import plot_history
from fastnn._random import set_random_seed

if TYPE_CHECKING:
    from fastnn._typing import ArrayLike, NDArray

__all__ = ["to_categorical", "set_random_seed", "plot_history"]


def to_categorical(x: ArrayLike, num_classes: int | None = None) -> NDArray[np.float64]:
    """One-hot encode integer class labels, as ``keras.utils.to_categorical``.

    Parameters
    ----------
    x : array-like of non-negative ints
        Labels of any shape; a trailing axis of length 1 is dropped first (Keras).
    num_classes : int, optional
        Default ``max(x) + 1``.

    Returns
    -------
    ndarray of float64, shape ``x.shape + (num_classes,)``

    Unlike Keras, which truncates fractional labels and wraps negative ones, both raise
    ValueError.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"x must hold integer labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError("x must hold integer labels")
    labels = arr.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.size and labels.min() < 0:
        raise ValueError(f"x must hold labels >= 0, got {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"x has label {labels.max()}, outside [0, {num_classes})")
    out = np.zeros((*labels.shape, int(num_classes)))   # float64, as Keras returns
    np.put_along_axis(out, labels[..., None], 1.0, axis=-1)
    return out
