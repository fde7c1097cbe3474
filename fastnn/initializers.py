"""Weight initialisers with Keras 3's formulas, drawing from fastnn's global stream."""
import math

import numpy as np

from fastnn import _random


class Initializer:
    """Base class: ``init(shape, dtype)`` returns a new array."""

    name: str | None = None

    def __call__(self, shape, dtype):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}


def _fans(shape):
    """(fan_in, fan_out) as Keras computes them: a convolution kernel (..., c_in, filters)
    counts its receptive field (the product of the leading axes) times the channels."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


class GlorotUniform(Initializer):
    """Uniform on ``[-l, l]`` with ``l = sqrt(6 / (fan_in + fan_out))`` (Keras default)."""

    name = "glorot_uniform"

    def __call__(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return _random.generator().uniform(-limit, limit, size=shape).astype(dtype)


class GlorotNormal(Initializer):
    """Truncated normal with ``stddev = sqrt(2 / (fan_in + fan_out))`` (Keras)."""

    name = "glorot_normal"

    def __call__(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        return _truncated_normal(shape, math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


class HeNormal(Initializer):
    """Truncated normal with ``stddev = sqrt(2 / fan_in)`` (Keras 3's VarianceScaling)."""

    name = "he_normal"

    def __call__(self, shape, dtype):
        return _truncated_normal(shape, math.sqrt(2.0 / _fans(shape)[0])).astype(dtype)


class HeUniform(Initializer):
    """Uniform on ``[-l, l]`` with ``l = sqrt(6 / fan_in)``."""

    name = "he_uniform"

    def __call__(self, shape, dtype):
        limit = math.sqrt(6.0 / _fans(shape)[0])
        return _random.generator().uniform(-limit, limit, size=shape).astype(dtype)


class Zeros(Initializer):
    name = "zeros"

    def __call__(self, shape, dtype):
        return np.zeros(shape, dtype)


class Ones(Initializer):
    name = "ones"

    def __call__(self, shape, dtype):
        return np.ones(shape, dtype)


def _truncated_normal(shape, target_std):
    """Normal truncated at two standard deviations, rescaled so its std is target_std.

    0.8796... is the standard deviation of a unit normal truncated to [-2, 2]; Keras
    divides by it so that the truncated draw keeps the requested variance.
    """
    std = target_std / 0.87962566103423978
    rng = _random.generator()
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2
    return out * std


_ALL = {cls.name: cls for cls in (GlorotUniform, GlorotNormal, HeNormal, HeUniform, Zeros, Ones)}


def get(identifier, argument):
    """An Initializer from a name or an instance; `argument` names the parameter in errors."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() not in _ALL:
            raise ValueError(f"{argument}: unknown initializer {identifier!r}; "
                             f"expected one of {sorted(_ALL)}")
        return _ALL[identifier.lower()]()
    raise TypeError(f"{argument} must be an initializer name or instance, got {identifier!r}")
