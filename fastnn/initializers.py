"""Weight initialisers with Keras 3's formulas.

The random ones draw from fastnn's current stream (the global one seeded by
``fastnn.set_random_seed``, or a fit's own under ``random_state``), unless they were given a
``seed``: then, as in Keras 3, every call draws the same values from a generator of that
seed, and the shared stream is left untouched.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnn import _random

if TYPE_CHECKING:
    from typing import Any

    from fastnn._typing import ConfigDict, DTypeLike, NDArray


class Initializer:
    """Base class: ``init(shape, dtype)`` returns a new array."""

    name: str | None = None

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        raise NotImplementedError

    def get_config(self) -> ConfigDict:
        return {"name": self.name}


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras computes them: a convolution kernel (..., c_in, filters)
    counts its receptive field (the product of the leading axes) times the channels."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


class RandomInitializer(Initializer):
    """Base of the random initialisers: ``seed=None`` draws from fastnn's stream; an int
    makes every call return the same values (Keras 3's seeded initialisers)."""

    seed: int | None

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise TypeError(f"seed must be None or an int >= 0, got {seed!r}")
        self.seed = seed

    def _rng(self) -> np.random.Generator:
        return _random.generator() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "seed": self.seed}


class GlorotUniform(RandomInitializer):
    """Uniform on ``[-l, l]`` with ``l = sqrt(6 / (fan_in + fan_out))`` (Keras default)."""

    name = "glorot_uniform"

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return self._rng().uniform(-limit, limit, size=shape).astype(dtype)


class GlorotNormal(RandomInitializer):
    """Truncated normal with ``stddev = sqrt(2 / (fan_in + fan_out))`` (Keras)."""

    name = "glorot_normal"

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        fan_in, fan_out = _fans(shape)
        return _truncated_normal(self._rng(), shape,
                                 math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


class HeNormal(RandomInitializer):
    """Truncated normal with ``stddev = sqrt(2 / fan_in)`` (Keras 3's VarianceScaling)."""

    name = "he_normal"

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        return _truncated_normal(self._rng(), shape,
                                 math.sqrt(2.0 / _fans(shape)[0])).astype(dtype)


class HeUniform(RandomInitializer):
    """Uniform on ``[-l, l]`` with ``l = sqrt(6 / fan_in)``."""

    name = "he_uniform"

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        limit = math.sqrt(6.0 / _fans(shape)[0])
        return self._rng().uniform(-limit, limit, size=shape).astype(dtype)


class Zeros(Initializer):
    name = "zeros"

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        return np.zeros(shape, dtype)


class Ones(Initializer):
    name = "ones"

    def __call__(self, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        return np.ones(shape, dtype)


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...],
                      target_std: float) -> NDArray[np.float64]:
    """Normal truncated at two standard deviations, rescaled so its std is target_std.

    0.8796... is the standard deviation of a unit normal truncated to [-2, 2]; Keras
    divides by it so that the truncated draw keeps the requested variance.
    """
    std = target_std / 0.87962566103423978
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2
    return out * std


_ALL = {cls.name: cls for cls in (GlorotUniform, GlorotNormal, HeNormal, HeUniform, Zeros, Ones)}


def serialize(initializer: Initializer) -> str | dict[str, Any]:
    """What a layer config stores: the name, or ``{"name", "seed"}`` for a seeded one."""
    config = initializer.get_config()
    return config if config.get("seed") is not None else str(initializer.name)


def get(identifier: str | dict[str, Any] | Initializer, argument: str) -> Initializer:
    """An Initializer from a name, a config dict ``{"name": ..., "seed": ...}`` or an
    instance; `argument` names the parameter in errors."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        name = config.pop("name", None)
        if not isinstance(name, str) or name.lower() not in _ALL:
            raise ValueError(f"{argument}: unknown initializer config {identifier!r}")
        try:
            return _ALL[name.lower()](**config)
        except TypeError as exc:
            raise ValueError(f"{argument}: bad initializer config {identifier!r}: {exc}") \
                from None
    if isinstance(identifier, str):
        if identifier.lower() not in _ALL:
            raise ValueError(f"{argument}: unknown initializer {identifier!r}; "
                             f"expected one of {sorted(_ALL)}")
        return _ALL[identifier.lower()]()
    raise TypeError(f"{argument} must be an initializer name or instance, got {identifier!r}")
