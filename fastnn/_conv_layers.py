"""Convolution and pooling layers: Conv1D, Conv2D, MaxPooling1D, MaxPooling2D.

Inputs are channels last, ``(steps, channels)`` or ``(height, width, channels)``; the
engine sees every sample as its flat C-order row, so a 1-D layer is the 2-D one with
height 1.  Kernels have Keras's shapes, ``(k, c_in, filters)`` / ``(kh, kw, c_in,
filters)``, and are views into the model's flat parameter vector.
"""
from typing import Any

import numpy as np

from fastnn import _validation, activations, regularizers
from fastnn._kernels import conv_forward as _conv_forward
from fastnn._kernels import maxpool_forward as _maxpool_forward
from fastnn._kernels._shapes import geometry
from fastnn.layers import Layer, _KernelOptions


def _tuple(value, rank, name):
    """An int or a tuple of `rank` ints >= 1 (Keras's kernel_size / strides / pool_size)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,) * rank
    if not isinstance(value, (tuple, list)) or len(value) != rank:
        raise ValueError(f"{name} must be an int or a tuple of {rank} ints, got {value!r}")
    return tuple(_validation.check_int(v, name, 1) for v in value)


def _padding(padding):
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def _unsupported(layer, **kwargs):
    """Keras arguments accepted only at their defaults."""
    for name, (value, default) in kwargs.items():
        if value != default:
            raise ValueError(f"{type(layer).__name__}: {name}={value!r} is not supported by "
                             f"fastnn (only {default!r})")


class _Windowed(Layer):
    """Shared shape logic of the convolution and pooling layers."""

    rank = 2
    # set by the subclasses (a property for the convolutions' window)
    strides: tuple[int, ...]
    padding: str

    @property
    def _window(self) -> tuple[int, ...]:
        """The window's size (kernel or pool size)."""
        raise NotImplementedError

    def _channels(self, c_in: int) -> int:
        """Output channels for c_in input channels."""
        raise NotImplementedError

    def _geometry(self, input_shape):
        """The 2-D geometry tuple for `input_shape` (1-D: height 1); ValueError when the
        shape has the wrong rank or no window fits."""
        if len(input_shape) != self.rank + 1:
            want = "(steps, channels)" if self.rank == 1 else "(height, width, channels)"
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) takes inputs of "
                             f"shape {want}, got {tuple(input_shape)}")
        shape = (1, *input_shape) if self.rank == 1 else tuple(input_shape)
        window = (1, *self._window) if self.rank == 1 else self._window
        strides = (1, *self.strides) if self.rank == 1 else self.strides
        try:
            return geometry(shape, window, strides, self.padding, self._channels(shape[2]))
        except ValueError as exc:
            raise ValueError(f"layer {self.name!r}: {exc} (input shape "
                             f"{tuple(input_shape)})") from None

    def compute_output_shape(self, input_shape):
        g = self._geometry(input_shape)
        return (g[10], g[11]) if self.rank == 1 else (g[9], g[10], g[11])

    def _as4d(self, x):
        in_shape: tuple[int, ...] = self._in_shape  # type: ignore[assignment]  # built
        return x.reshape(x.shape[0], *((1, *in_shape) if self.rank == 1 else in_shape))


class _Conv(_KernelOptions, _Windowed):
    def __init__(self, rank, filters, kernel_size, strides, padding, data_format,
                 dilation_rate, groups, activation, use_bias, kernel_initializer,
                 bias_initializer, kernel_regularizer, bias_regularizer, activity_regularizer,
                 kernel_constraint, bias_constraint, name, input_shape):
        super().__init__(name=name, input_shape=input_shape)
        self.rank = rank
        self.filters = _validation.check_int(filters, "filters", 1)
        self.kernel_size = _tuple(kernel_size, rank, "kernel_size")
        self.strides = _tuple(strides, rank, "strides")
        self.padding = _padding(padding)
        _unsupported(self, data_format=(data_format, None if data_format is None
                                        else "channels_last"),
                     dilation_rate=(_tuple(dilation_rate, rank, "dilation_rate"), (1,) * rank),
                     groups=(groups, 1), activity_regularizer=(activity_regularizer, None),
                     kernel_constraint=(kernel_constraint, None),
                     bias_constraint=(bias_constraint, None))
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                 kernel_regularizer, bias_regularizer)
        self.kernel: Any = None   # views into the model's parameters once built
        self.bias: Any = None

    @property
    def _window(self):
        return self.kernel_size

    def _channels(self, c_in):
        return self.filters

    def _output_activation(self):
        return self.activation

    def _kernel_shape(self, input_shape):
        return (*self.kernel_size, input_shape[-1], self.filters)

    def param_count(self, input_shape):
        return (int(np.prod(self._kernel_shape(input_shape)))
                + (self.filters if self.use_bias else 0))

    def _dtype(self):
        return self.kernel.dtype

    def _bind(self, input_shape, params, offset, aux, aux_offset):
        self._geometry(input_shape)
        shape = self._kernel_shape(input_shape)
        size = int(np.prod(shape))
        old = (self._weight_list() if self.built and self.kernel.shape == shape
               and self.kernel.dtype == params.dtype else None)
        kernel = params[offset:offset + size].reshape(shape)
        bias = params[offset + size:offset + size + self.filters] if self.use_bias else None
        if old is not None:
            kernel[...] = old[0]
            if bias is not None:
                bias[...] = old[1]
        else:
            kernel[...] = self.kernel_initializer(shape, params.dtype)
            if bias is not None:
                bias[...] = self.bias_initializer((self.filters,), params.dtype)
        self.kernel, self.bias = kernel, bias
        self._set_input_shape(input_shape)
        return offset + self.param_count(input_shape), aux_offset

    def _spec(self, offset, aux_offset):
        g = self._geometry(self._in_shape)
        return {"kind": "conv", "n_in": self.n_in, "n_out": g[9] * g[10] * g[11],
                "geom": g, "padding": self.padding, "w_size": self.kernel.size,
                **self._kernel_spec(offset, self.kernel.size)}

    def _weight_list(self):
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def _trainable_count(self):
        return 2 if self.use_bias else 1

    def _set_weights(self, arrays):
        self.kernel[...] = arrays[0]
        if self.use_bias:
            self.bias[...] = arrays[1]

    def _call(self, x):
        g = self._geometry(self._in_shape)
        n = x.shape[0]
        z = np.empty((n, g[9], g[10], g[11]), x.dtype)
        a = z if self.activation is activations.linear else np.empty_like(z)
        cols = np.empty((n * g[9] * g[10], g[3] * g[4] * g[2]), x.dtype)
        kernel = self.kernel.reshape(g[3], g[4], g[2], g[11])
        _conv_forward(self._as4d(x), kernel, self.bias, (g[5], g[6]), self.padding,
                      activations.code(self.activation), activations.LEAKY_RELU_SLOPE,
                      cols, z, a)
        return a.reshape(n, -1)

    def get_config(self):
        one = self.rank == 1
        return {"name": self.name, "filters": self.filters,
                "kernel_size": self.kernel_size[0] if one else self.kernel_size,
                "strides": self.strides[0] if one else self.strides,
                "padding": self.padding,
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer.name,
                "bias_initializer": self.bias_initializer.name,
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("kernel_regularizer", "bias_regularizer"):
            config[key] = regularizers.deserialize(config.get(key), key)
        return cls(**config)


_CONV_DOC = """

    Parameters
    ----------
    filters : int
        Output channels, >= 1.
    kernel_size, strides : int or tuple of {rank} ints
    padding : "valid" or "same"
        "same" pads as TensorFlow does (the smaller half before), so that the output
        has ``ceil(size / stride)`` positions.
    activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer
        As for `fastnn.layers.Dense`; fan-in and fan-out of the initialisers count the
        receptive field times the channels (Keras).
    data_format, dilation_rate, groups, activity_regularizer, kernel_constraint,
    bias_constraint
        Keras's arguments, accepted at their defaults only (channels last).
    input_shape, name
        See `fastnn.layers.Layer`.
    """


class Conv1D(_Conv):
    __doc__ = ("1-D convolution over ``(steps, channels)``: kernel ``(k, c_in, filters)``."
               + _CONV_DOC.format(rank=1))

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, *, name=None, input_shape=None):
        super().__init__(1, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, name, input_shape)


class Conv2D(_Conv):
    __doc__ = ("2-D convolution over ``(height, width, channels)``: kernel ``(kh, kw, c_in, "
               "filters)``." + _CONV_DOC.format(rank=2))

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, *, name=None, input_shape=None):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate,
                         groups, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, name, input_shape)


class _MaxPool(_Windowed):
    def __init__(self, rank, pool_size, strides, padding, data_format, name, input_shape):
        super().__init__(name=name, input_shape=input_shape)
        self.rank = rank
        self.pool_size = _tuple(pool_size, rank, "pool_size")
        self.strides = (self.pool_size if strides is None
                        else _tuple(strides, rank, "strides"))
        self.padding = _padding(padding)
        _unsupported(self, data_format=(data_format, None if data_format is None
                                        else "channels_last"))
        self._compute_dtype = np.float32

    @property
    def _window(self):
        return self.pool_size

    def _channels(self, c_in):
        return c_in

    def _bind(self, input_shape, params, offset, aux, aux_offset):
        self._geometry(input_shape)
        self._set_input_shape(input_shape)
        self._compute_dtype = params.dtype
        return offset, aux_offset

    def _dtype(self):
        return self._compute_dtype

    def _spec(self, offset, aux_offset):
        g = self._geometry(self._in_shape)
        return {"kind": "maxpool", "n_in": self.n_in, "n_out": g[9] * g[10] * g[11],
                "geom": g, "padding": self.padding}

    def _call(self, x):
        g = self._geometry(self._in_shape)
        out = np.empty((x.shape[0], g[9], g[10], g[11]), x.dtype)
        _maxpool_forward(self._as4d(x), (g[3], g[4]), (g[5], g[6]), self.padding, out,
                         np.empty_like(out))
        return out.reshape(x.shape[0], -1)

    def get_config(self):
        one = self.rank == 1
        return {"name": self.name, "pool_size": self.pool_size[0] if one else self.pool_size,
                "strides": self.strides[0] if one else self.strides, "padding": self.padding}


class MaxPooling1D(_MaxPool):
    """Maximum over windows of ``pool_size`` steps, per channel, on ``(steps, channels)``.

    Parameters
    ----------
    pool_size : int, default 2
    strides : int, optional
        Defaults to `pool_size`.
    padding : "valid" or "same"
        "same" pads as TensorFlow; padding never wins the maximum.
    data_format : None
        Channels last only.
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, *,
                 name=None, input_shape=None):
        super().__init__(1, pool_size, strides, padding, data_format, name, input_shape)


class MaxPooling2D(_MaxPool):
    """Maximum over ``pool_size`` windows, per channel, on ``(height, width, channels)``.

    Parameters
    ----------
    pool_size : int or tuple of 2 ints, default (2, 2)
    strides : int or tuple of 2 ints, optional
        Defaults to `pool_size`.
    padding : "valid" or "same"
        "same" pads as TensorFlow; padding never wins the maximum.
    data_format : None
        Channels last only.
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, *,
                 name=None, input_shape=None):
        super().__init__(2, pool_size, strides, padding, data_format, name, input_shape)
