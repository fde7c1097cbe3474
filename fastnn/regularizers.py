"""Weight regularizers, as Keras 3 defines them: ``L1``, ``L2``, ``L1L2`` (and the aliases
``l1``, ``l2``, ``l1_l2``, which are the same classes).

Each is a penalty ``l1 * sum(|W|) + l2 * sum(W ** 2)`` on one weight array that
``fit`` and ``evaluate`` add to the reported loss.  Its gradient ``l1 * sign(W) +
2 * l2 * W`` (``sign(0) = 0``, as TensorFlow and torch) is added inside the
compiled backward pass, so only these three kinds can be compiled: a plain
callable or another subclass of ``Regularizer`` is refused with ``TypeError``.
The course's ``lambda / (2 m) * ||W||_F^2`` (m training rows) is ``L2(lambda / (2 * m))``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastnn._typing import ArrayLike, ConfigDict


def _factor(value: float | None, name: str, default: float) -> float:
    """A non-negative finite float; None means the default (Keras's rule)."""
    if value is None:
        return default
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


class Regularizer:
    """Base class of the weight penalties ``l1 * sum(|W|) + l2 * sum(W ** 2)``.

    Calling a regularizer on an array returns its penalty as a float (computed in
    float64).  ``get_config`` / ``from_config`` round-trip it, as in Keras.
    """

    def _factors(self) -> tuple[float, float]:
        """(l1, l2) of the penalty; the compiled engine reads these."""
        raise NotImplementedError

    def __call__(self, x: ArrayLike) -> float:
        l1, l2 = self._factors()
        x = np.asarray(x, dtype=np.float64)
        return l1 * float(np.sum(np.abs(x))) + l2 * float(np.sum(x * x))

    def get_config(self) -> ConfigDict:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")

    @classmethod
    def from_config(cls, config: ConfigDict) -> Regularizer:
        """The regularizer that `get_config` described."""
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._factors() == other._factors()

    def __hash__(self) -> int:
        return hash((type(self), self._factors()))


class L1(Regularizer):
    """L1 penalty ``l1 * sum(|W|)``.

    Parameters
    ----------
    l1 : float, default 0.01
        Non-negative factor (None means the default, as in Keras).
    """

    def __init__(self, l1: float | None = 0.01) -> None:
        self.l1 = _factor(l1, "l1", 0.01)

    def _factors(self) -> tuple[float, float]:
        return self.l1, 0.0

    def get_config(self) -> ConfigDict:
        return {"l1": self.l1}

    def __repr__(self) -> str:
        return f"L1(l1={self.l1})"


class L2(Regularizer):
    """L2 penalty ``l2 * sum(W ** 2)``; its gradient ``2 * l2 * W`` is added in the
    compiled backward pass.

    Parameters
    ----------
    l2 : float, default 0.01
        Non-negative factor (None means the default, as in Keras).
    """

    def __init__(self, l2: float | None = 0.01) -> None:
        self.l2 = _factor(l2, "l2", 0.01)

    def _factors(self) -> tuple[float, float]:
        return 0.0, self.l2

    def get_config(self) -> ConfigDict:
        return {"l2": self.l2}

    def __repr__(self) -> str:
        return f"L2(l2={self.l2})"


class L1L2(Regularizer):
    """Both penalties, ``l1 * sum(|W|) + l2 * sum(W ** 2)``.

    Parameters
    ----------
    l1, l2 : float, default 0.0
        Non-negative factors.  Keras 3 gives this class defaults of 0 (not the 0.01 of
        ``L1`` and ``L2``), so ``L1L2()`` and the name ``"l1l2"`` penalise nothing.
    """

    def __init__(self, l1: float | None = 0.0, l2: float | None = 0.0) -> None:
        self.l1 = _factor(l1, "l1", 0.0)
        self.l2 = _factor(l2, "l2", 0.0)

    def _factors(self) -> tuple[float, float]:
        return self.l1, self.l2

    def get_config(self) -> ConfigDict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1}, l2={self.l2})"


# Keras 3 exports the lowercase names as aliases of the classes (not as functions)
l1 = L1
l2 = L2
l1_l2 = L1L2

_CLASSES: dict[str, type[L1 | L2 | L1L2]] = {"L1": L1, "L2": L2, "L1L2": L1L2}
# The string identifiers Keras 3 accepts: class names and their snake_case forms
# (keras.src.utils.naming.to_snake_case("L1L2") is "l1l2"; Keras 3.15 refuses "l1_l2").
_BY_NAME = dict(_CLASSES, l1=L1, l2=L2, l1l2=L1L2)


def serialize(regularizer: Regularizer | None) -> ConfigDict | None:
    """``{"class_name": ..., "config": ...}`` (Keras's layout), or None for None."""
    if regularizer is None:
        return None
    for name, cls in _CLASSES.items():
        if isinstance(regularizer, cls):
            return {"class_name": name, "config": regularizer.get_config()}
    raise TypeError(f"cannot serialize {regularizer!r}")


def deserialize(config: ConfigDict | None, arg: str = "regularizer") -> Regularizer | None:
    """Inverse of `serialize`.  Also reads the ``{"l2": x}`` that fastnn files written
    before L1 and L1L2 existed carry for an L2 kernel regularizer."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise TypeError(f"{arg}: a regularizer config must be a dict, got {config!r}")
    if "class_name" not in config:
        return L2(**config)
    cls = _CLASSES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"{arg}: unknown regularizer class {config['class_name']!r}; "
                         f"expected one of {sorted(_CLASSES)}")
    return cls.from_config(config.get("config", {}))


def get(identifier: Regularizer | str | ConfigDict | None, arg: str = "regularizer"
        ) -> Regularizer | None:
    """A regularizer from None, an instance, a name or a config dict (Keras's rules).

    Parameters
    ----------
    identifier : None, L1, L2, L1L2, str or dict
        Names as Keras 3 accepts them: "l1", "l2", "l1l2", "L1", "L2", "L1L2" (each with
        its class's defaults); a dict ``{"class_name": "L2", "config": {"l2": 0.1}}``.
    arg : str
        The argument's name, for error messages.

    Raises
    ------
    ValueError
        An unknown name or class name.
    TypeError
        Anything else, including a plain callable: fastnn computes the penalty's
        gradient in compiled code, which knows only these three kinds.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (L1, L2, L1L2)):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"{arg}: unknown name {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)} or an instance such as "
                             "L1L2(l1=0.01, l2=0.01)")
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        if "class_name" not in identifier:
            raise ValueError(f"{arg}: a config dict needs a 'class_name', got {identifier!r}")
        return deserialize(identifier, arg)
    raise TypeError(f"{arg} must be None, a name or fastnn.regularizers.L1, L2 or L1L2 "
                    f"(fastnn compiles only these penalties), got {identifier!r}")
