"""Metric names and how "accuracy" resolves (Keras 3's rule, from the shapes)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastnn._kernels import METRICS as _CODES

if TYPE_CHECKING:
    from collections.abc import Sequence

_ALIASES = {"mse": "mse", "mean_squared_error": "mse", "mae": "mae",
            "mean_absolute_error": "mae", "binary_accuracy": "binary_accuracy",
            "categorical_accuracy": "categorical_accuracy",
            "sparse_categorical_accuracy": "sparse_categorical_accuracy",
            "accuracy": "accuracy", "acc": "accuracy"}


def check_names(metrics: Sequence[str] | None) -> list[str]:
    """Validate compile(metrics=...) and return the list of names."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names, got {metrics!r}")
    names = []
    for m in metrics:
        if not isinstance(m, str):
            raise TypeError(f"metrics entries must be names, got {m!r}")
        if m.lower() not in _ALIASES:
            raise ValueError(f"metrics: unknown name {m!r}; expected one of {sorted(_ALIASES)}")
        names.append(m)
    if len(set(names)) != len(names):
        raise ValueError(f"metrics: duplicate names in {names}")
    if len(names) > 8:
        raise ValueError("metrics: at most 8 metrics")
    return names


def resolve(name: str, sparse_targets: bool, n_outputs: int) -> int:
    """Kernel code for a metric name.  "accuracy" follows Keras 3: integer labels ->
    sparse categorical; one output column -> binary; same shape -> categorical."""
    canonical = _ALIASES[name.lower()]
    if canonical == "accuracy":
        if sparse_targets:
            canonical = "sparse_categorical_accuracy"
        elif n_outputs == 1:
            canonical = "binary_accuracy"
        else:
            canonical = "categorical_accuracy"
    if sparse_targets and canonical != "sparse_categorical_accuracy":
        raise ValueError(f"metrics: {name!r} needs dense targets, but the loss takes "
                         "integer labels")
    if not sparse_targets and canonical == "sparse_categorical_accuracy":
        raise ValueError("metrics: 'sparse_categorical_accuracy' needs integer labels "
                         "(a sparse loss)")
    return _CODES[canonical]
