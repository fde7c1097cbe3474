"""Learning-rate schedules with Keras 3's formulas.

A schedule is called with the optimizer's step count *before* the update, as
Keras's optimizer does (``learning_rate(iterations)``): the first batch of a
fresh optimizer uses ``schedule(0)``.  Schedules are saved with the model through
``get_config`` / ``serialize`` and rebuilt by ``deserialize``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnn import _validation

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastnn._typing import ConfigDict, NDArray


class LearningRateSchedule:
    """Base class: a callable ``step -> learning rate`` with a JSON-able config.

    Subclasses define ``__call__(step)`` and ``get_config()``; ``from_config``
    calls the constructor with the config's entries.
    """

    def __call__(self, step: float) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step)")

    def _values(self, steps: NDArray[np.int64]) -> NDArray[np.float64]:
        """The rate at each of `steps` (int64 array).  fit asks for a whole epoch at once;
        the built-in schedules compute it in one NumPy expression, which __call__ shares,
        so a step's rate is the same bits either way."""
        return np.array([float(self(int(s))) for s in steps])

    def get_config(self) -> ConfigDict:
        raise NotImplementedError(f"{type(self).__name__} must define get_config()")

    @classmethod
    def from_config(cls, config: ConfigDict) -> LearningRateSchedule:
        return cls(**config)


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return name


def _check_decay_args(initial_learning_rate: float, decay_steps: float, decay_rate: float,
                      staircase: bool) -> tuple[float, float, float]:
    lr = _validation.check_float(initial_learning_rate, "initial_learning_rate", low=0)
    steps = _validation.check_float(decay_steps, "decay_steps", low=0, low_open=True)
    rate = _validation.check_float(decay_rate, "decay_rate", low=0)
    if not isinstance(staircase, bool):
        raise TypeError(f"staircase must be a bool, got {type(staircase).__name__}")
    return lr, steps, rate


def _check_step(step: float) -> float:
    if isinstance(step, bool):
        raise TypeError("step must be a number, got bool")
    return _validation.check_float(step, "step", low=0)


class _DecaySchedule(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: their arguments, checks and
    config, and the progress ``step / decay_steps`` (floored with `staircase`)."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool, name: str) -> None:
        _check_decay_args(initial_learning_rate, decay_steps, decay_rate, staircase)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = _check_name(name)

    def __call__(self, step: float) -> float:
        return float(self._values(np.array([_check_step(step)]))[0])

    def _progress(self, steps: NDArray[np.int64]) -> NDArray[np.float64]:
        p = np.asarray(steps, dtype=np.float64) / float(self.decay_steps)
        return np.floor(p) if self.staircase else p

    def get_config(self) -> ConfigDict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_DecaySchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (Keras).

    Parameters
    ----------
    initial_learning_rate : float
        >= 0.
    decay_steps : float
        > 0.
    decay_rate : float
        >= 0.
    staircase : bool, default False
        Use ``floor(step / decay_steps)``: the rate drops in steps.
    name : str, default "ExponentialDecay"
    """

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool = False, name: str = "ExponentialDecay") -> None:
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _values(self, steps: NDArray[np.int64]) -> NDArray[np.float64]:
        return float(self.initial_learning_rate) * np.power(float(self.decay_rate),
                                                             self._progress(steps))


class InverseTimeDecay(_DecaySchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (Keras).

    Parameters
    ----------
    initial_learning_rate : float
        >= 0.
    decay_steps : float
        > 0.
    decay_rate : float
        >= 0.
    staircase : bool, default False
        Use ``floor(step / decay_steps)``.
    name : str, default "InverseTimeDecay"
    """

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float,
                 staircase: bool = False, name: str = "InverseTimeDecay") -> None:
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _values(self, steps: NDArray[np.int64]) -> NDArray[np.float64]:
        return float(self.initial_learning_rate) / (1.0 + float(self.decay_rate)
                                                    * self._progress(steps))


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, then ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, and ``values[-1]`` after the last (Keras).

    Parameters
    ----------
    boundaries : list of float
        Increasing step numbers, one fewer than `values`.
    values : list of float
        Learning rates, each >= 0.
    name : str, default "PiecewiseConstant"
    """

    def __init__(self, boundaries: Sequence[float], values: Sequence[float],
                 name: str = "PiecewiseConstant") -> None:
        for arg, label in ((boundaries, "boundaries"), (values, "values")):
            if not isinstance(arg, (list, tuple)):
                raise TypeError(f"{label} must be a list, got {type(arg).__name__}")
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"boundaries must have one element fewer than values, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        checked = [_validation.check_float(b, "boundaries") for b in boundaries]
        if any(b >= c for b, c in zip(checked[:-1], checked[1:], strict=True)):
            raise ValueError(f"boundaries must be increasing, got {list(boundaries)}")
        for value in values:
            _validation.check_float(value, "values", low=0)
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = _check_name(name)

    def __call__(self, step: float) -> float:
        return float(self._values(np.array([_check_step(step)]))[0])

    def _values(self, steps: NDArray[np.int64]) -> NDArray[np.float64]:
        # side="left": the first boundary >= step, so values[i] covers (b[i-1], b[i]]
        index = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64),
                                np.asarray(steps, dtype=np.float64), side="left")
        return np.asarray(self.values, dtype=np.float64)[index]

    def get_config(self) -> ConfigDict:
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


_BY_NAME: dict[str, type[LearningRateSchedule]] = {cls.__name__: cls for cls in
            (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay)}


def serialize(schedule: LearningRateSchedule) -> ConfigDict:
    """``{"class_name": ..., "config": ...}`` of a built-in schedule (JSON-able)."""
    name = type(schedule).__name__
    if _BY_NAME.get(name) is not type(schedule):
        raise ValueError(f"only fastnn's built-in schedules can be saved, got {name}")
    return {"class_name": name, "config": schedule.get_config()}


def deserialize(config: ConfigDict) -> LearningRateSchedule:
    """The schedule described by ``serialize``'s output."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError(f"not a serialized learning-rate schedule: {config!r}")
    cls = _BY_NAME.get(config.get("class_name"))  # type: ignore[arg-type]  # a miss is None

    if cls is None:
        raise ValueError(f"unknown learning-rate schedule {config.get('class_name')!r}")
    return cls.from_config(config["config"])


__all__ = ["LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay",
           "PiecewiseConstantDecay", "serialize", "deserialize"]
