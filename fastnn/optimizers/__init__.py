"""Optimizers with Keras 3's update rules; the arithmetic runs in fastnn._kernels.

An optimizer owns its state (one flat buffer per moment, the same length as the
model's flat parameter vector) and its step counter ``iterations``; calling
``fit`` again continues from both, as in Keras.
"""
import numpy as np

from fastnn import _validation


class Optimizer:
    """Base class: learning-rate handling and state ownership."""

    kind = None
    _n_slots = 0

    def __init__(self, learning_rate):
        if callable(learning_rate):
            self.learning_rate = learning_rate
        else:
            self.learning_rate = _validation.check_float(learning_rate, "learning_rate", low=0)
        self.iterations = 0
        self._slots = []
        self._constant_rates = None

    def _learning_rates(self, first_step, count):
        """Learning rate of each of `count` steps from `first_step` (schedules called per step)."""
        if not callable(self.learning_rate):
            cached = self._constant_rates
            if cached is None or cached.shape[0] != count or cached[0] != self.learning_rate:
                cached = self._constant_rates = np.full(count, self.learning_rate)
            return cached
        rates = np.empty(count)
        for i in range(count):
            value = self.learning_rate(first_step + i)
            rates[i] = _validation.check_float(float(value), "learning_rate(step)", low=0)
        return rates

    def _ensure_state(self, n_params, dtype):
        """Allocate zeroed state on first use or when the parameter vector changed."""
        if len(self._slots) != self._n_slots or any(
                s.shape != (n_params,) or s.dtype != dtype for s in self._slots):
            self._slots = [np.zeros(n_params, dtype) for _ in range(self._n_slots)]
            self.iterations = 0
        return self._slots

    def _config_lr(self):
        if callable(self.learning_rate):
            raise ValueError("an optimizer with a callable learning_rate cannot be saved")
        return self.learning_rate


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    ``w -= lr * g``; with momentum ``u = momentum * u - lr * g`` then ``w += u``
    (Nesterov: ``w += momentum * u - lr * g``).

    Parameters
    ----------
    learning_rate : float or callable, default 0.01
        A callable is called with the 0-based step number and returns the rate.
    momentum : float, default 0.0
        In [0, 1].
    nesterov : bool, default False
    """

    kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _validation.check_float(momentum, "momentum", low=0, high=1)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        self.nesterov = bool(nesterov)
        self._n_slots = 1 if self.momentum else 0

    def _attach(self, engine, n_params, dtype):
        slots = self._ensure_state(n_params, dtype)
        engine.set_optimizer("sgd", slots[0] if slots else None, None,
                             momentum=self.momentum, nesterov=self.nesterov)

    def get_config(self):
        return {"name": "sgd", "learning_rate": self._config_lr(), "momentum": self.momentum,
                "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras's update rule and defaults.

    ``m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``.
    Keras adds epsilon to ``sqrt(v)`` of the *uncorrected* v, with default 1e-7
    (the Adam paper and the course write 1e-8 on the corrected v); fastnn follows Keras.

    Parameters
    ----------
    learning_rate : float or callable, default 0.001
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
    epsilon : float, default 1e-7
    """

    kind = "adam"
    _n_slots = 2

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1 = _validation.check_float(beta_1, "beta_1", low=0, high=1, high_open=True)
        self.beta_2 = _validation.check_float(beta_2, "beta_2", low=0, high=1, high_open=True)
        self.epsilon = _validation.check_float(epsilon, "epsilon", low=0)

    def _attach(self, engine, n_params, dtype):
        m, v = self._ensure_state(n_params, dtype)
        engine.set_optimizer("adam", m, v, beta_1=self.beta_1, beta_2=self.beta_2,
                             epsilon=self.epsilon)

    def get_config(self):
        return {"name": "adam", "learning_rate": self._config_lr(), "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "adam": Adam}


def get(identifier):
    """An Optimizer from a name ("adam", "sgd"), an instance or None (Adam)."""
    if identifier is None:
        return Adam()
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(f"optimizer: unknown name {identifier!r}; expected 'adam' or 'sgd'")
        return _BY_NAME[key]()
    raise TypeError(f"optimizer must be a name or a fastnn.optimizers.Optimizer, "
                    f"got {identifier!r}")


def from_config(config):
    config = dict(config)
    return _BY_NAME[config.pop("name")](**config)
