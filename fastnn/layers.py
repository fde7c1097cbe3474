"""Layers: Input/InputLayer, Dense, Dropout and Normalization.

A layer describes its computation; the numbers live in flat buffers owned by
the model (one vector for every trainable parameter, one for non-trainable
statistics), and the layer's arrays (``kernel``, ``bias``, ``mean``...) are
views into them.  Called on its own, a layer builds private buffers instead.
Because the buffers belong to one model, a layer belongs to at most one model.
"""
from __future__ import annotations

import itertools
import math
import re
import weakref
from typing import TYPE_CHECKING

import numpy as np

from fastnn import _validation, activations, initializers, regularizers
from fastnn._kernels import activation_forward as _activation_forward
from fastnn._kernels import dense_forward as _dense_forward
from fastnn._tensor import wrap as _wrap

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnn._tensor import Tensor as _Tensor
    from fastnn._typing import ActivationLike, ArrayLike, ConfigDict, DTypeLike, FloatArray, NDArray
    from fastnn.initializers import Initializer
    from fastnn.regularizers import Regularizer

_NAME_COUNTERS: "dict[str, itertools.count[int]]" = {}


def unique_name(prefix: str) -> str:
    """Keras's auto-naming: ``prefix``, then ``prefix_1``, ``prefix_2``... per process."""
    counter = _NAME_COUNTERS.setdefault(prefix, itertools.count())
    index = next(counter)
    return prefix if index == 0 else f"{prefix}_{index}"


def _snake_case(name: str) -> str:
    """Keras's rule: ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` -> ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _check_shape(shape: Any, name: str) -> tuple[int, ...]:
    """A declared input shape (excluding the batch axis) as a tuple of ints >= 1:
    ``(n_features,)``, ``(steps, channels)`` or ``(height, width, channels)``."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if not isinstance(shape, (tuple, list)) or len(shape) == 0 or None in shape:
        raise ValueError(f"{name} must be a tuple of sizes such as (n_features,) or "
                         f"(height, width, channels), got {shape!r}")
    return tuple(_validation.check_int(s, name, 1) for s in shape)


def _flat_width(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _require_flat(layer: Layer, input_shape: Sequence[int],
                  what: str = "flat inputs (n_features,)") -> None:
    """Layers that work per feature take rank-1 inputs; others need a Flatten first."""
    if len(input_shape) != 1:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) takes {what}, got "
                         f"input shape {tuple(input_shape)}; add a Flatten() layer before it")


class KerasTensor:
    """Symbolic stand-in for a layer's input or output: ``.shape`` is ``(None, n)``."""

    def __init__(self, shape: Sequence[int | None], dtype: str = "float32",
                 name: str | None = None) -> None:
        self.shape = tuple(shape)
        self.dtype = str(dtype)
        self.name = name
        self.ndim = len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class Layer:
    """Base class of fastnn layers.

    Parameters
    ----------
    name : str, optional
        Unique per process when omitted: the snake-cased class name, then ``_1``,
        ``_2``... (Keras's rule).
    input_shape : tuple, optional
        The input shape without the batch axis (``(n_features,)``, ``(steps, channels)``
        or ``(height, width, channels)``): declares the model's input when this is its
        first layer.
    """

    def __init__(self, name: str | None = None, *,
                 input_shape: int | Sequence[int] | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.input_shape_arg = (None if input_shape is None
                                else _check_shape(input_shape, "input_shape"))
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self.n_in: int | None = None   # flat input width (the engine's view); None: not built
        self._in_shape: tuple[int, ...] | None = None    # input shape without the batch axis
        self._owner: weakref.ref[Any] | None = None   # weakref to the model viewing this layer

    @property
    def built(self) -> bool:
        return self.n_in is not None

    def _output_activation(self) -> Callable[..., Any] | None:
        """The activation applied last by this layer, for the loss's fused kernel and the
        from_logits warnings; None when the layer does not apply one."""
        return None

    def _declared_shape(self) -> tuple[int, ...] | None:
        """The input shape this layer declares (input_shape / input_dim), or None."""
        return self.input_shape_arg

    # --- shapes and sizes -----------------------------------------------------------------
    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """The output shape (without the batch axis) for `input_shape` (Keras's name).
        Raises ValueError when the layer cannot take that shape."""
        return tuple(input_shape)

    def output_width(self, n_in: int) -> int:
        """Flat output width for a flat input of width n_in (rank-1 inputs only)."""
        return _flat_width(self.compute_output_shape((n_in,)))

    def param_count(self, input_shape: Sequence[int]) -> int:
        """Trainable parameters for an input of shape `input_shape`."""
        return 0

    def stat_count(self, input_shape: Sequence[int]) -> int:
        """Non-trainable statistics held in the model's auxiliary buffer."""
        return 0

    # --- binding to the model's buffers -------------------------------------------------------
    def _bind(self, input_shape: Sequence[int], params: FloatArray, offset: int, aux: FloatArray,
              aux_offset: int) -> tuple[int, int]:
        """Take views of the model's buffers and put the layer's values in them (its
        current ones if it was built for this shape, else fresh ones).  Returns the
        offsets after this layer."""
        self._set_input_shape(input_shape)
        return offset, aux_offset

    def _set_input_shape(self, input_shape: Sequence[int]) -> None:
        self._in_shape = tuple(input_shape)
        self.n_in = _flat_width(input_shape)

    def _spec(self, offset: int, aux_offset: int) -> dict[str, Any] | None:
        """The engine's description of this layer (a dict), or None for a layer that is
        the identity on the flat row buffer (Flatten, Reshape) and is absorbed."""
        raise NotImplementedError(f"{type(self).__name__} has no engine spec")

    # --- weights (Keras's layer API) --------------------------------------------------------
    def _weight_list(self) -> list[FloatArray]:
        """The layer's arrays in Keras order (live views); subclasses override."""
        return []

    def _trainable_count(self) -> int:
        """How many leading arrays of _weight_list are trainable."""
        return 0

    @property
    def weights(self) -> list[FloatArray]:
        """Every weight array (live views into the model's buffers), in Keras order."""
        return list(self._weight_list()) if self.built else []

    @property
    def trainable_weights(self) -> list[FloatArray]:
        return self.weights[:self._trainable_count()]

    @property
    def non_trainable_weights(self) -> list[FloatArray]:
        return self.weights[self._trainable_count():]

    def get_weights(self) -> list[FloatArray]:
        """Copies of the layer's weights, in Keras order."""
        return [np.array(w) for w in self.weights]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Replace the layer's weights; `weights` as returned by get_weights."""
        self._require_built("set_weights")
        self._set_weights(self._check_weights(weights, self._weight_list()[0].dtype
                                              if self._weight_list() else np.float32))

    def _check_weights(self, weights: Sequence[ArrayLike], dtype: DTypeLike, offset: int = 0
                       ) -> list[FloatArray]:
        """Validated copies (list of arrays of `dtype`) for set_weights; raises naming
        ``weights[i]``.  `offset` numbers them within a model-wide list."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays, got {type(weights).__name__}")
        shapes = self.weight_shapes()
        if len(weights) != len(shapes):
            raise ValueError(f"layer {self.name!r} expects {len(shapes)} weight arrays, "
                             f"got {len(weights)}")
        arrays = []
        for i, (w, shape) in enumerate(zip(weights, shapes, strict=True)):
            label = f"weights[{offset + i}]"
            arr = _validation._real_array(w, label)
            if arr.shape != shape:
                raise ValueError(f"{label} has shape {arr.shape}, expected {shape} "
                                 f"(layer {self.name!r})")
            arrays.append(_validation.as_finite(arr, label, dtype))
        self._check_values(arrays, offset)
        return arrays

    def _check_values(self, arrays: list[FloatArray], offset: int) -> None:
        """Extra value checks for set_weights (e.g. variances >= 0)."""

    def _set_weights(self, arrays: list[FloatArray]) -> None:
        """Copy validated arrays (shapes from weight_shapes) into the layer's buffers."""

    def weight_shapes(self) -> list[tuple[int, ...]]:
        return [np.shape(w) for w in self._weight_list()]

    def count_params(self) -> int:
        """Number of scalars in the layer's weights (trainable and not)."""
        self._require_built("count_params")
        return int(sum(np.size(w) for w in self._weight_list()))

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(f"{what}: layer {self.name!r} is not built yet; add it to a "
                             "model with a known input shape, or call it on data")

    # --- symbolic input / output ---------------------------------------------------------------
    def _dtype_name(self) -> str:
        return np.dtype(self._dtype()).name

    @property
    def input(self) -> KerasTensor:
        """``.shape`` is ``(None, *input_shape)`` once the layer is built."""
        if not self.built:
            raise AttributeError(f"Layer {self.name!r} has never been called and thus has "
                                 "no defined input.")
        return KerasTensor((None, *self._in_shape),  # type: ignore[misc]  # built
                           self._dtype_name(), f"{self.name}_input")

    @property
    def output(self) -> KerasTensor:
        if not self.built:
            raise AttributeError(f"Layer {self.name!r} has never been called and thus has "
                                 "no defined output.")
        return KerasTensor((None, *self.compute_output_shape(self._in_shape)),  # type: ignore[arg-type]
                           self._dtype_name(), f"{self.name}_output")

    def get_config(self) -> ConfigDict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Layer:
        return cls(**config)

    def __call__(self, x: ArrayLike) -> _Tensor:
        """Apply the layer on its own (inference mode) to x of shape (n, *input_shape);
        returns a Tensor (an ndarray with ``.numpy()``) of shape (n, *output_shape)."""
        dtype = self._dtype() if self.built else np.float32
        x = _validation.as_inputs(x, "x", dtype, self._in_shape)
        if not self.built:
            self._build_standalone(x.shape[1:], x.dtype)
        out = self._call(x.reshape(x.shape[0], -1))
        return _wrap(out.reshape(x.shape[0], *self.compute_output_shape(
            self._in_shape)))  # type: ignore[arg-type]  # built above

    def _call(self, x: FloatArray) -> FloatArray:
        """The layer's inference-mode output for validated x (per kind)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be called on its own")

    def _dtype(self) -> DTypeLike:
        return np.float32

    def _build_standalone(self, input_shape: Sequence[int], dtype: DTypeLike) -> None:
        self.compute_output_shape(input_shape)   # raises on a shape the layer cannot take
        params = np.zeros(self.param_count(input_shape), dtype)
        aux = np.zeros(self.stat_count(input_shape), dtype)
        self._bind(input_shape, params, 0, aux, 0)

    def _claim(self, model: Any) -> None:
        """Record `model` as this layer's owner; ValueError if another model holds it."""
        owner = self._owner() if self._owner is not None else None
        if owner is not None and owner is not model:
            raise ValueError(
                f"layer {self.name!r} already belongs to model {owner.name!r}; fastnn keeps "
                "each model's weights in one flat buffer, so a layer cannot be shared between "
                "models (make a new one, e.g. type(layer).from_config(layer.get_config()))")

    def _set_owner(self, model: Any) -> None:
        self._owner = None if model is None else weakref.ref(model)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_owner"] = None
        return state


class InputLayer(Layer):
    """Declares the model's input shape; holds no weights and computes nothing.

    Parameters
    ----------
    shape : tuple
        ``(n_features,)``, excluding the batch axis.
    batch_size : None
        Only None (fastnn takes any number of rows).
    dtype : None, "float32" or "float64"
        Recorded for Keras compatibility; the model's dtype rules computation.
    """

    def __init__(self, shape: int | Sequence[int] | None = None, batch_size: None = None,
                 dtype: DTypeLike | None = None, sparse: bool | None = None,
                 ragged: bool | None = None, batch_shape: Sequence[int | None] | None = None,
                 input_tensor: None = None, optional: bool = False,
                 name: str | None = None) -> None:
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("pass shape or batch_shape, not both")
            if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 1:
                raise ValueError(f"batch_shape must be a tuple (batch, n_features), "
                                 f"got {batch_shape!r}")
            shape = tuple(batch_shape[1:])
        if shape is None:
            raise ValueError("InputLayer needs shape=(n_features,)")
        for arg, value in (("batch_size", batch_size), ("sparse", sparse), ("ragged", ragged),
                           ("input_tensor", input_tensor)):
            if value not in (None, False):
                raise ValueError(f"InputLayer: {arg} is not supported by fastnn (dense "
                                 "float arrays of any batch size only)")
        if optional:
            raise ValueError("InputLayer: optional inputs are not supported by fastnn")
        super().__init__(name=name, input_shape=shape)
        self.input_dtype = None if dtype is None else _validation.check_dtype(dtype).name
        self.shape = (None, *self.input_shape_arg)  # type: ignore[misc]  # checked above
        self._set_input_shape(self.input_shape_arg)  # type: ignore[arg-type]

    @property
    def output(self) -> KerasTensor:
        return KerasTensor(self.shape, self.input_dtype or "float32", self.name)

    def _spec(self, offset: int, aux_offset: int) -> dict[str, Any]:
        raise ValueError("InputLayer is not part of the computed stack")

    def _call(self, x: FloatArray) -> FloatArray:
        return x.copy()

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "shape": self.input_shape_arg, "dtype": self.input_dtype}


def Input(shape: int | Sequence[int] | None = None, batch_size: None = None,
          dtype: DTypeLike | None = None, sparse: bool | None = None, ragged: bool | None = None,
          batch_shape: Sequence[int | None] | None = None, name: str | None = None,
          tensor: None = None, optional: bool = False) -> KerasTensor:
    """Declare a model input: ``Sequential([Input(shape=(400,)), Dense(25), ...])``.

    Returns a symbolic tensor with ``.shape == (None, n_features)``; as the first entry
    of a Sequential it sets the model's input width and builds the model at once.
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       ragged=ragged, batch_shape=batch_shape, input_tensor=tensor,
                       optional=optional, name=name)
    out = layer.output
    out._input_layer = layer  # type: ignore[attr-defined]  # read by Sequential
    return out


class _KernelOptions:
    """Mixin of the layers with a kernel and an optional bias (Dense, Conv1D, Conv2D):
    the arguments they share, checked in one place, and the engine-spec entries built
    from them."""

    activation: Callable[..., Any]
    use_bias: bool
    kernel_initializer: Initializer
    bias_initializer: Initializer
    kernel_regularizer: Regularizer | None
    bias_regularizer: Regularizer | None

    def _set_kernel_options(self, activation: ActivationLike, use_bias: bool,
                            kernel_initializer: str | Initializer,
                            bias_initializer: str | Initializer,
                            kernel_regularizer: Regularizer | str | ConfigDict | None,
                            bias_regularizer: Regularizer | str | ConfigDict | None) -> None:
        self.activation = activations.get(activation)
        if not isinstance(use_bias, (bool, np.bool_)):
            raise TypeError(f"use_bias must be a bool, got {type(use_bias).__name__}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "bias_regularizer")

    def _kernel_spec(self, offset: int, kernel_size: int) -> dict[str, Any]:
        """Activation, penalties and offsets for a kernel of kernel_size entries at
        offset, the bias (if any) right after it."""
        return {"activation": activations.code(self.activation),
                "alpha": activations.LEAKY_RELU_SLOPE,
                **_penalty_spec(self.kernel_regularizer, "l1", "l2"),
                **_penalty_spec(self.bias_regularizer if self.use_bias else None,
                                "bias_l1", "bias_l2"),
                "w_off": offset, "b_off": offset + kernel_size if self.use_bias else -1}


class Dense(_KernelOptions, Layer):
    """Densely connected layer: ``activation(x @ kernel + bias)``.

    Parameters
    ----------
    units : int
        Width of the output, >= 1.
    activation : str, callable or None
        A name ("linear", "relu", "sigmoid", "tanh", "leaky_relu", "swish", "softmax")
        or a function from fastnn.activations; None is the identity.  The attribute
        ``activation`` is the function itself (``layer.activation == activations.relu``).
    use_bias : bool, default True
    kernel_initializer : str or Initializer, default "glorot_uniform"
    bias_initializer : str or Initializer, default "zeros"
    kernel_regularizer, bias_regularizer : L1, L2, L1L2, a name ("l1", "l2", ...) or None
        Penalty on the kernel (bias) added to the loss, as in Keras (fastnn.regularizers).
    input_dim : int, optional
        Width of the input; when given to the first layer, the model is built at once
        (as ``input_shape=(input_dim,)``).
    input_shape, name
        See `Layer`.
    """

    def __init__(self, units: int, activation: ActivationLike = None, use_bias: bool = True,
                 kernel_initializer: str | Initializer = "glorot_uniform",
                 bias_initializer: str | Initializer = "zeros",
                 kernel_regularizer: Regularizer | str | ConfigDict | None = None,
                 bias_regularizer: Regularizer | str | ConfigDict | None = None, *,
                 input_dim: int | None = None, input_shape: int | Sequence[int] | None = None,
                 name: str | None = None) -> None:
        if input_dim is not None:
            input_dim = _validation.check_int(input_dim, "input_dim", 1)
            if input_shape is not None and _check_shape(input_shape, "input_shape") != (input_dim,):
                raise ValueError("input_dim and input_shape disagree")
            input_shape = (input_dim,)
        super().__init__(name=name, input_shape=input_shape)
        self.units = _validation.check_int(units, "units", 1)
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                 kernel_regularizer, bias_regularizer)
        self.input_dim = input_dim
        # views into the model's parameters once built (None before; bias None without bias)
        self.kernel: FloatArray = None  # type: ignore[assignment]
        self.bias: FloatArray | None = None

    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        _require_flat(self, input_shape)
        return (self.units,)

    def _output_activation(self) -> Callable[..., Any] | None:
        return self.activation

    def param_count(self, input_shape: Sequence[int]) -> int:
        return _flat_width(input_shape) * self.units + (self.units if self.use_bias else 0)

    def _dtype(self) -> DTypeLike:
        return self.kernel.dtype

    def _bind(self, input_shape: Sequence[int], params: FloatArray, offset: int, aux: FloatArray,
              aux_offset: int) -> tuple[int, int]:
        n_in = _flat_width(input_shape)
        old = self._weight_list() if self.built and self.n_in == n_in else None
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
        self._set_input_shape(input_shape)
        return offset + self.param_count(input_shape), aux_offset

    def _spec(self, offset: int, aux_offset: int) -> dict[str, Any]:
        return {"kind": "dense", "n_in": self.n_in, "n_out": self.units,
                **self._kernel_spec(offset, self.n_in * self.units)}

    def _weight_list(self) -> list[FloatArray]:
        return [self.kernel] + ([self.bias] if self.use_bias else [])  # type: ignore[list-item]

    def _trainable_count(self) -> int:
        return 2 if self.use_bias else 1

    def _set_weights(self, arrays: list[FloatArray]) -> None:
        self.kernel[...] = arrays[0]
        if self.use_bias:
            self.bias[...] = arrays[1]  # type: ignore[index]  # use_bias: a view

    def _call(self, x: FloatArray) -> FloatArray:
        z = np.empty((x.shape[0], self.units), x.dtype)
        linear = self.activation is activations.linear
        a = z if linear else np.empty_like(z)
        _dense_forward(x, self.kernel, self.bias, activations.code(self.activation),
                       activations.LEAKY_RELU_SLOPE, z, a)
        return a

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "units": self.units,
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "input_dim": self.input_dim}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Layer:
        config = dict(config)
        # files written before bias_regularizer existed have no such key
        for key in ("kernel_regularizer", "bias_regularizer"):
            config[key] = regularizers.deserialize(config.get(key), key)
        return cls(**config)


def _penalty_spec(regularizer: Regularizer | None, l1_key: str, l2_key: str
                  ) -> dict[str, float]:
    """The engine's penalty factors for one weight array (zeros without a regularizer)."""
    l1, l2 = regularizer._factors() if regularizer is not None else (0.0, 0.0)
    return {l1_key: l1, l2_key: l2}


class Dropout(Layer):
    """Inverted dropout: during ``fit`` each input is zeroed with probability `rate` and
    the survivors are scaled by ``1 / (1 - rate)``; the identity at inference.

    Parameters
    ----------
    rate : float
        In [0, 1).
    noise_shape : None
        Keras's argument; only None is supported (one mask value per element).
    seed : int, optional
        In [0, 2**64).  Without it the masks are drawn from the fit's seed, which comes
        from fastnn's global stream (``fastnn.set_random_seed``).  With it, this layer's
        masks are a function of (seed, training step, element) alone: two fits that
        start from the same step give this layer the same masks whatever the global
        stream (and two layers with the same seed and width get the same masks).  Saved
        with the model.
    """

    def __init__(self, rate: float, noise_shape: None = None, seed: int | None = None, *,
                 name: str | None = None, input_shape: int | Sequence[int] | None = None
                 ) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.rate = _validation.check_float(rate, "rate", low=0, high=1, high_open=True)
        if noise_shape is not None:
            raise ValueError("Dropout: noise_shape is not supported (one mask per element)")
        if seed is not None:
            seed = _validation.check_int(seed, "seed", 0)
            if seed >= 2 ** 64:
                raise ValueError(f"seed must be < 2**64, got {seed}")
        self.seed = seed

    def _spec(self, offset: int, aux_offset: int) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": "dropout", "n_in": self.n_in, "n_out": self.n_in,
                                "rate": self.rate}
        if self.seed is not None:
            spec["seed"] = self.seed
        return spec

    def _call(self, x: FloatArray) -> FloatArray:
        return x.copy()

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "rate": self.rate, "seed": self.seed}


class Normalization(Layer):
    """Feature-wise standardisation ``(x - mean) / max(sqrt(variance), 1e-7)``.

    ``adapt(x)`` learns the mean and population variance (ddof 0) once; the same
    statistics are applied in training and prediction and saved with the model.
    Before ``adapt`` (and without `mean`/`variance`) the layer is the identity.
    The weights (``get_weights``) are ``[mean, variance]``.

    Parameters
    ----------
    axis : -1, 1 or None, default -1
        -1 (or 1): one statistic per feature.  None: one scalar mean and variance over
        every value (the weights are then 0-d).
    mean, variance : float or array-like, optional
        Fixed statistics instead of ``adapt``: per feature (length n_features), or a
        scalar / length-1 value broadcast to every feature.
    """

    _EPSILON = 1e-7   # Keras's backend.epsilon(): constant features stay finite

    def __init__(self, axis: int | Sequence[int] | None = -1, mean: ArrayLike | None = None,
                 variance: ArrayLike | None = None, *, name: str | None = None,
                 input_shape: int | Sequence[int] | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        if isinstance(axis, (tuple, list)) and len(axis) == 1:
            axis = axis[0]
        if axis is not None and (isinstance(axis, bool) or axis not in (-1, 1)):
            raise ValueError(f"axis must be -1 (or 1) or None for (n, n_features) inputs, "
                             f"got {axis!r}")
        self.axis = None if axis is None else -1
        if (mean is None) != (variance is None):
            raise ValueError("mean and variance must be given together")
        # mean and the 1/std divisor are views into the model's statistics buffer, and
        # variance an array of the same dtype, once built (None before)
        self.mean: FloatArray = None  # type: ignore[assignment]
        self.variance: FloatArray = None  # type: ignore[assignment]
        self._std: FloatArray = None  # type: ignore[assignment]
        # float64 (mean, variance) of shape (n,), (1,) or ()
        self._stats: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        self._from_data = False  # the statistics came from adapt (names its argument)
        if mean is not None:
            mean = self._as_stat(mean, "mean")
            variance = self._as_stat(variance, "variance")  # type: ignore[arg-type]  # given
            if mean.shape != variance.shape and mean.size != 1 and variance.size != 1:
                raise ValueError(f"mean and variance have incompatible shapes {mean.shape} "
                                 f"and {variance.shape}")
            if (variance < 0).any():
                raise ValueError("variance must be >= 0")
            if self.axis is None and (mean.size != 1 or variance.size != 1):
                raise ValueError("with axis=None, mean and variance must be scalars")
            self._stats = (mean, variance)

    @staticmethod
    def _as_stat(value: ArrayLike, name: str) -> NDArray[np.float64]:
        arr = _validation._real_array(value, name).astype(np.float64)
        if arr.ndim > 1:
            arr = arr.reshape(-1)
        _validation._check_finite(arr, name)
        return np.atleast_1d(arr)

    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        _require_flat(self, input_shape)
        return tuple(input_shape)

    def stat_count(self, input_shape: Sequence[int]) -> int:
        return 2 * _flat_width(input_shape)

    def adapt(self, data: ArrayLike) -> None:
        """Learn the mean and population variance from data of shape (n, n_features)
        (per feature, or over every value with axis=None)."""
        x = _validation.as_features(data, "data", np.float64, self.n_in)
        if self.axis is None:
            mean, variance = np.array([x.mean()]), np.array([x.var()])
        else:
            mean, variance = x.mean(axis=0), x.var(axis=0)
        # checked in the dtype the layer computes in (float32 when it builds here), before
        # anything changes
        self._check_range(mean, variance, self._dtype() if self.built else np.float32,
                          "data")
        if not self.built:   # Keras: an adapted layer is built
            self._stats = None
            self._build_standalone(x.shape[1:], np.float32)
        self._set_stats(mean, variance)
        self._from_data = True
        return None

    def _check_range(self, mean: ArrayLike, variance: ArrayLike, dtype: DTypeLike,
                     source: str | None = None) -> None:
        """ValueError unless mean and variance stay finite in `dtype`: float64 statistics
        beyond float32's range become inf in a float32 model (the output then is NaN or
        0, silently).  The message names the constructor argument, or `source`."""
        dtype = np.dtype(dtype)
        with np.errstate(over="ignore"):   # an overflowing value becomes inf: reported
            for stat, value in (("mean", mean), ("variance", variance)):
                if np.isfinite(np.asarray(value, np.float64).astype(dtype)).all():
                    continue
                what = f"{source} gives a {stat}" if source else f"{stat} has values"
                raise ValueError(f"{what} beyond the range of {dtype.name} (|value| > "
                                 f"{np.finfo(dtype).max:.4g}), the dtype the model "
                                 f"computes in")

    def _set_stats(self, mean: ArrayLike, variance: ArrayLike) -> None:
        # float64 statistics are kept as the source of truth, so that a layer first used
        # on its own (in float32) and then placed in a float64 model loses no precision
        self._stats = (np.atleast_1d(np.asarray(mean, np.float64)).copy(),
                       np.atleast_1d(np.asarray(variance, np.float64)).copy())
        if self.built:
            self._write_views()

    def _write_views(self) -> None:
        n_in = self.mean.shape[0]
        mean, variance = (np.broadcast_to(s, (n_in,))
                          for s in self._stats)  # type: ignore[union-attr]  # set by _bind
        self.mean[...] = mean
        self.variance = variance.astype(self.mean.dtype)
        self._std[...] = np.maximum(np.sqrt(self.variance), self.variance.dtype.type(self._EPSILON))

    def _bind(self, input_shape: Sequence[int], params: FloatArray, offset: int, aux: FloatArray,
              aux_offset: int) -> tuple[int, int]:
        n_in = _flat_width(input_shape)
        if self._stats is not None and self._stats[0].shape[0] not in (1, n_in):
            raise ValueError(f"Normalization has statistics for {self._stats[0].shape[0]} "
                             f"features but receives {n_in}")
        if self._stats is not None:   # given in float64: now the model's dtype is known
            self._check_range(*self._stats, aux.dtype,
                              "data" if getattr(self, "_from_data", False) else None)
        self._set_input_shape(input_shape)
        self.mean = aux[aux_offset:aux_offset + n_in]
        self._std = aux[aux_offset + n_in:aux_offset + 2 * n_in]
        if self._stats is None:  # identity until adapted
            self._stats = (np.zeros(1), np.ones(1))
        self._write_views()
        return offset, aux_offset + 2 * n_in

    def _dtype(self) -> DTypeLike:
        return self.mean.dtype

    def _spec(self, offset: int, aux_offset: int) -> dict[str, Any]:
        return {"kind": "normalization", "n_in": self.n_in, "n_out": self.n_in,
                "aux_off": aux_offset}

    def _weight_list(self) -> list[FloatArray]:
        if self.axis is None:
            return [self.mean[:1].reshape(()), self.variance[:1].reshape(())]
        return [self.mean, self.variance]

    def _check_values(self, arrays: list[FloatArray], offset: int) -> None:
        if (arrays[1] < 0).any():
            raise ValueError(f"weights[{offset + 1}]: a Normalization variance must be >= 0")

    def _set_weights(self, arrays: list[FloatArray]) -> None:
        self._set_stats(arrays[0], arrays[1])

    def _call(self, x: FloatArray) -> FloatArray:
        return ((x - self.mean) / self._std).astype(x.dtype)

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "axis": self.axis}


# ----------------------------------------------------------------------------- activation layers
# Each is one engine layer of kind "activation": act(x) elementwise (softmax over the last
# axis), no weights.  As the output layer, a sigmoid/softmax one fuses with its
# cross-entropy exactly as a Dense layer with that activation does.

class _ActivationLayer(Layer):
    """Base of Activation, ReLU, LeakyReLU and Softmax: ``activation`` and a slope."""

    def __init__(self, activation: ActivationLike, negative_slope: float = 0.0,
                 name: str | None = None, *,
                 input_shape: int | Sequence[int] | None = None) -> None:
        super().__init__(name, input_shape=input_shape)
        self.activation = activations.get(activation)
        self._slope = negative_slope
        self._compute_dtype: DTypeLike = np.float32


    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        if self.activation is activations.softmax:   # the engine's softmax spans the row
            _require_flat(self, input_shape)
        return tuple(input_shape)

    def _bind(self, input_shape: Sequence[int], params: FloatArray, offset: int, aux: FloatArray,
              aux_offset: int) -> tuple[int, int]:
        self._set_input_shape(input_shape)
        self._compute_dtype = params.dtype
        return offset, aux_offset

    def _dtype(self) -> DTypeLike:
        return self._compute_dtype

    def _output_activation(self) -> Callable[..., Any] | None:
        return self.activation

    def _spec(self, offset: int, aux_offset: int) -> dict[str, Any]:
        return {"kind": "activation", "n_in": self.n_in, "n_out": self.n_in,
                "activation": activations.code(self.activation), "alpha": self._slope}

    def _call(self, x: FloatArray) -> FloatArray:
        out = np.empty_like(x)
        _activation_forward(x, activations.code(self.activation), self._slope, out)
        return out


def _check_slope(negative_slope: float) -> float:
    return _validation.check_float(negative_slope, "negative_slope", low=0)


class Activation(_ActivationLayer):
    """Applies an activation function: ``Activation("relu")``, ``Activation(activations.tanh)``.

    Parameters
    ----------
    activation : str or callable
        A name or a function from fastnn.activations (``leaky_relu`` keeps the
        activation's slope, 0.01).
    """

    def __init__(self, activation: ActivationLike, *, name: str | None = None,
                 input_shape: int | Sequence[int] | None = None) -> None:
        fn = activations.get(activation)
        slope = activations.LEAKY_RELU_SLOPE if fn is activations.leaky_relu else 0.0
        super().__init__(fn, slope, name, input_shape=input_shape)

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "activation": activations.serialize(self.activation)}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Layer:
        return cls(**config)


class ReLU(_ActivationLayer):
    """Rectified linear unit ``max(x, 0)``; with ``negative_slope`` s, ``s * x`` below 0.

    Keras's ``max_value`` and ``threshold`` are accepted at their defaults only.
    """

    def __init__(self, max_value: None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, *, name: str | None = None,
                 input_shape: int | Sequence[int] | None = None) -> None:
        if max_value is not None:
            raise ValueError("ReLU: max_value is not supported by fastnn (use None)")
        if _validation.check_float(threshold, "threshold") != 0.0:
            raise ValueError("ReLU: threshold other than 0 is not supported by fastnn")
        slope = _check_slope(negative_slope)
        super().__init__("leaky_relu" if slope else "relu", slope, name,
                         input_shape=input_shape)

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "max_value": None, "negative_slope": self._slope,
                "threshold": 0.0}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Layer:
        return cls(**config)


class LeakyReLU(_ActivationLayer):
    """``x`` for ``x > 0``, else ``negative_slope * x``.

    Parameters
    ----------
    negative_slope : float, default 0.3
        Keras 3's layer default (the ``leaky_relu`` activation keeps the course's 0.01).
    """

    def __init__(self, negative_slope: float = 0.3, *, name: str | None = None,
                 input_shape: int | Sequence[int] | None = None) -> None:
        super().__init__("leaky_relu", _check_slope(negative_slope), name,
                         input_shape=input_shape)

    @property
    def negative_slope(self) -> float:
        return self._slope

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "negative_slope": self._slope}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Layer:
        return cls(**config)


class Softmax(_ActivationLayer):
    """Softmax over the last axis (row maximum subtracted before ``exp``).

    Parameters
    ----------
    axis : int, default -1
        Only the last axis is supported (the dense models' feature axis).
    """

    def __init__(self, axis: int = -1, *, name: str | None = None,
                 input_shape: int | Sequence[int] | None = None) -> None:
        if isinstance(axis, bool) or axis not in (-1,):
            raise ValueError(f"Softmax: only axis=-1 is supported, got {axis!r}")
        super().__init__("softmax", 0.0, name, input_shape=input_shape)
        self.axis = -1

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "axis": self.axis}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Layer:
        return cls(**config)


# ----------------------------------------------------------------------------- shape layers
# Rows are kept flat and C-ordered (channels last, row-major, as Keras), so Flatten and
# Reshape change only the shape the model reports: they have no engine spec and cost
# nothing.

class _ShapeLayer(Layer):
    def _bind(self, input_shape: Sequence[int], params: FloatArray, offset: int, aux: FloatArray,
              aux_offset: int) -> tuple[int, int]:
        self.compute_output_shape(input_shape)
        self._set_input_shape(input_shape)
        self._compute_dtype = params.dtype
        return offset, aux_offset

    def _dtype(self) -> DTypeLike:
        return getattr(self, "_compute_dtype", np.float32)

    def _spec(self, offset: int, aux_offset: int) -> dict[str, Any] | None:
        return None

    def _call(self, x: FloatArray) -> FloatArray:
        return x.copy()


class Flatten(_ShapeLayer):
    """Flattens each sample to one axis, in channels-last row-major order (as Keras).

    Parameters
    ----------
    data_format : None or "channels_last"
        Only channels-last data (Keras's default) is supported.
    """

    def __init__(self, data_format: str | None = None, *, name: str | None = None,
                 input_shape: int | Sequence[int] | None = None) -> None:
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Flatten: data_format must be None or 'channels_last', got "
                             f"{data_format!r}")
        super().__init__(name, input_shape=input_shape)
        self.data_format = data_format

    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        return (_flat_width(input_shape),)

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "data_format": self.data_format}


class Reshape(_ShapeLayer):
    """Reshapes each sample to `target_shape` (C order); one entry may be -1.

    Parameters
    ----------
    target_shape : tuple of int
        The output shape without the batch axis, e.g. ``(8, 8, 1)``.
    """

    def __init__(self, target_shape: int | Sequence[int], *, name: str | None = None,
                 input_shape: int | Sequence[int] | None = None) -> None:
        super().__init__(name, input_shape=input_shape)
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not target_shape:
            raise ValueError(f"target_shape must be a tuple of ints, got {target_shape!r}")
        shape = tuple(_validation.check_int(s, "target_shape", -1) for s in target_shape)
        if 0 in shape or shape.count(-1) > 1:
            raise ValueError(f"target_shape entries must be >= 1, with at most one -1, got "
                             f"{target_shape!r}")
        self.target_shape = shape

    def compute_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        size, known = _flat_width(input_shape), -_flat_width(self.target_shape)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"Reshape: cannot reshape input shape {tuple(input_shape)} "
                                 f"to {self.target_shape}")
            return tuple(size // known if s == -1 else s for s in self.target_shape)
        if size != -known:
            raise ValueError(f"Reshape: input shape {tuple(input_shape)} has {size} values, "
                             f"target_shape {self.target_shape} has {-known}")
        return self.target_shape

    def get_config(self) -> ConfigDict:
        return {"name": self.name, "target_shape": self.target_shape}

    @classmethod
    def from_config(cls, config: ConfigDict) -> Reshape:
        config = dict(config)
        config["target_shape"] = tuple(config["target_shape"])
        return cls(**config)


LAYERS = {"Flatten": Flatten, "Reshape": Reshape, "Dense": Dense, "Dropout": Dropout,
          "Normalization": Normalization,
          "InputLayer": InputLayer, "Activation": Activation, "ReLU": ReLU,
          "LeakyReLU": LeakyReLU, "Softmax": Softmax}

from fastnn._conv_layers import Conv1D, Conv2D, MaxPooling1D, MaxPooling2D  # noqa: E402

LAYERS.update({"Conv1D": Conv1D, "Conv2D": Conv2D, "MaxPooling1D": MaxPooling1D,
               "MaxPooling2D": MaxPooling2D})
