"""Sequential: the Keras model API over fastnn's compiled training engine.

Data flow: every public call validates its arguments first (fastnn._validation)
and only then touches the model, so a call that raises leaves it unchanged.
The model owns two flat buffers -- all trainable parameters, and the
non-trainable statistics -- which its layers view.  ``fit`` hands them to a
compiled Engine (fastnn._kernels.engine) that runs chunks of mini-batch steps
without the GIL.  A chunk is sized from the measured step time to about
``_CHUNK_SECONDS`` of work (a whole epoch for small data), so that Python gets
control a few times per second: to redraw the progress bar, and to stop cleanly
on Ctrl-C.  A callback that overrides a per-batch hook gets one batch per call.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from typing import TYPE_CHECKING, overload

import numpy as np

from fastnn import _progbar, _random, _validation
from fastnn import callbacks as callbacks_module
from fastnn import losses as losses_module
from fastnn import metrics as metrics_module
from fastnn import optimizers as optimizers_module
from fastnn._interrupt import InterruptGuard
from fastnn._kernels import LOSSES, Engine
from fastnn._tensor import Tensor as _Tensor
from fastnn._tensor import wrap as _wrap
from fastnn.activations import linear as _linear
from fastnn.activations import serialize as _activation_name
from fastnn.layers import InputLayer, KerasTensor, Layer, _check_shape, unique_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any, Literal

    from fastnn._typing import (
        ArrayLike,
        ClassWeight,
        DTypeLike,
        EvaluateResult,
        FloatArray,
        Logs,
        LossAndMetrics,
        NDArray,
        PathLike,
        ValidationData,
        Verbose,
    )
    from fastnn.callbacks import Callback, History
    from fastnn.losses import Loss
    from fastnn.optimizers import Optimizer

#: Target duration of one engine call during fit (seconds of compiled work).
_CHUNK_SECONDS = 0.1


class Sequential:
    """A linear stack of layers with Keras's ``compile`` / ``fit`` / ``predict`` API.

    Parameters
    ----------
    layers : list of Layer, optional
        May start with ``Input(shape=(n_features,))`` (or an InputLayer), which
        declares the input width and builds the model at once; so does
        ``input_shape=`` on the first layer or ``input_dim=`` on a first Dense.
    trainable : True
        Keras's argument; only True is supported.
    name : str, optional
        Default "sequential", then "sequential_1", ... (Keras's auto-naming).
    dtype : {"float32", "float64"}, default "float32"
        Precision of every parameter and computation of the model.

    Examples
    --------
    >>> model = Sequential([Input(shape=(64,)), Dense(25, activation="relu"), Dense(10)])
    >>> model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
    >>> history = model.fit(X, y, epochs=10, verbose=0)   # doctest: +SKIP
    """

    # Set by compile (None before; every path that reads them requires a compiled model).
    optimizer: Optimizer
    loss: Loss
    # The flat parameter and statistics buffers, once the model is built (None before).
    _params: FloatArray
    _aux: FloatArray

    def __init__(self, layers: Sequence[Layer | KerasTensor] | None = None,
                 trainable: bool = True, name: str | None = None, *,
                 dtype: DTypeLike = "float32") -> None:
        if trainable is not True:
            raise ValueError("trainable=False is not supported: every Dense weight trains")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.dtype = _validation.check_dtype(dtype)
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}")
            layers = [_as_layer(layer) for layer in layers]
            for i, layer in enumerate(layers):
                self._check_layer(layer)
                if isinstance(layer, InputLayer) and i:
                    raise ValueError("an Input/InputLayer can only be the first layer")
                if any(layer is other for other in layers[:i]):
                    raise ValueError(f"layer {layer.name!r} appears twice in layers")
        self.name = name or unique_name("sequential")
        self._layers: list[Layer] = []
        self._input_layer: InputLayer | None = None
        self._n_in: int | None = None           # flat input width (what the engine sees)
        self._input_shape: tuple[int, ...] | None = None    # without the batch axis
        self._out_shape: tuple[int, ...] | None = None
        self._flat_input = False
        self._params = self._aux = None  # type: ignore[assignment]
        self._offsets: list[tuple[int, int]] = []
        self.optimizer = self.loss = None  # type: ignore[assignment]
        self._metric_names: list[str] = []
        self._compiled = False
        self._train_engine: Engine | None = None
        self._infer_engine: Engine | None = None
        self._step_seconds: float | None = None   # time of one training step, sizes chunks
        self._guard = _CallGuard()
        self.stop_training = False
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------------- structure
    @property
    def layers(self) -> list[Layer]:
        """The model's layers (an Input/InputLayer is not listed, as in Keras)."""
        return list(self._layers)

    @property
    def built(self) -> bool:
        return self._n_in is not None

    def _check_layer(self, layer: object) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a fastnn layer, got {type(layer).__name__}")
        layer._claim(self)

    def add(self, layer: Layer | KerasTensor, rebuild: bool = True) -> None:
        """Append a layer.  The model is built as soon as its input width is known
        (Input first, or input_shape / input_dim on the first layer); layers already
        built keep their weights.  A layer that another model holds raises ValueError
        (`rebuild` is accepted for Keras; fastnn always rebuilds)."""
        layer = _as_layer(layer)
        self._check_layer(layer)
        if any(layer is existing for existing in self._layers) or layer is self._input_layer:
            raise ValueError(f"layer {layer.name!r} is already in this model")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("an Input/InputLayer can only be the first layer")
            self._input_layer = layer
            layer._set_owner(self)
            return
        shape = self._input_shape
        if not self._layers:
            # the first layer: the input shape comes from Input, or from the layer's own
            # input_shape / input_dim (both given: they must agree)
            declared, shape = layer._declared_shape(), self._declared_input_shape()
            if None not in (declared, shape) and declared != shape:
                raise ValueError(f"layer {layer.name!r} declares input shape {declared}, "
                                 f"but the model's Input has {shape}")
            shape = declared if shape is None else shape
        self._layers.append(layer)
        if shape is not None:
            try:
                self._build(shape)
            except ValueError:   # e.g. an adapted Normalization of another width
                self._layers.pop()
                if self._layers:
                    self._build(self._input_shape)
                raise
        layer._set_owner(self)

    def _declared_input_shape(self) -> tuple[int, ...] | None:
        if self._input_layer is not None:
            return self._input_layer.input_shape_arg
        return None

    def pop(self, rebuild: bool = True) -> None:
        """Remove the last layer (it can then join another model); returns None.  The
        remaining layers keep their weights (`rebuild` is accepted for Keras; fastnn
        always rebuilds)."""
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        layer._set_owner(None)
        if self._layers and self.built:
            self._build(self._input_shape)
        elif not self._layers:
            self._n_in = self._input_shape = None
            self._params = self._aux = None  # type: ignore[assignment]
            self._offsets = []
            self._train_engine = self._infer_engine = None
            shape = self._declared_input_shape()
            if shape is not None:
                self._input_shape, self._n_in = shape, math.prod(shape)

    def build(self, input_shape: int | Sequence[int | None] | None = None) -> None:
        """Create the weights for inputs of shape ``input_shape``: Keras's batch shape
        ``(None, *shape)`` (any batch size in place of None), a bare ``(n,)`` or an int n;
        None uses the declared input shape."""
        if input_shape is None:
            input_shape = self._declared_input_shape() or (
                self._layers[0]._declared_shape() if self._layers else None)
            if input_shape is None:
                raise ValueError("build: no input_shape given and none declared")
        elif isinstance(input_shape, (tuple, list)) and len(input_shape) >= 2:
            input_shape = tuple(input_shape)[1:]    # drop the batch axis
        input_shape = _check_shape(input_shape, "input_shape")
        if not self._layers:
            raise ValueError("the model has no layers; add some before building")
        self._build(input_shape)

    def _layer_shapes(self, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
        """Each layer's input shape, then the model's output shape; ValueError when a
        layer cannot take the shape it would receive."""
        shapes = [tuple(input_shape)]
        for layer in self._layers:
            shapes.append(tuple(layer.compute_output_shape(shapes[-1])))
        return shapes

    def _build(self, input_shape: Any) -> None:
        if not isinstance(input_shape, tuple):
            input_shape = (input_shape,)
        all_shapes = self._layer_shapes(input_shape)
        shapes = all_shapes[:-1]
        n_params = sum(layer.param_count(s) for layer, s in zip(self._layers, shapes, strict=True))
        n_stats = sum(layer.stat_count(s) for layer, s in zip(self._layers, shapes, strict=True))
        params, aux = np.zeros(n_params, self.dtype), np.zeros(n_stats, self.dtype)
        offsets, offset, aux_offset = [], 0, 0
        for layer, s in zip(self._layers, shapes, strict=True):
            offsets.append((offset, aux_offset))
            offset, aux_offset = layer._bind(s, params, offset, aux, aux_offset)
        self._params, self._aux, self._offsets = params, aux, offsets
        self._input_shape, self._n_in = input_shape, math.prod(input_shape)
        self._out_shape = all_shapes[-1]
        self._flat_input = len(input_shape) == 1   # model(x)'s fast path takes 2-D x only
        self._train_engine = self._infer_engine = None

    def _output_shape(self) -> tuple[int, ...]:
        return self._out_shape  # type: ignore[return-value]  # built

    def _output_width(self, n_in: int | None = None) -> int:
        return math.prod(self._output_shape())

    def _require_layers(self) -> None:
        if not self._layers:
            raise ValueError("the model has no layers")

    def count_params(self) -> int:
        """Number of scalars in every weight (trainable and not), as Keras."""
        self._require_built("count_params")
        return int(sum(layer.count_params() for layer in self._layers))

    def _require_built(self, what: str) -> None:
        if not self.built or not self._layers:
            raise ValueError(f"{what}: the model is not built yet; call fit, predict or "
                             "build first, or declare the input with Input(shape=...)")

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index (into ``layers``), as Keras."""
        if name is not None and index is not None:
            raise ValueError("Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        if index is not None:
            index = _validation.check_int(index, "index")
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model "
                                 f"only has {len(self._layers)} layers.")
            return self._layers[index]
        if name is not None:
            for layer in self._layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: "
                             f"{[layer.name for layer in self._layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    # ------------------------------------------------------------------------- symbolic shapes
    def _shape_error(self, what: str) -> AttributeError:
        return AttributeError(f"The model {self.name!r} has not been built yet, so {what} is "
                              "not defined; declare the input with Input(shape=...) or call "
                              "build / fit first.")

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        if not self.built:
            raise self._shape_error("input_shape")
        return (None, *self._input_shape)  # type: ignore[misc]  # built: a tuple

    @property
    def output_shape(self) -> tuple[int | None, ...]:
        if not self.built or not self._layers:
            raise self._shape_error("output_shape")
        return (None, *self._output_shape())

    @property
    def inputs(self) -> list[KerasTensor]:
        """``[KerasTensor]`` whose ``.shape`` is ``(None, n_features)``."""
        if not self.built:
            raise self._shape_error("inputs")
        name = self._input_layer.name if self._input_layer is not None else "input_layer"
        return [KerasTensor(self.input_shape, self.dtype.name, name)]

    @property
    def outputs(self) -> list[KerasTensor]:
        return [KerasTensor(self.output_shape, self.dtype.name, self._layers[-1].name)]

    @property
    def input(self) -> KerasTensor:
        return self.inputs[0]

    @property
    def output(self) -> KerasTensor:
        return self.outputs[0]

    # ------------------------------------------------------------------------- compile
    def compile(self, optimizer: str | Optimizer | None = "adam", loss: str | Loss | None = None,
                loss_weights: None = None,
                metrics: Sequence[str] | None = None,
                weighted_metrics: None = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: bool | str = "auto",
                auto_scale_loss: bool = True) -> None:
        """Configure training.

        Parameters
        ----------
        optimizer : str or Optimizer, default "adam"
            A name or an instance (None also means Adam with its defaults; Keras's
            default is RMSprop, which the course never uses).
        loss : str or Loss
            A name ("binary_crossentropy", "categorical_crossentropy",
            "sparse_categorical_crossentropy", "mse", "mae", "huber", or a class name)
            or an instance from fastnn.losses.
        metrics : list of str, optional
            "accuracy" (resolved from the target shapes as in Keras 3),
            "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
            "mse", "mae".
        loss_weights, weighted_metrics : None
            Keras's multi-output and weighted-metric options; only None is supported.
        run_eagerly, steps_per_execution, jit_compile, auto_scale_loss
            Accepted for Keras compatibility; they do not change results, and fastnn
            always runs compiled (fit sizes its own chunks of batches).

        Warns
        -----
        UserWarning
            A cross-entropy with ``from_logits=True`` after a sigmoid/softmax output
            layer, or with ``from_logits=False`` after a linear one (Keras warns about
            the first; both train badly).
        """
        if loss is None:
            raise ValueError("loss is required, e.g. loss='mse' or "
                             "SparseCategoricalCrossentropy(from_logits=True)")
        if loss_weights is not None:
            raise ValueError("loss_weights is not supported (one output, one loss)")
        if weighted_metrics:
            raise ValueError("weighted_metrics is not supported; metrics are unweighted")
        _validation.check_int(steps_per_execution, "steps_per_execution", 1)
        optimizer = optimizers_module.get(optimizer)
        loss = losses_module.get(loss)
        names = metrics_module.check_names(metrics)
        self.optimizer, self.loss, self._metric_names = optimizer, loss, names
        self._compiled = True
        self._train_engine = None
        self._warn_logits_mismatch()

    def _output_activation(self) -> Callable[..., Any] | None:
        """The last layer's activation function, or None when it is not known."""
        if not self._layers:
            return None
        return self._layers[-1]._output_activation()

    def _warn_logits_mismatch(self) -> None:
        activation = self._output_activation()
        fused = getattr(self.loss, "_fuses_with", None)
        if activation is None or fused is None:
            return   # not a cross-entropy, or an output layer without an activation
        name, loss = _activation_name(activation), self.loss.name
        if self.loss.from_logits and name in ("sigmoid", "softmax"):
            warnings.warn(f"`{loss}` received `from_logits=True`, but the model's output layer "
                          f"has a {name} activation, so its outputs are probabilities, not "
                          "logits. Was this intended? Use a linear output layer with "
                          "from_logits=True, or from_logits=False.", UserWarning, stacklevel=3)
        elif not self.loss.from_logits and activation is _linear:
            warnings.warn(f"`{loss}` received `from_logits=False`, but the model's output "
                          "layer is linear, so its outputs are logits, not probabilities. Was "
                          "this intended? Pass from_logits=True, or give the output layer a "
                          f"{fused} activation.", UserWarning, stacklevel=3)

    def _require_compiled(self, what: str) -> None:
        if not self._compiled:
            raise ValueError(f"{what}: the model must be compiled first: call "
                             "model.compile(optimizer=..., loss=...)")

    # ------------------------------------------------------------------------- engines
    def _specs(self) -> list[dict[str, Any]]:
        """The engine's layer descriptions.  Flatten and Reshape are the identity on the
        flat (C-order) row buffer and have no spec; a stack of only such layers becomes
        one zero-rate Dropout, the engine's identity."""
        specs = [layer._spec(off, aux_off) for layer, (off, aux_off) in
                 zip(self._layers, self._offsets, strict=True)]
        specs = [spec for spec in specs if spec is not None]
        return specs or [{"kind": "dropout", "n_in": self._n_in, "n_out": self._n_in,
                          "rate": 0.0}]

    def _variable_segments(self) -> NDArray[np.int64]:
        """(offset, length) of each trainable variable in the flat parameter vector.

        Keras clips by norm per variable; here a layer's kernel and bias are separate
        variables that share one flat buffer, so the engine needs their boundaries.
        """
        rows = []
        for spec in self._specs():
            if "w_off" in spec:
                rows.append((spec["w_off"], spec.get("w_size", spec["n_in"] * spec["n_out"])))
            if spec.get("b_off", -1) >= 0:
                rows.append((spec["b_off"], spec["geom"][11] if "geom" in spec
                             else spec["n_out"]))
        return np.array(rows, dtype=np.int64).reshape(-1, 2)

    def _get_train_engine(self) -> Engine:
        if self._train_engine is None:
            activation = self._output_activation()
            kernel, fused = self.loss.kernel_for(
                None if activation is None else _activation_name(activation))
            n_out = self._output_width()
            codes = [metrics_module.resolve(m, self.loss.sparse, n_out)
                     for m in self._metric_names]
            threshold = 0.0 if self.loss.from_logits else 0.5
            self._train_engine = Engine(self._specs(), self._params, self._aux,
                                        LOSSES[kernel], fused, codes, threshold,
                                        *self.loss._kernel_params())
        return self._train_engine

    def _get_infer_engine(self) -> Engine:
        if self._infer_engine is None:
            engine = Engine(self._specs(), self._params, self._aux, LOSSES["mse"], False,
                            [], 0.5)
            engine.set_output_type(_Tensor)  # results are Tensors without a view per call
            self._infer_engine = engine
        return self._infer_engine

    # ------------------------------------------------------------------------- data
    def _features(self, x: ArrayLike | None, name: str = "x"
                  ) -> tuple[FloatArray, tuple[int, ...]]:
        """(x as a 2-D C-order array of the model's dtype, x's shape without the batch
        axis): x of shape (n, *input_shape) is validated against the model's input shape
        (any shape while unbuilt) and flattened row by row (a view, no copy)."""
        x = _validation.as_inputs(x, name, self.dtype, self._input_shape)
        return x.reshape(x.shape[0], -1), x.shape[1:]

    def _targets(self, y: ArrayLike | None, name: str, n: int, n_out: int
                 ) -> tuple[FloatArray | None, NDArray[np.intc] | None]:
        """(dense targets or None, int32 labels or None) for the compiled loss."""
        if y is None:
            raise ValueError(f"{name} is required")
        if self.loss.sparse:
            return None, _validation.as_labels(y, name, n, n_out)
        out_shape = self._out_shape if self.built else None
        if out_shape is not None and len(out_shape) > 1:
            # targets of an image-shaped output, (n, *output_shape), as flat rows
            arr = _validation._real_array(y, name)
            if arr.shape[1:] != out_shape:
                raise ValueError(f"{name} must have shape (n, {', '.join(map(str, out_shape))})"
                                 f" to match the model's output, got {arr.shape}")
            y = arr.reshape(arr.shape[0], -1)
        return _validation.as_dense_targets(y, name, n, n_out, self.dtype), None

    def _weights_for(self, sample_weight: ArrayLike | None, class_weight: ClassWeight | None,
                     y: Any, labels: Any, n: int) -> FloatArray | None:
        sw = _validation.as_sample_weight(sample_weight, n, self.dtype)
        if class_weight is None:
            return sw
        if sw is not None:
            raise ValueError("pass either sample_weight or class_weight, not both (as Keras)")
        if labels is None:
            # Keras: one-hot targets give their argmax, a single column its rounded value
            if y.shape[1] == 1:
                labels = np.rint(y[:, 0]).astype(np.intc)
            else:
                labels = y.argmax(axis=1).astype(np.intc)
        return _validation.class_weights(class_weight, labels, self.dtype)

    def _validation_set(self, validation_data: ValidationData, in_shape: tuple[int, ...],
                        n_out: int) -> tuple[Any, Any, Any, Any]:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val)")
        xv = _validation.as_inputs(validation_data[0], "validation_data[0]", self.dtype,
                                   in_shape)
        xv = xv.reshape(xv.shape[0], -1)
        yv, lv = self._targets(validation_data[1], "validation_data[1]", xv.shape[0], n_out)
        swv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            swv = _validation.as_sample_weight(validation_data[2], xv.shape[0], self.dtype,
                                               "validation_data[2]")
        return xv, yv, lv, swv

    # ------------------------------------------------------------------------- training
    def fit(self, x: ArrayLike | None = None, y: ArrayLike | None = None,
            batch_size: int | None = None, epochs: int = 1, verbose: Verbose = "auto",
            callbacks: Sequence[Callback] | None = None, validation_split: float = 0.0,
            validation_data: ValidationData | None = None, shuffle: bool = True,
            class_weight: ClassWeight | None = None, sample_weight: ArrayLike | None = None,
            initial_epoch: int = 0, steps_per_epoch: None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1) -> History:
        """Train for `epochs` passes over (x, y) in mini-batches (Keras's argument order).

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
        y : array-like
            Integer labels of shape (n,) or (n, 1) for the sparse loss, else targets
            of shape (n, n_outputs) ((n,) for one output).
        batch_size : int or None, default None
            Rows per gradient step (None means 32); the last batch is partial, and
            ``len(x)`` is full-batch gradient descent.
        epochs : int, default 1
            Index of the last epoch + 1; 0 (or `initial_epoch`) trains nothing.
        verbose : "auto", 0, 1 or 2
            0 silent; 1 a live progress bar on a terminal (one line per epoch when the
            output is not a terminal); 2 one line per epoch.  "auto" is 1.
        callbacks : list of Callback, optional
        validation_split : float in [0, 1), default 0
            Fraction of the LAST rows held out (before shuffling), as Keras.
        validation_data : tuple (x_val, y_val[, sample_weight_val]), optional
        shuffle : bool, default True
            Reshuffle the training rows every epoch (from fastnn's seeded stream).
        class_weight : dict {class: weight}, optional
        sample_weight : array-like of shape (n,), optional
        initial_epoch : int, default 0
            Epoch to start from (to resume a run): epochs ``initial_epoch .. epochs-1``.
        steps_per_epoch : None
            Only None: with arrays an epoch is ``ceil(n / batch_size)`` steps.
        validation_steps : int, optional
            Validate on the first ``validation_steps`` batches of the validation data.
        validation_batch_size : int, optional
            Validated; does not change the values (validation runs in one pass).
        validation_freq : int, default 1
            Validate after every `validation_freq`-th epoch.

        Returns
        -------
        History
            ``history.history`` maps "loss", each metric and their "val_" forms to
            per-epoch lists.
        """
        self._require_layers()
        self._require_compiled("fit")
        epochs = _validation.check_int(epochs, "epochs", 0)
        initial_epoch = _validation.check_int(initial_epoch, "initial_epoch", 0)
        batch_size = 32 if batch_size is None else _validation.check_int(
            batch_size, "batch_size", 1)
        validation_split = _validation.check_float(validation_split, "validation_split",
                                                   low=0, high=1, high_open=True)
        verbose = _check_verbose(verbose)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        if steps_per_epoch is not None:
            raise ValueError("steps_per_epoch: only None is supported; with array data an "
                             "epoch is ceil(n / batch_size) steps (fastnn takes no generators)")
        if validation_steps is not None:
            validation_steps = _validation.check_int(validation_steps, "validation_steps", 1)
        if validation_batch_size is not None:
            _validation.check_int(validation_batch_size, "validation_batch_size", 1)
        validation_freq = _validation.check_int(validation_freq, "validation_freq", 1)
        callbacks = _check_callbacks(callbacks)

        x, in_shape = self._features(x)
        n = x.shape[0]
        n_out = self._checked_output_width(in_shape)
        y, labels = self._targets(y, "y", n, n_out)
        sw = self._weights_for(sample_weight, class_weight, y, labels, n)
        val: tuple[Any, Any, Any, Any] | None = None
        if validation_data is not None:
            val = self._validation_set(validation_data, in_shape, n_out)
        elif validation_split > 0:
            n_train = int(n * (1 - validation_split))
            if n_train == 0 or n_train == n:
                raise ValueError(f"validation_split={validation_split} leaves an empty "
                                 f"training or validation set for {n} rows")
            (x, xv), (y, yv), (labels, lv), (sw, swv) = (
                _split_rows(a, n_train) for a in (x, y, labels, sw))
            # class weights apply to the training rows only (Keras)
            val = (xv, yv, lv, None if class_weight is not None else swv)
        if val is not None and validation_steps is not None:
            rows = min(val[0].shape[0], validation_steps * batch_size)
            xv, yv, lv, swv = (None if a is None else a[:rows] for a in val)
            val = (xv, yv, lv, swv)

        # everything is validated: from here on the model changes, one fit at a time
        with self._guard.fitting():
            if not self.built:
                self._build(in_shape)
            try:
                return self._train(x, y, labels, sw, val, batch_size, initial_epoch, epochs,
                                   shuffle, verbose, callbacks, validation_freq)
            finally:
                if self._train_engine is not None:
                    self._train_engine.unbind()  # drop the engine's references to the data

    def _train(self, x: FloatArray, y: FloatArray | None, labels: NDArray[np.intc] | None,
               sw: FloatArray | None, val: tuple[Any, Any, Any, Any] | None, batch_size: int,
               initial_epoch: int, epochs: int, shuffle: bool, verbose: int,
               callbacks: list[Callback], validation_freq: int) -> History:
        engine = self._get_train_engine()
        optimizer = self.optimizer
        optimizer._attach(engine, self._params.shape[0], self.dtype, self._variable_segments())
        n = x.shape[0]
        n_batches = math.ceil(n / batch_size)
        history = callbacks_module.History()
        params = {"epochs": epochs, "steps": n_batches, "verbose": verbose}
        # History last, as Keras: it records what the other callbacks added to the logs
        cbs = callbacks_module.CallbackList([*callbacks, history], self, params)
        per_batch = cbs.wants_train_batches
        rng = _random.generator()
        seed = int(rng.integers(2**63))
        identity = np.arange(n, dtype=np.int64)
        self.stop_training = False
        logs: Logs | None = None
        # the engine checks the training set once per fit (labels copied) and the row
        # order once per epoch, so per-batch calls cost O(batch), not O(n); fit unbinds
        engine.bind(x, y, labels, sw)
        with InterruptGuard() as guard:
            cbs.call("on_train_begin", None)
            for epoch in range(initial_epoch, epochs):
                cbs.call("on_epoch_begin", epoch, None)
                bar = _progbar.Progbar(n_batches, verbose, f"Epoch {epoch + 1}/{epochs}")
                order = rng.permutation(n) if shuffle else identity
                engine.set_order(order)
                # after on_epoch_begin: LearningRateScheduler may have changed the rate
                lrs = optimizer._learning_rates(optimizer.iterations, n_batches)
                stats = np.zeros(2 + 2 * len(self._metric_names))
                done = 0
                while done < n_batches:
                    count = 1 if per_batch else self._chunk_size(n_batches - done)
                    if per_batch:
                        cbs.call("on_train_batch_begin", done, None)
                    start = time.perf_counter()
                    guard.busy = True
                    self._train_steps(engine, batch_size, done, count, lrs[done:], seed, stats)
                    guard.busy = False
                    self._note_step_time((time.perf_counter() - start) / count)
                    guard.check()
                    done += count
                    if per_batch:
                        cbs.call("on_train_batch_end", done - 1, self._logs(stats))
                    if bar.wants_update() and done < n_batches:
                        bar.update(done, self._logs(stats))
                logs = self._logs(stats)
                if val is not None and (epoch + 1) % validation_freq == 0:   # Keras's rule
                    val_logs = self._evaluate_arrays(*val, cbs=cbs, batch_size=batch_size)
                    guard.check()
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                bar.finish(logs)
                cbs.call("on_epoch_end", epoch, logs)
                if self.stop_training:
                    break
            cbs.call("on_train_end", logs)
        return history

    def _train_steps(self, engine: Engine, batch_size: int, first: int, count: int,
                     lrs: NDArray[np.float64], seed: int, stats: NDArray[np.float64]) -> None:
        """Run `count` training steps from batch `first` of the data bound to `engine`, in
        the order set for the epoch, accumulating into `stats`; the one place fit talks to
        the engine's train API.  The engine's entry checks are O(1) here (the data and the
        order were validated once), so per-batch calls keep an epoch linear."""
        self.optimizer.iterations = engine.train_batches(batch_size, first, count, lrs,
                                                         self.optimizer.iterations, seed, stats)

    def _chunk_size(self, remaining: int) -> int:
        """Batches per engine call: about _CHUNK_SECONDS of work, from the measured step
        time.  The first call of a model measures one batch; small data then runs the
        rest of each epoch in one call."""
        if self._step_seconds is None:
            return 1
        return max(1, min(remaining, int(_CHUNK_SECONDS / max(self._step_seconds, 1e-9))))

    def _note_step_time(self, seconds: float) -> None:
        previous = self._step_seconds
        self._step_seconds = seconds if previous is None else 0.5 * (previous + seconds)

    def _logs(self, stats: NDArray[np.float64]) -> Logs:
        logs = {"loss": float(stats[0] / stats[1]) if stats[1] else float("nan")}
        for k, name in enumerate(self._metric_names):
            weight = stats[3 + 2 * k]
            logs[name] = float(stats[2 + 2 * k] / weight) if weight else 0.0
        return logs

    def _result(self, logs: Logs, return_dict: bool) -> EvaluateResult:
        """Keras 3's return convention: dict, or the loss alone, or [loss, *metrics]."""
        if return_dict:
            return dict(logs)
        if not self._metric_names:
            return logs["loss"]
        return [logs["loss"], *(logs[name] for name in self._metric_names)]

    @overload
    def train_on_batch(self, x: ArrayLike, y: ArrayLike | None = ...,
                       sample_weight: ArrayLike | None = ...,
                       class_weight: ClassWeight | None = ..., *,
                       return_dict: Literal[True]) -> Logs: ...
    @overload
    def train_on_batch(self, x: ArrayLike, y: ArrayLike | None = ...,
                       sample_weight: ArrayLike | None = ...,
                       class_weight: ClassWeight | None = ...,
                       return_dict: Literal[False] = ...) -> LossAndMetrics: ...
    @overload
    def train_on_batch(self, x: ArrayLike, y: ArrayLike | None = ...,
                       sample_weight: ArrayLike | None = ...,
                       class_weight: ClassWeight | None = ...,
                       return_dict: bool = ...) -> EvaluateResult: ...

    def train_on_batch(self, x: ArrayLike, y: ArrayLike | None = None,
                       sample_weight: ArrayLike | None = None,
                       class_weight: ClassWeight | None = None,
                       return_dict: bool = False) -> EvaluateResult:
        """One gradient step on (x, y) as a single batch.

        Returns
        -------
        float, list or dict
            The loss and metrics of this batch (before the update), in `evaluate`'s
            convention.
        """
        self._require_layers()
        self._require_compiled("train_on_batch")
        x, in_shape = self._features(x)
        n = x.shape[0]
        y, labels = self._targets(y, "y", n, self._checked_output_width(in_shape))
        sw = self._weights_for(sample_weight, class_weight, y, labels, n)
        with self._guard.fitting():
            if not self.built:
                self._build(in_shape)
            engine = self._get_train_engine()
            self.optimizer._attach(engine, self._params.shape[0], self.dtype,
                                   self._variable_segments())
            stats = np.zeros(2 + 2 * len(self._metric_names))
            lrs = self.optimizer._learning_rates(self.optimizer.iterations, 1)
            seed = int(_random.generator().integers(2**63))
            engine.bind(x, y, labels, sw)
            try:
                engine.set_order(np.arange(n, dtype=np.int64))
                with InterruptGuard() as guard:
                    guard.busy = True
                    self._train_steps(engine, n, 0, 1, lrs, seed, stats)
                    guard.busy = False
            finally:
                engine.unbind()
        return self._result(self._logs(stats), return_dict)

    @overload
    def test_on_batch(self, x: ArrayLike, y: ArrayLike | None = ...,
                      sample_weight: ArrayLike | None = ..., *,
                      return_dict: Literal[True]) -> Logs: ...
    @overload
    def test_on_batch(self, x: ArrayLike, y: ArrayLike | None = ...,
                      sample_weight: ArrayLike | None = ...,
                      return_dict: Literal[False] = ...) -> LossAndMetrics: ...
    @overload
    def test_on_batch(self, x: ArrayLike, y: ArrayLike | None = ...,
                      sample_weight: ArrayLike | None = ...,
                      return_dict: bool = ...) -> EvaluateResult: ...

    def test_on_batch(self, x: ArrayLike, y: ArrayLike | None = None,
                      sample_weight: ArrayLike | None = None,
                      return_dict: bool = False) -> EvaluateResult:
        """Loss and metrics on (x, y) as one batch, in `evaluate`'s return convention."""
        return self.evaluate(x, y, sample_weight=sample_weight, return_dict=return_dict)

    # ------------------------------------------------------------------------- inference
    def predict(self, x: ArrayLike, batch_size: int | None = None, verbose: Verbose = 0,
                steps: int | None = None, callbacks: Sequence[Callback] | None = None
                ) -> _Tensor:
        """Outputs of the last layer for x of shape (n, n_features), in inference mode.

        `batch_size` is validated for Keras compatibility but does not change the result:
        the engine already works through x in workspace-sized chunks of rows.  `steps`
        limits the prediction to the first ``steps * batch_size`` rows.  Callbacks get
        the ``on_predict_*`` hooks (per-batch ones batch by batch).  `verbose` defaults
        to 0 (Keras: "auto").

        Returns
        -------
        Tensor of shape (n, n_outputs)
            An ndarray (with ``.numpy()``) of the model's dtype (logits when the last
            layer is linear).
        """
        batch_size = 32 if batch_size is None else _validation.check_int(
            batch_size, "batch_size", 1)
        verbose = _check_verbose(verbose)
        callbacks = _check_callbacks(callbacks)
        if steps is not None:
            steps = _validation.check_int(steps, "steps", 1)
        self._require_layers()
        x, in_shape = self._features(x)
        if steps is not None:
            x = x[:steps * batch_size]
        if not self.built:
            self._checked_output_width(in_shape)
            self._build(in_shape)
        if not callbacks and not verbose:
            return self._flat_call(x)
        n_batches = math.ceil(x.shape[0] / batch_size)
        cbs = callbacks_module.CallbackList(
            callbacks, self, {"epochs": 1, "steps": n_batches, "verbose": verbose})
        bar = _progbar.Progbar(n_batches, verbose)
        cbs.call("on_predict_begin", None)
        if cbs.wants("on_predict_batch_begin") or cbs.wants("on_predict_batch_end"):
            parts = []
            for b in range(n_batches):
                cbs.call("on_predict_batch_begin", b, None)
                part = self._flat_call(x[b * batch_size:(b + 1) * batch_size])
                parts.append(part)
                cbs.call("on_predict_batch_end", b, {"outputs": part})
            out = _wrap(np.concatenate(parts))
        else:
            out = self._flat_call(x)
        cbs.call("on_predict_end", None)
        bar.finish({})
        return out

    def predict_on_batch(self, x: ArrayLike) -> _Tensor:
        """Outputs for x as one batch (same as ``model(x)``)."""
        return self(x)

    def __call__(self, x: ArrayLike, training: bool | None = None) -> _Tensor:
        """Outputs of the last layer for x, in inference mode, as a Tensor (an ndarray
        with ``.numpy()``).  ``training=True`` (dropout on) is not supported outside fit."""
        if training:
            raise ValueError("model(x, training=True) is not supported: fastnn applies "
                             "dropout only inside fit")
        engine = self._infer_engine
        if engine is not None and type(x) is np.ndarray and self._flat_input:
            # fast path: a C-contiguous 2-D float32/float64 array goes straight to the
            # compiled entry, which casts, checks the width and finiteness (in the
            # model's dtype) and runs the forward pass on a per-call workspace (about a
            # microsecond for one row).  Anything it refuses takes the validated path
            # below, which raises the precise error or converts the input.
            try:
                return engine.infer(x)
            except (TypeError, ValueError):
                pass
        self._require_layers()
        x, in_shape = self._features(x)
        if not self.built:
            self._checked_output_width(in_shape)
            self._build(in_shape)
        return self._flat_call(x)

    def _flat_call(self, x: FloatArray) -> _Tensor:
        """Inference on validated, flattened rows; the output in the model's shape."""
        # _features checked x's finiteness in the model's dtype: the engine need not rescan
        out = self._get_infer_engine().infer(x, checked=True)
        if not self._flat_output:
            out = out.reshape(x.shape[0], *self._output_shape())
        return out.view(_Tensor)

    @property
    def _flat_output(self) -> bool:
        return len(self._output_shape()) == 1

    def _checked_output_width(self, in_shape: tuple[int, ...]) -> int:
        """Flat output width for inputs of in_shape (the model's own when built);
        ValueError, before anything changes, when a layer cannot take its input."""
        return math.prod(self._layer_shapes(self._input_shape or in_shape)[-1])

    @overload
    def evaluate(self, x: ArrayLike | None = ..., y: ArrayLike | None = ...,
                 batch_size: int | None = ..., verbose: Verbose = ...,
                 sample_weight: ArrayLike | None = ..., steps: int | None = ...,
                 callbacks: Sequence[Callback] | None = ..., *,
                 return_dict: Literal[True]) -> Logs: ...
    @overload
    def evaluate(self, x: ArrayLike | None = ..., y: ArrayLike | None = ...,
                 batch_size: int | None = ..., verbose: Verbose = ...,
                 sample_weight: ArrayLike | None = ..., steps: int | None = ...,
                 callbacks: Sequence[Callback] | None = ...,
                 return_dict: Literal[False] = ...) -> LossAndMetrics: ...
    @overload
    def evaluate(self, x: ArrayLike | None = ..., y: ArrayLike | None = ...,
                 batch_size: int | None = ..., verbose: Verbose = ...,
                 sample_weight: ArrayLike | None = ..., steps: int | None = ...,
                 callbacks: Sequence[Callback] | None = ...,
                 return_dict: bool = ...) -> EvaluateResult: ...

    def evaluate(self, x: ArrayLike | None = None, y: ArrayLike | None = None,
                 batch_size: int | None = None, verbose: Verbose = 0,
                 sample_weight: ArrayLike | None = None, steps: int | None = None,
                 callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> EvaluateResult:
        """Loss (and metrics) on (x, y) in inference mode.

        `verbose` defaults to 0 (Keras: "auto").  `steps` limits the evaluation to the
        first ``steps * batch_size`` rows; callbacks get the ``on_test_*`` hooks.

        Returns
        -------
        float, list or dict
            The loss as a float when no metrics were compiled, else the list
            ``[loss, metric1, ...]`` in compile order; with ``return_dict=True`` the
            dict ``{"loss": ..., "<metric>": ...}`` (Keras 3).  For type checkers the
            first two are ``Any`` (which one depends on ``compile(metrics=...)``), so
            both ``loss = ...`` and ``loss, acc = ...`` type-check.
        """
        self._require_layers()
        self._require_compiled("evaluate")
        batch_size = 32 if batch_size is None else _validation.check_int(
            batch_size, "batch_size", 1)
        verbose = _check_verbose(verbose)
        callbacks = _check_callbacks(callbacks)
        if steps is not None:
            steps = _validation.check_int(steps, "steps", 1)
        x, in_shape = self._features(x)
        n_out = self._checked_output_width(in_shape)
        y, labels = self._targets(y, "y", x.shape[0], n_out)
        sw = _validation.as_sample_weight(sample_weight, x.shape[0], self.dtype)
        with self._guard.evaluating():
            if steps is not None:
                rows = steps * batch_size
                x = x[:rows]
                y = None if y is None else y[:rows]
                labels = None if labels is None else labels[:rows]
                sw = None if sw is None else sw[:rows]
            if not self.built:
                self._build(in_shape)
            cbs = None
            n_batches = math.ceil(x.shape[0] / batch_size)
            if callbacks:
                cbs = callbacks_module.CallbackList(
                    callbacks, self, {"epochs": 1, "steps": n_batches, "verbose": verbose})
            bar = _progbar.Progbar(n_batches, verbose)
            logs = self._evaluate_arrays(x, y, labels, sw, cbs=cbs, batch_size=batch_size)
            bar.finish(logs)
            return self._result(logs, return_dict)

    def _evaluate_arrays(self, x: FloatArray, y: FloatArray | None,
                         labels: NDArray[np.intc] | None, sw: FloatArray | None,
                         cbs: callbacks_module.CallbackList | None = None,
                         batch_size: int = 32) -> Logs:
        """Inference-mode logs over the arrays; with callbacks, the on_test_* hooks (the
        per-batch ones evaluate batch by batch)."""
        engine = self._get_train_engine()
        stats = np.zeros(2 + 2 * len(self._metric_names))
        if cbs is not None:
            cbs.call("on_test_begin", None)
        if cbs is not None and (cbs.wants("on_test_batch_begin")
                                or cbs.wants("on_test_batch_end")):
            for b in range(math.ceil(x.shape[0] / batch_size)):
                rows = slice(b * batch_size, (b + 1) * batch_size)
                cbs.call("on_test_batch_begin", b, None)
                engine.evaluate(x[rows], None if y is None else y[rows],
                                None if labels is None else labels[rows],
                                None if sw is None else sw[rows], stats)
                cbs.call("on_test_batch_end", b, self._logs(stats))
        else:
            engine.evaluate(x, y, labels, sw, stats)
        logs = self._logs(stats)
        logs["loss"] += engine.penalty()
        if cbs is not None:
            cbs.call("on_test_end", logs)
        return logs

    # ------------------------------------------------------------------------- weights
    @property
    def weights(self) -> list[FloatArray]:
        """Every weight array (live views), layer by layer in Keras order."""
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[FloatArray]:
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[FloatArray]:
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def get_weights(self) -> list[FloatArray]:
        """Copies of every weight in Keras order: ``[W1, b1, W2, b2, ...]``; Dense kernels
        are (inputs, units), biases (units,), Normalization gives mean and variance."""
        self._require_built("get_weights")
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Replace every weight; `weights` as returned by get_weights.  Everything is
        checked before anything is written."""
        self._require_built("set_weights")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays, got {type(weights).__name__}")
        counts = [len(layer.weight_shapes()) for layer in self._layers]
        if len(weights) != sum(counts):
            raise ValueError(f"weights has {len(weights)} arrays, the model expects "
                             f"{sum(counts)}")
        checked: list[list[FloatArray]] = []
        index = 0
        for layer, count in zip(self._layers, counts, strict=True):
            checked.append(layer._check_weights(list(weights[index:index + count]),
                                                self.dtype, index))
            index += count
        for layer, arrays in zip(self._layers, checked, strict=True):
            layer._set_weights(arrays)

    # ------------------------------------------------------------------------- saving
    def save(self, filepath: PathLike, overwrite: bool = True, zipped: bool | None = None
             ) -> None:
        """Write the model (config, weights, compile settings, optimizer state) to one file
        at exactly `filepath`, atomically; read it back with ``fastnn.load_model``.
        ``overwrite=False`` raises FileExistsError if the file exists; `zipped` must be
        None or True (fastnn's format is always one file)."""
        from fastnn import saving

        if zipped not in (None, True):
            raise ValueError("save: zipped=False is not supported (always one file)")
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"save: {filepath!r} exists and overwrite=False")
        saving.save(self, filepath)

    def save_weights(self, filepath: PathLike, overwrite: bool = True,
                     max_shard_size: None = None) -> None:
        """Write the weights (with the architecture they belong to) to one file at exactly
        `filepath`, atomically; read them back with ``load_weights``."""
        from fastnn import saving

        self._require_built("save_weights")
        if max_shard_size is not None:
            raise ValueError("save_weights: max_shard_size is not supported (one file)")
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"save_weights: {filepath!r} exists and overwrite=False")
        saving.save(self, filepath)

    def load_weights(self, filepath: PathLike, skip_mismatch: bool = False) -> None:
        """Load weights written by ``save_weights`` (or ``save``) into this model, whose
        layers must match the file's in number and weight shapes (``skip_mismatch=True``
        skips layers whose shapes differ).  Raises ValueError on a corrupt or foreign
        file, leaving the model unchanged."""
        from fastnn import saving

        self._require_built("load_weights")
        saving.load_weights_into(self, filepath, skip_mismatch)

    def export(self, filepath: PathLike, format: str = "tf_saved_model",
               verbose: bool | None = None, input_signature: None = None,
               **kwargs: Any) -> None:
        """Export the model for inference (Keras 3's signature); fastnn writes ``"onnx"``.

        Parameters
        ----------
        filepath : str or os.PathLike
        format : str, default "tf_saved_model"
            Only ``"onnx"`` is supported (a standard ONNX graph, opset >= 17, with a
            dynamic batch dimension; needs the ``onnx`` package: ``fastnn[onnx]``).
            Keras's other formats raise ValueError.
        verbose : bool, optional
            Print a line once the file is written.
        input_signature : None
            Accepted for Keras compatibility; fastnn takes the shape from the model.
        opset_version : int, optional
            ONNX opset, 17 by default.
        """
        from fastnn import _onnx

        if format != "onnx":
            raise ValueError(f"format={format!r} is not supported by fastnn; use format='onnx'")
        unknown = set(kwargs) - {"opset_version"}
        if unknown:
            raise TypeError(f"export() got unexpected keyword arguments {sorted(unknown)}")
        if input_signature is not None:
            raise ValueError("input_signature: fastnn exports the model's own input shape; "
                             "pass None")
        self._require_built("export")
        _onnx.export(self, filepath, kwargs.get("opset_version"), bool(verbose))

    def __reduce__(self) -> tuple[Callable[[bytes], Sequential], tuple[bytes]]:
        # pickling uses the same self-checking format as save(), so it never needs the
        # compiled engines and a restored model is bit-identical
        from fastnn import saving

        return (saving.from_bytes, (saving.to_bytes(self),))

    # ------------------------------------------------------------------------- summary
    def summary(self, line_length: int | None = None, positions: None = None,
                print_fn: Callable[[str], object] | None = None) -> None:
        """Print each layer's name and type, output shape and parameter count, then the
        totals.

        Parameters
        ----------
        line_length : int, optional
            Total width of the table (default: as wide as the contents need).
        positions : None
            Only None (column widths follow the contents).
        print_fn : callable, optional
            Called once with the whole summary text instead of ``print`` (Keras 3).
        """
        from fastnn import _summary

        if positions is not None:
            raise ValueError("summary: positions is not supported; use line_length")
        if line_length is not None:
            line_length = _validation.check_int(line_length, "line_length", 30)
        if print_fn is not None and not callable(print_fn):
            raise TypeError(f"print_fn must be callable, got {print_fn!r}")
        text = _summary.summary_text(self, line_length)
        if print_fn is None:
            print(text)
        else:
            print_fn(text)


def _as_layer(layer: Any) -> Any:
    """An Input(...) symbolic tensor stands for its InputLayer."""
    return getattr(layer, "_input_layer", layer) if isinstance(layer, KerasTensor) else layer


class _CallGuard:
    """fit excludes any other fit or evaluate of the same model; evaluates may overlap.

    Inference and evaluation are re-entrant (each engine call has its own workspace),
    but fit rewrites the parameters those calls read, and two fits would interleave their
    updates.  A fit that finds another fit or an evaluate running raises RuntimeError
    before it changes anything.  ``evaluate`` from inside fit's own callbacks is allowed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fitting = False
        self._evaluating = 0

    @contextlib.contextmanager
    def fitting(self) -> Iterator[None]:
        with self._lock:
            if self._fitting:
                raise RuntimeError("fit: this model is already being fitted (in another "
                                   "thread or from a callback); one fit at a time")
            if self._evaluating:
                raise RuntimeError("fit: this model is being evaluated in another thread; "
                                   "wait for evaluate to return")
            self._fitting = True
        try:
            yield
        finally:
            with self._lock:
                self._fitting = False

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        with self._lock:
            self._evaluating += 1
        try:
            yield
        finally:
            with self._lock:
                self._evaluating -= 1


def _split_rows(a: NDArray[Any] | None, at: int) -> tuple[Any, Any]:
    """(a[:at], a[at:]) as contiguous arrays; (None, None) for None."""
    if a is None:
        return None, None
    return np.ascontiguousarray(a[:at]), np.ascontiguousarray(a[at:])


def _check_verbose(verbose: Verbose) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _check_callbacks(callbacks: Sequence[Callback] | None) -> list[Callback]:
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback, got {type(callbacks).__name__}")
    for cb in callbacks:
        if not isinstance(cb, callbacks_module.Callback):
            raise TypeError(f"callbacks entries must be fastnn.callbacks.Callback, got {cb!r}")
    return list(callbacks)
