"""Optimizers with Keras 3's update rules; the arithmetic runs in fastnn._kernels.

An optimizer owns its state (one flat buffer per slot, the same length as the
model's flat parameter vector) and its step counter ``iterations``; calling
``fit`` again continues from both, as in Keras.  Gradient clipping and AdamW's
weight decay run in the same compiled update call as the step itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnn import _validation
from fastnn.optimizers import schedules
from fastnn.optimizers.schedules import LearningRateSchedule

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from fastnn._typing import ConfigDict, DTypeLike, FloatArray, NDArray

    #: A learning rate: a float, a schedule, or any callable ``step -> rate``.
    LearningRate = float | LearningRateSchedule | Callable[[int], float]

_CLIP_ARGS = ("clipnorm", "clipvalue", "global_clipnorm")


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


class Optimizer:
    """Base class: learning rate (float, schedule or callable), clipping, state ownership.

    Parameters shared by every optimizer
    ------------------------------------
    learning_rate : float, LearningRateSchedule or callable
        A schedule or callable is called with the 0-based step count before each update
        (``optimizer.iterations``), as Keras calls a schedule.
    clipnorm : float, optional
        Clip the gradient of each variable (each layer's kernel and bias separately) to
        this L2 norm: ``g * clipnorm / max(||g||, clipnorm)``.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Scale all gradients together so that their joint L2 norm is at most this.

    At most one of the three clipping arguments may be set (Keras raises likewise);
    0 means no clipping, as in Keras.  Clipping acts on the gradient after the L2
    penalty's term is added, as Keras clips the gradient of the whole loss.
    """

    kind: str | None = None
    _n_slots = 0

    def __init__(self, learning_rate: LearningRate, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None) -> None:
        self.learning_rate: LearningRate
        if isinstance(learning_rate, LearningRateSchedule) or callable(learning_rate):
            self.learning_rate = learning_rate
        else:
            self.learning_rate = _validation.check_float(learning_rate, "learning_rate", low=0)
        given = {name: value for name, value in zip(
            _CLIP_ARGS, (clipnorm, clipvalue, global_clipnorm), strict=True) if value is not None}
        for name, value in given.items():
            _validation.check_float(value, name, low=0)
        if len(given) > 1:
            raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be "
                             f"set, got {', '.join(f'{k}={v}' for k, v in given.items())}")
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        self.iterations = 0
        self._slots: list[FloatArray] = []
        self._constant_rates: NDArray[np.float64] | None = None

    def _learning_rates(self, first_step: int, count: int) -> NDArray[np.float64]:
        """Learning rate of each of `count` steps from `first_step` (schedules called per step)."""
        if not callable(self.learning_rate):
            cached = self._constant_rates
            if cached is None or cached.shape[0] != count or cached[0] != self.learning_rate:
                cached = self._constant_rates = np.full(count, self.learning_rate)
            return cached
        if isinstance(self.learning_rate, LearningRateSchedule):
            steps = np.arange(first_step, first_step + count, dtype=np.int64)
            rates = np.asarray(self.learning_rate._values(steps), dtype=np.float64)
            if rates.shape != (count,) or not (np.isfinite(rates).all() and (rates >= 0).all()):
                raise ValueError("learning_rate(step) must be a finite number >= 0 for "
                                 f"steps {first_step}..{first_step + count - 1}")
            return rates
        rates = np.empty(count)
        for i in range(count):
            value = self.learning_rate(first_step + i)
            rates[i] = _validation.check_float(float(value), "learning_rate(step)", low=0)
        return rates

    def _attach(self, engine: Any, n_params: int, dtype: DTypeLike,
                segments: NDArray[np.int64] | None = None) -> None:
        """Hand the state buffers and hyper-parameters to a compiled Engine (per kind)."""
        raise NotImplementedError(f"{type(self).__name__} does not define _attach")

    def get_config(self) -> ConfigDict:
        """The optimizer's hyper-parameters (JSON-able); ``from_config`` inverts it."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_config")

    def _ensure_state(self, n_params: int, dtype: DTypeLike) -> list[FloatArray]:
        """Allocate zeroed state on first use or when the parameter vector changed."""
        if len(self._slots) != self._n_slots or any(
                s.shape != (n_params,) or s.dtype != dtype for s in self._slots):
            self._slots = [np.zeros(n_params, dtype) for _ in range(self._n_slots)]
            self.iterations = 0
        return self._slots

    def _clip_options(self, segments: NDArray[np.int64] | None) -> dict[str, Any]:
        """Engine keywords for clipping (0 = off); `segments` = (offset, length) per variable."""
        return {"clipnorm": self.clipnorm or 0.0, "clipvalue": self.clipvalue or 0.0,
                "global_clipnorm": self.global_clipnorm or 0.0,
                "segments": segments if self.clipnorm else None}

    def _config_lr(self) -> float | ConfigDict:
        if isinstance(self.learning_rate, LearningRateSchedule):
            return schedules.serialize(self.learning_rate)
        if callable(self.learning_rate):
            raise ValueError("an optimizer with a callable learning_rate cannot be saved; "
                             "use a schedule from fastnn.optimizers.schedules")
        return self.learning_rate

    def _base_config(self) -> ConfigDict:
        return {"name": self.kind, "learning_rate": self._config_lr(),
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Optimizer:
        """The optimizer described by ``get_config()`` (the ``name`` entry is optional)."""
        config = dict(config)
        config.pop("name", None)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.deserialize(lr)
        return cls(**config)


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    ``w -= lr * g``; with momentum ``u = momentum * u - lr * g`` then ``w += u``
    (Nesterov: ``w += momentum * u - lr * g``).

    Parameters
    ----------
    learning_rate : float, LearningRateSchedule or callable, default 0.01
    momentum : float, default 0.0
        In [0, 1].
    nesterov : bool, default False
    clipnorm, clipvalue, global_clipnorm : float, optional
        See `Optimizer`.
    """

    kind = "sgd"

    def __init__(self, learning_rate: LearningRate = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, *, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.momentum = _validation.check_float(momentum, "momentum", low=0, high=1)
        self.nesterov = _check_bool(nesterov, "nesterov")
        self._n_slots = 1 if self.momentum else 0

    def _attach(self, engine: Any, n_params: int, dtype: DTypeLike,
                segments: NDArray[np.int64] | None = None) -> None:
        slots = self._ensure_state(n_params, dtype)
        engine.set_optimizer("sgd", slots[0] if slots else None, None,
                             momentum=self.momentum, nesterov=self.nesterov,
                             **self._clip_options(segments))

    def get_config(self) -> ConfigDict:
        return {**self._base_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras's update rule and defaults.

    ``m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``.
    Keras adds epsilon to ``sqrt(v)`` of the *uncorrected* v, with default 1e-7
    (the Adam paper and the course write 1e-8 on the corrected v); fastnn follows Keras.

    Parameters
    ----------
    learning_rate : float, LearningRateSchedule or callable, default 0.001
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
    epsilon : float, default 1e-7
    clipnorm, clipvalue, global_clipnorm : float, optional
        See `Optimizer`.
    """

    kind = "adam"
    _n_slots = 2

    def __init__(self, learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, *, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.beta_1 = _validation.check_float(beta_1, "beta_1", low=0, high=1, high_open=True)
        self.beta_2 = _validation.check_float(beta_2, "beta_2", low=0, high=1, high_open=True)
        self.epsilon = _validation.check_float(epsilon, "epsilon", low=0)

    def _attach(self, engine: Any, n_params: int, dtype: DTypeLike,
                segments: NDArray[np.int64] | None = None) -> None:
        m, v = self._ensure_state(n_params, dtype)
        engine.set_optimizer(self.kind, m, v, beta_1=self.beta_1, beta_2=self.beta_2,
                             epsilon=self.epsilon, **self._engine_extra(),
                             **self._clip_options(segments))

    def _engine_extra(self) -> dict[str, float]:
        return {}

    def get_config(self) -> ConfigDict:
        return {**self._base_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras's AdamW).

    Before each Adam step every trainable variable -- kernels and biases alike, as
    Keras decays all variables unless told otherwise -- is scaled:
    ``w *= 1 - weight_decay * lr``, with the step's learning rate.

    Parameters
    ----------
    learning_rate : float, LearningRateSchedule or callable, default 0.001
    weight_decay : float, default 0.004
        >= 0.
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
    epsilon : float, default 1e-7
    clipnorm, clipvalue, global_clipnorm : float, optional
        See `Optimizer`.
    """

    kind = "adamw"

    def __init__(self, learning_rate: LearningRate = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, *,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        if weight_decay is None:  # Keras's AdamW rejects None too
            raise ValueError("weight_decay must be a float, got None")
        self.weight_decay = _validation.check_float(weight_decay, "weight_decay", low=0)

    def _engine_extra(self) -> dict[str, float]:
        return {"weight_decay": self.weight_decay}

    def get_config(self) -> ConfigDict:
        return {**super().get_config(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """RMSprop with Keras's update rule and defaults.

    ``v = rho v + (1 - rho) g^2``; centered: ``a = rho a + (1 - rho) g`` and
    ``d = sqrt(v - a^2 + epsilon)``, else ``d = sqrt(v + epsilon)``; ``step = lr g / d``;
    with momentum ``u = momentum u + step; w -= u``, else ``w -= step``.
    Keras adds epsilon inside the square root (others add it outside).

    Parameters
    ----------
    learning_rate : float, LearningRateSchedule or callable, default 0.001
    rho : float, default 0.9
        In [0, 1).
    momentum : float, default 0.0
        In [0, 1].
    epsilon : float, default 1e-7
    centered : bool, default False
        Normalise by the estimated variance of the gradient instead of its mean square.
    clipnorm, clipvalue, global_clipnorm : float, optional
        See `Optimizer`.
    """

    kind = "rmsprop"

    def __init__(self, learning_rate: LearningRate = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False, *,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None) -> None:
        super().__init__(learning_rate, clipnorm, clipvalue, global_clipnorm)
        self.rho = _validation.check_float(rho, "rho", low=0, high=1, high_open=True)
        self.momentum = _validation.check_float(momentum, "momentum", low=0, high=1)
        self.epsilon = _validation.check_float(epsilon, "epsilon", low=0)
        self.centered = _check_bool(centered, "centered")
        # velocity, then the momentum buffer and the mean gradient when those are on
        self._n_slots = 1 + (self.momentum > 0) + self.centered

    def _attach(self, engine: Any, n_params: int, dtype: DTypeLike,
                segments: NDArray[np.int64] | None = None) -> None:
        slots = list(self._ensure_state(n_params, dtype))
        velocity = slots.pop(0)
        mom = slots.pop(0) if self.momentum > 0 else None
        avg = slots.pop(0) if self.centered else None
        engine.set_optimizer("rmsprop", velocity, mom, momentum=self.momentum,
                             epsilon=self.epsilon, rho=self.rho, centered=self.centered,
                             average_grad=avg, **self._clip_options(segments))

    def get_config(self) -> ConfigDict:
        return {**self._base_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


_BY_NAME: dict[str, type[SGD | Adam | RMSprop]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW,
                                                   "rmsprop": RMSprop}


def get(identifier: str | Optimizer | None) -> Optimizer:
    """An Optimizer from a name ("adam", "adamw", "rmsprop", "sgd"), an instance or None (Adam)."""
    if identifier is None:
        return Adam()
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(f"optimizer: unknown name {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)}")
        return _BY_NAME[key]()
    raise TypeError(f"optimizer must be a name or a fastnn.optimizers.Optimizer, "
                    f"got {identifier!r}")


def from_config(config: ConfigDict) -> Optimizer:
    """The optimizer described by ``optimizer.get_config()``."""
    if not isinstance(config, dict) or config.get("name") not in _BY_NAME:
        raise ValueError(f"not an optimizer config: {config!r}")
    return _BY_NAME[config["name"]].from_config(config)


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "schedules", "get", "from_config"]
