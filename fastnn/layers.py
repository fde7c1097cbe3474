"""Layers: Dense, Dropout and Normalization.

A layer describes its computation; the numbers live in flat buffers owned by
the model (one vector for every trainable parameter, one for non-trainable
statistics), and the layer's arrays (``kernel``, ``bias``, ``mean``...) are
views into them.  Called on its own, a layer builds private buffers instead.
"""
import numpy as np

from fastnn import _validation, activations, initializers, regularizers
from fastnn._kernels import activation_forward as _activation_forward
from fastnn._kernels import dense_forward as _dense_forward


class Layer:
    """Base class of fastnn layers."""

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name
        self.n_in = None

    @property
    def built(self):
        return self.n_in is not None

    # --- sizes ----------------------------------------------------------------------------
    def output_width(self, n_in):
        return n_in

    def param_count(self, n_in):
        """Trainable parameters for an input of width n_in."""
        return 0

    def stat_count(self, n_in):
        """Non-trainable statistics held in the model's auxiliary buffer."""
        return 0

    # --- binding to the model's buffers -------------------------------------------------------
    def _bind(self, n_in, params, offset, aux, aux_offset):
        """Take views of the model's buffers and put the layer's values in them (its
        current ones if it was built for this width, else fresh ones).  Returns the
        offsets after this layer."""
        self.n_in = n_in
        return offset, aux_offset

    def _spec(self, offset, aux_offset):
        raise NotImplementedError

    def weights(self):
        """Arrays reported by get_weights, in Keras order."""
        return []

    def _set_weights(self, arrays):
        """Copy validated arrays (shapes from weight_shapes) into the layer's buffers."""

    def weight_shapes(self):
        return [w.shape for w in self.weights()]

    def get_config(self):
        return {"name": self.name}

    def __call__(self, x):
        """Apply the layer on its own (inference mode) to x of shape (n, n_in)."""
        dtype = self._dtype() if self.built else np.float32
        x = _validation.as_features(x, "x", dtype, self.n_in)
        if not self.built:
            self._build_standalone(x.shape[1], x.dtype)
        return self._call(x)

    def _dtype(self):
        return np.float32

    def _build_standalone(self, n_in, dtype):
        params = np.zeros(self.param_count(n_in), dtype)
        aux = np.zeros(self.stat_count(n_in), dtype)
        self._bind(n_in, params, 0, aux, 0)


class Dense(Layer):
    """Densely connected layer: ``activation(x @ kernel + bias)``.

    Parameters
    ----------
    units : int
        Width of the output, >= 1.
    activation : str, callable or None
        A name ("linear", "relu", "sigmoid", "tanh", "leaky_relu", "swish", "softmax")
        or a function from fastnn.activations; None is the identity.
    use_bias : bool, default True
    kernel_initializer : str or Initializer, default "glorot_uniform"
    bias_initializer : str or Initializer, default "zeros"
    kernel_regularizer : fastnn.regularizers.L2 or None
    input_dim : int, optional
        Width of the input; when given to the first layer, the model is built at once.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, input_dim=None, name=None):
        super().__init__(name)
        self.units = _validation.check_int(units, "units", 1)
        self.activation = activations.get(activation)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias must be a bool, got {type(use_bias).__name__}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.input_dim = None if input_dim is None else _validation.check_int(
            input_dim, "input_dim", 1)
        self.kernel = None
        self.bias = None

    def output_width(self, n_in):
        return self.units

    def param_count(self, n_in):
        return n_in * self.units + (self.units if self.use_bias else 0)

    def _dtype(self):
        return self.kernel.dtype

    def _bind(self, n_in, params, offset, aux, aux_offset):
        old = self.weights() if self.built and self.n_in == n_in else None
        size = n_in * self.units
        kernel = params[offset:offset + size].reshape(n_in, self.units)
        bias = params[offset + size:offset + size + self.units] if self.use_bias else None
        if old is not None:
            kernel[...] = old[0]
            if bias is not None:
                bias[...] = old[1]
        else:
            kernel[...] = self.kernel_initializer((n_in, self.units), params.dtype)
            if bias is not None:
                bias[...] = self.bias_initializer((self.units,), params.dtype)
        self.kernel, self.bias = kernel, bias
        self.n_in = n_in
        return offset + self.param_count(n_in), aux_offset

    def _spec(self, offset, aux_offset):
        return {"kind": "dense", "n_in": self.n_in, "n_out": self.units,
                "activation": activations.code(self.activation),
                "alpha": activations.LEAKY_RELU_SLOPE,
                "l2": self.kernel_regularizer.l2 if self.kernel_regularizer else 0.0,
                "w_off": offset, "b_off": offset + self.n_in * self.units if self.use_bias else -1}

    def weights(self):
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def _set_weights(self, arrays):
        self.kernel[...] = arrays[0]
        if self.use_bias:
            self.bias[...] = arrays[1]

    def _call(self, x):
        z = np.empty((x.shape[0], self.units), x.dtype)
        a = z if self.activation == "linear" else np.empty_like(z)
        _dense_forward(x, self.kernel, self.bias, activations.code(self.activation),
                       activations.LEAKY_RELU_SLOPE, z, a)
        return a

    def get_config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer.name,
                "bias_initializer": self.bias_initializer.name,
                "kernel_regularizer": (self.kernel_regularizer.get_config()
                                       if self.kernel_regularizer else None),
                "input_dim": self.input_dim}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        reg = config.pop("kernel_regularizer")
        return cls(kernel_regularizer=regularizers.L2(**reg) if reg else None, **config)


class Dropout(Layer):
    """Inverted dropout: during ``fit`` each input is zeroed with probability `rate` and
    the survivors are scaled by ``1 / (1 - rate)``; the identity at inference.

    Parameters
    ----------
    rate : float
        In [0, 1).
    """

    def __init__(self, rate, name=None):
        super().__init__(name)
        self.rate = _validation.check_float(rate, "rate", low=0, high=1, high_open=True)

    def _spec(self, offset, aux_offset):
        return {"kind": "dropout", "n_in": self.n_in, "n_out": self.n_in, "rate": self.rate}

    def _call(self, x):
        return x.copy()

    def get_config(self):
        return {"name": self.name, "rate": self.rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Normalization(Layer):
    """Feature-wise standardisation ``(x - mean) / max(sqrt(variance), 1e-7)``.

    ``adapt(x)`` learns the per-feature mean and population variance (ddof 0) once;
    the same statistics are applied in training and prediction and saved with the
    model.  Before ``adapt`` (and without `mean`/`variance`) the layer is the identity.

    Parameters
    ----------
    mean, variance : array-like of shape (n_features,), optional
        Fixed statistics instead of ``adapt``.
    """

    _EPSILON = 1e-7   # Keras's backend.epsilon(): constant features stay finite

    def __init__(self, mean=None, variance=None, name=None):
        super().__init__(name)
        if (mean is None) != (variance is None):
            raise ValueError("mean and variance must be given together")
        self.mean = self.variance = None
        self._std = None
        self._stats = None
        if mean is not None:
            mean = _validation.as_features(np.atleast_2d(mean), "mean", np.float64)[0]
            variance = _validation.as_features(np.atleast_2d(variance), "variance",
                                               np.float64)[0]
            if mean.shape != variance.shape:
                raise ValueError("mean and variance must have the same shape")
            if (variance < 0).any():
                raise ValueError("variance must be >= 0")
            self._stats = (mean, variance)

    def stat_count(self, n_in):
        return 2 * n_in

    def adapt(self, x):
        """Learn per-feature mean and population variance from x of shape (n, n_features)."""
        x = _validation.as_features(x, "x", np.float64, self.n_in)
        self._set_stats(x.mean(axis=0), x.var(axis=0))
        return self

    def _set_stats(self, mean, variance):
        # float64 statistics are kept as the source of truth, so that a layer first used
        # on its own (in float32) and then placed in a float64 model loses no precision
        self._stats = (np.asarray(mean, np.float64).copy(), np.asarray(variance, np.float64).copy())
        if self.built:
            self._write_views()

    def _write_views(self):
        mean, variance = self._stats
        self.mean[...] = mean
        self.variance = variance.astype(self.mean.dtype)
        self._std[...] = np.maximum(np.sqrt(self.variance), self.variance.dtype.type(self._EPSILON))

    def _bind(self, n_in, params, offset, aux, aux_offset):
        if self._stats is not None and self._stats[0].shape[0] != n_in:
            raise ValueError(f"Normalization was adapted to {self._stats[0].shape[0]} "
                             f"features but receives {n_in}")
        self.n_in = n_in
        self.mean = aux[aux_offset:aux_offset + n_in]
        self._std = aux[aux_offset + n_in:aux_offset + 2 * n_in]
        if self._stats is None:  # identity until adapted
            self._stats = (np.zeros(n_in), np.ones(n_in))
        self._write_views()
        return offset, aux_offset + 2 * n_in

    def _dtype(self):
        return self.mean.dtype

    def _spec(self, offset, aux_offset):
        return {"kind": "normalization", "n_in": self.n_in, "n_out": self.n_in,
                "aux_off": aux_offset}

    def weights(self):
        return [self.mean, self.variance]

    def _set_weights(self, arrays):
        self._set_stats(arrays[0], arrays[1])

    def _call(self, x):
        return ((x - self.mean) / self._std).astype(x.dtype)

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# ----------------------------------------------------------------------------- activation layers
# Each is one engine layer of kind "activation": act(x) elementwise (softmax over the last
# axis), no weights.  As the output layer, a sigmoid/softmax one fuses with its
# cross-entropy exactly as a Dense layer with that activation does.

class _ActivationLayer(Layer):
    """Base of Activation, ReLU, LeakyReLU and Softmax: ``activation`` and a slope."""

    def __init__(self, activation, negative_slope=0.0, name=None):
        super().__init__(name)
        self.activation = activations.get(activation)
        self._slope = negative_slope
        self._compute_dtype = np.float32

    def _bind(self, n_in, params, offset, aux, aux_offset):
        self.n_in = n_in
        self._compute_dtype = params.dtype
        return offset, aux_offset

    def _dtype(self):
        return self._compute_dtype

    def _spec(self, offset, aux_offset):
        return {"kind": "activation", "n_in": self.n_in, "n_out": self.n_in,
                "activation": activations.code(self.activation), "alpha": self._slope}

    def _call(self, x):
        out = np.empty_like(x)
        _activation_forward(x, activations.code(self.activation), self._slope, out)
        return out


def _check_slope(negative_slope):
    return _validation.check_float(negative_slope, "negative_slope", low=0)


class Activation(_ActivationLayer):
    """Applies an activation function: ``Activation("relu")``, ``Activation(activations.tanh)``.

    Parameters
    ----------
    activation : str or callable
        A name or a function from fastnn.activations (``leaky_relu`` keeps the
        activation's slope, 0.01).
    """

    def __init__(self, activation, name=None):
        name_ = activations.get(activation)
        super().__init__(name_, activations.LEAKY_RELU_SLOPE if name_ == "leaky_relu" else 0.0,
                         name)

    def get_config(self):
        return {"name": self.name, "activation": self.activation}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ReLU(_ActivationLayer):
    """Rectified linear unit ``max(x, 0)``; with ``negative_slope`` s, ``s * x`` below 0.

    Keras's ``max_value`` and ``threshold`` are accepted at their defaults only.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, name=None):
        if max_value is not None:
            raise ValueError("ReLU: max_value is not supported by fastnn (use None)")
        if _validation.check_float(threshold, "threshold") != 0.0:
            raise ValueError("ReLU: threshold other than 0 is not supported by fastnn")
        slope = _check_slope(negative_slope)
        super().__init__("leaky_relu" if slope else "relu", slope, name)

    def get_config(self):
        return {"name": self.name, "max_value": None, "negative_slope": self._slope,
                "threshold": 0.0}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LeakyReLU(_ActivationLayer):
    """``x`` for ``x > 0``, else ``negative_slope * x``.

    Parameters
    ----------
    negative_slope : float, default 0.3
        Keras 3's layer default (the ``leaky_relu`` activation keeps the course's 0.01).
    """

    def __init__(self, negative_slope=0.3, name=None):
        super().__init__("leaky_relu", _check_slope(negative_slope), name)

    @property
    def negative_slope(self):
        return self._slope

    def get_config(self):
        return {"name": self.name, "negative_slope": self._slope}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Softmax(_ActivationLayer):
    """Softmax over the last axis (row maximum subtracted before ``exp``).

    Parameters
    ----------
    axis : int, default -1
        Only the last axis is supported (the dense models' feature axis).
    """

    def __init__(self, axis=-1, name=None):
        if isinstance(axis, bool) or axis not in (-1,):
            raise ValueError(f"Softmax: only axis=-1 is supported, got {axis!r}")
        super().__init__("softmax", 0.0, name)
        self.axis = -1

    def get_config(self):
        return {"name": self.name, "axis": self.axis}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


LAYERS = {"Dense": Dense, "Dropout": Dropout, "Normalization": Normalization,
          "Activation": Activation, "ReLU": ReLU, "LeakyReLU": LeakyReLU, "Softmax": Softmax}
