"""Type aliases shared by the public annotations (for type checkers only).

The public modules import this module under ``typing.TYPE_CHECKING`` (with
``from __future__ import annotations``), so ``import fastnn`` never loads it, nor
``numpy.typing``.  Inputs are ``ArrayLike`` (anything ``np.asarray`` accepts);
outputs are ``NDArray``s, or ``Tensor`` (an ndarray subclass with ``.numpy()``).
The annotations are for static checkers (mypy, pyright): ``typing.get_type_hints``
at run time cannot resolve these names, because no module imports them then.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = ["ArrayLike", "DTypeLike", "NDArray", "FloatArray", "Logs", "Verbose",
           "ActivationLike", "LossAndMetrics", "EvaluateResult", "ClassWeight",
           "ValidationData", "ConfigDict", "PathLike"]

#: A float32/float64 array: weights, predictions, one-hot targets.
FloatArray: TypeAlias = NDArray[np.floating[Any]]

#: What fit / evaluate report per epoch or call: ``{"loss": ..., "<metric>": ...}``.
Logs: TypeAlias = dict[str, float]

#: ``verbose`` of fit / evaluate / predict: "auto", 0, 1 or 2.
Verbose: TypeAlias = Literal["auto"] | int

#: An activation: a name, one of fastnn.activations' functions, or None (linear).
ActivationLike: TypeAlias = str | Callable[..., Any] | None

#: evaluate / train_on_batch / test_on_batch without ``return_dict=True``: the loss as a
#: float when no metrics were compiled, else the list ``[loss, *metrics]``.  Which of
#: the two depends on ``compile(metrics=...)``, which a type checker cannot follow, so
#: it is Any (typeshed's convention for such results): both ``loss = ...`` and
#: ``loss, acc = ...`` type-check.
LossAndMetrics: TypeAlias = Any

#: The implementation's precise return type (what ``return_dict: bool`` gives).
EvaluateResult: TypeAlias = float | list[float] | dict[str, float]

#: ``class_weight``: ``{class index: weight}``.
ClassWeight: TypeAlias = Mapping[int, float]

#: ``validation_data``: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``.
ValidationData: TypeAlias = (tuple[ArrayLike, ArrayLike]
                             | tuple[ArrayLike, ArrayLike, ArrayLike | None] | list[Any])

#: A JSON-able config dict (get_config / from_config).
ConfigDict: TypeAlias = dict[str, Any]

#: A file path: str or os.PathLike.
PathLike: TypeAlias = str | os.PathLike[str]
