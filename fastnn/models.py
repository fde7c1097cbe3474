"""Sequential: the Keras model API over fastnn's compiled training engine.

Data flow: every public call validates its arguments first (fastnn._validation)
and only then touches the model, so a call that raises leaves it unchanged.
The model owns two flat buffers -- all trainable parameters, and the
non-trainable statistics -- which its layers view.  ``fit`` hands them to a
compiled Engine (fastnn._kernels.engine) that runs whole epochs of mini-batch
steps without the GIL; Python runs once per epoch (or once per batch when a
callback overrides ``on_batch_end``).
"""
import math
import time

import numpy as np

from fastnn import _progbar, _random, _validation
from fastnn import callbacks as callbacks_module
from fastnn import losses as losses_module
from fastnn import metrics as metrics_module
from fastnn import optimizers as optimizers_module
from fastnn._kernels import LOSSES, Engine
from fastnn.layers import Dense, Layer


class Sequential:
    """A linear stack of layers with Keras's ``compile`` / ``fit`` / ``predict`` API.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional
    dtype : {"float32", "float64"}, default "float32"
        Precision of every parameter and computation of the model.

    Examples
    --------
    >>> model = Sequential([Dense(25, activation="relu"), Dense(10)])
    >>> model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
    >>> history = model.fit(X, y, epochs=10, verbose=0)   # doctest: +SKIP
    """

    def __init__(self, layers=None, name=None, dtype="float32"):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name or "sequential"
        self.dtype = _validation.check_dtype(dtype)
        self._layers = []
        self._n_in = None
        self._params = self._aux = None
        self._offsets = []
        self.optimizer = self.loss = None
        self._metric_names = []
        self._compiled = False
        self._train_engine = self._infer_engine = None
        self.stop_training = False
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}")
            for layer in layers:
                self._check_layer(layer)
            for layer in layers:
                self.add(layer)

    # ------------------------------------------------------------------------- structure
    @property
    def layers(self):
        return list(self._layers)

    @property
    def built(self):
        return self._n_in is not None

    @staticmethod
    def _check_layer(layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a fastnn layer, got {type(layer).__name__}")

    def add(self, layer):
        """Append a layer; a first Dense with ``input_dim`` builds the model at once."""
        self._check_layer(layer)
        if any(layer is existing for existing in self._layers):
            raise ValueError("layer is already in this model")
        self._layers.append(layer)
        if self.built:
            self._build(self._n_in)
        elif len(self._layers) == 1 and getattr(layer, "input_dim", None):
            self._build(layer.input_dim)

    def build(self, input_shape):
        """Create the weights for inputs of width ``input_shape`` (int or (None, n))."""
        n_in = input_shape[-1] if isinstance(input_shape, (tuple, list)) else input_shape
        n_in = _validation.check_int(n_in, "input_shape", 1)
        if not self._layers:
            raise ValueError("the model has no layers; add some before building")
        self._build(n_in)

    def _build(self, n_in):
        widths, width = [], n_in
        for layer in self._layers:
            widths.append(width)
            width = layer.output_width(width)
        n_params = sum(layer.param_count(w) for layer, w in zip(self._layers, widths, strict=True))
        n_stats = sum(layer.stat_count(w) for layer, w in zip(self._layers, widths, strict=True))
        params, aux = np.zeros(n_params, self.dtype), np.zeros(n_stats, self.dtype)
        offsets, offset, aux_offset = [], 0, 0
        for layer, w in zip(self._layers, widths, strict=True):
            offsets.append((offset, aux_offset))
            offset, aux_offset = layer._bind(w, params, offset, aux, aux_offset)
        self._params, self._aux, self._offsets, self._n_in = params, aux, offsets, n_in
        self._train_engine = self._infer_engine = None

    def _output_width(self, n_in):
        width = n_in
        for layer in self._layers:
            width = layer.output_width(width)
        return width

    def _require_layers(self):
        if not self._layers:
            raise ValueError("the model has no layers")

    def count_params(self):
        self._require_built("count_params")
        return int(self._params.shape[0])

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"{what}: the model is not built yet; call fit, predict or "
                             "build first, or give the first layer input_dim")

    # ------------------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, metrics=None):
        """Configure training.

        Parameters
        ----------
        optimizer : str or Optimizer, default "adam"
            "adam", "sgd" or an instance (None also means Adam with its defaults;
            Keras's default is RMSprop, which the course never uses).
        loss : str or Loss
        metrics : list of str, optional
            "accuracy" (resolved from the target shapes as in Keras 3),
            "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
            "mse", "mae".
        """
        if loss is None:
            raise ValueError("loss is required, e.g. loss='mse' or "
                             "SparseCategoricalCrossentropy(from_logits=True)")
        optimizer = optimizers_module.get(optimizer)
        loss = losses_module.get(loss)
        names = metrics_module.check_names(metrics)
        self.optimizer, self.loss, self._metric_names = optimizer, loss, names
        self._compiled = True
        self._train_engine = None

    def _require_compiled(self, what):
        if not self._compiled:
            raise ValueError(f"{what}: the model must be compiled first: call "
                             "model.compile(optimizer=..., loss=...)")

    # ------------------------------------------------------------------------- engines
    def _specs(self):
        return [layer._spec(off, aux_off) for layer, (off, aux_off) in
                zip(self._layers, self._offsets, strict=True)]

    def _variable_segments(self):
        """(offset, length) of each trainable variable in the flat parameter vector.

        Keras clips by norm per variable; here a layer's kernel and bias are separate
        variables that share one flat buffer, so the engine needs their boundaries.
        """
        rows = []
        for spec in self._specs():
            if "w_off" in spec:
                rows.append((spec["w_off"], spec["n_in"] * spec["n_out"]))
            if spec.get("b_off", -1) >= 0:
                rows.append((spec["b_off"], spec["n_out"]))
        return np.array(rows, dtype=np.int64).reshape(-1, 2)

    def _get_train_engine(self):
        if self._train_engine is None:
            last = self._layers[-1]
            activation = last.activation if isinstance(last, Dense) else None
            kernel, fused = self.loss.kernel_for(activation)
            n_out = self._output_width(self._n_in)
            codes = [metrics_module.resolve(m, self.loss.sparse, n_out)
                     for m in self._metric_names]
            threshold = 0.0 if self.loss.from_logits else 0.5
            self._train_engine = Engine(self._specs(), self._params, self._aux,
                                        LOSSES[kernel], fused, codes, threshold)
        return self._train_engine

    def _get_infer_engine(self):
        if self._infer_engine is None:
            self._infer_engine = Engine(self._specs(), self._params, self._aux,
                                        LOSSES["mse"], False, [], 0.5)
        return self._infer_engine

    # ------------------------------------------------------------------------- data
    def _features(self, x, name="x"):
        return _validation.as_features(x, name, self.dtype, self._n_in)

    def _targets(self, y, name, n, n_out):
        """(dense targets or None, int32 labels or None) for the compiled loss."""
        if y is None:
            raise ValueError(f"{name} is required")
        if self.loss.sparse:
            return None, _validation.as_labels(y, name, n, n_out)
        return _validation.as_dense_targets(y, name, n, n_out, self.dtype), None

    def _weights_for(self, sample_weight, class_weight, y, labels, n):
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

    def _validation_set(self, validation_data, n_in, n_out):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val)")
        xv = _validation.as_features(validation_data[0], "validation_data[0]", self.dtype, n_in)
        yv, lv = self._targets(validation_data[1], "validation_data[1]", xv.shape[0], n_out)
        swv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            swv = _validation.as_sample_weight(validation_data[2], xv.shape[0], self.dtype)
        return xv, yv, lv, swv

    # ------------------------------------------------------------------------- training
    def fit(self, x=None, y=None, epochs=1, batch_size=32, validation_split=0.0,
            validation_data=None, shuffle=True, verbose="auto", callbacks=None,
            sample_weight=None, class_weight=None):
        """Train for `epochs` passes over (x, y) in mini-batches.

        Parameters
        ----------
        x : array-like of shape (n_samples, n_features)
        y : array-like
            Integer labels of shape (n,) or (n, 1) for the sparse loss, else targets
            of shape (n, n_outputs) ((n,) for one output).
        epochs : int, default 1
            0 trains nothing.
        batch_size : int or None, default 32
            Rows per gradient step; the last batch is partial.  None means 32, and
            ``len(x)`` is full-batch gradient descent.
        validation_split : float in [0, 1), default 0
            Fraction of the LAST rows held out (before shuffling), as Keras.
        validation_data : tuple (x_val, y_val[, sample_weight_val]), optional
        shuffle : bool, default True
            Reshuffle the training rows every epoch (from fastnn's seeded stream).
        verbose : "auto", 0, 1 or 2
            0 is silent; otherwise one progress line per epoch.
        callbacks : list of Callback, optional
        sample_weight : array-like of shape (n,), optional
        class_weight : dict {class: weight}, optional

        Returns
        -------
        History
            ``history.history`` maps "loss", each metric and their "val_" forms to
            per-epoch lists.
        """
        self._require_layers()
        self._require_compiled("fit")
        epochs = _validation.check_int(epochs, "epochs", 0)
        batch_size = 32 if batch_size is None else _validation.check_int(
            batch_size, "batch_size", 1)
        validation_split = _validation.check_float(validation_split, "validation_split",
                                                   low=0, high=1, high_open=True)
        verbose = _check_verbose(verbose)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        callbacks = _check_callbacks(callbacks)

        x = self._features(x)
        n, n_in = x.shape
        n_out = self._output_width(n_in)
        y, labels = self._targets(y, "y", n, n_out)
        sw = self._weights_for(sample_weight, class_weight, y, labels, n)
        val = None
        if validation_data is not None:
            val = self._validation_set(validation_data, n_in, n_out)
        elif validation_split > 0:
            n_train = int(n * (1 - validation_split))
            if n_train == 0 or n_train == n:
                raise ValueError(f"validation_split={validation_split} leaves an empty "
                                 f"training or validation set for {n} rows")
            (x, xv), (y, yv), (labels, lv), (sw, swv) = (
                _split_rows(a, n_train) for a in (x, y, labels, sw))
            # class weights apply to the training rows only (Keras)
            val = (xv, yv, lv, None if class_weight is not None else swv)

        # everything is validated: from here on the model changes
        if not self.built:
            self._build(n_in)
        return self._train(x, y, labels, sw, val, epochs, batch_size, shuffle, verbose,
                           callbacks)

    def _train(self, x, y, labels, sw, val, epochs, batch_size, shuffle, verbose, callbacks):
        engine = self._get_train_engine()
        optimizer = self.optimizer
        optimizer._attach(engine, self._params.shape[0], self.dtype, self._variable_segments())
        n = x.shape[0]
        n_batches = math.ceil(n / batch_size)
        history = callbacks_module.History()
        params = {"epochs": epochs, "steps": n_batches, "verbose": verbose}
        cbs = callbacks_module.CallbackList([history, *callbacks], self, params)
        rng = _random.generator()
        seed = int(rng.integers(2**63))
        identity = np.arange(n, dtype=np.int64)
        n_stats = 2 + 2 * len(self._metric_names)
        self.stop_training = False
        cbs.on_train_begin()
        for epoch in range(epochs):
            cbs.on_epoch_begin(epoch)
            start = time.perf_counter()
            order = rng.permutation(n) if shuffle else identity
            lrs = optimizer._learning_rates(optimizer.iterations, n_batches)
            stats = np.zeros(n_stats)
            if cbs.wants_batches:
                for b in range(n_batches):
                    optimizer.iterations = engine.train(
                        x, y, labels, sw, order, batch_size, b, 1, lrs[b:], optimizer.iterations,
                        seed, stats)
                    cbs.on_batch_end(b, self._logs(stats))
            else:
                optimizer.iterations = engine.train(x, y, labels, sw, order, batch_size, 0,
                                                    n_batches, lrs, optimizer.iterations, seed,
                                                    stats)
            logs = self._logs(stats)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_arrays(*val).items()})
            if verbose:
                _progbar.write(_progbar.epoch_line(epoch, epochs, n_batches,
                                                   time.perf_counter() - start, logs))
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end()
        return history

    def _logs(self, stats):
        logs = {"loss": float(stats[0] / stats[1]) if stats[1] else float("nan")}
        for k, name in enumerate(self._metric_names):
            weight = stats[3 + 2 * k]
            logs[name] = float(stats[2 + 2 * k] / weight) if weight else 0.0
        return logs

    # ------------------------------------------------------------------------- inference
    def predict(self, x, batch_size=None, verbose=0):
        """Outputs of the last layer for x of shape (n, n_features), in inference mode.

        `batch_size` is validated for Keras compatibility but does not change the result:
        the engine already works through x in workspace-sized chunks of rows.

        Returns
        -------
        ndarray of shape (n, n_outputs), of the model's dtype (logits when the last
        layer is linear).
        """
        if batch_size is not None:
            _validation.check_int(batch_size, "batch_size", 1)
        _check_verbose(verbose)
        return self(x)

    def __call__(self, x):
        """Same as ``predict(x)``."""
        engine = self._infer_engine
        if (engine is not None and type(x) is np.ndarray and x.dtype == self.dtype
                and x.ndim == 2 and x.flags.c_contiguous):
            # fast path for kernel-ready input: the engine checks the width and
            # finiteness in its entry, then runs the forward pass (a few microseconds)
            return engine.infer(x)
        self._require_layers()
        x = self._features(x)
        if not self.built:
            self._build(x.shape[1])
        return self._get_infer_engine().infer(x)

    def evaluate(self, x, y, batch_size=None, verbose=0, sample_weight=None):
        """Loss (and metrics) on (x, y) in inference mode.

        Returns
        -------
        float
            The loss, when no metrics were compiled; else a dict
            ``{"loss": ..., "<metric>": ...}``.
        """
        self._require_layers()
        self._require_compiled("evaluate")
        if batch_size is not None:
            _validation.check_int(batch_size, "batch_size", 1)
        _check_verbose(verbose)
        x = self._features(x)
        n_out = self._output_width(x.shape[1])
        y, labels = self._targets(y, "y", x.shape[0], n_out)
        sw = _validation.as_sample_weight(sample_weight, x.shape[0], self.dtype)
        if not self.built:
            self._build(x.shape[1])
        result = self._evaluate_arrays(x, y, labels, sw)
        return result if self._metric_names else result["loss"]

    def _evaluate_arrays(self, x, y, labels, sw):
        engine = self._get_train_engine()
        stats = np.zeros(2 + 2 * len(self._metric_names))
        engine.evaluate(x, y, labels, sw, stats)
        logs = self._logs(stats)
        logs["loss"] += engine.l2_penalty()
        return logs

    # ------------------------------------------------------------------------- weights
    def get_weights(self):
        """Copies of every weight in Keras order: ``[W1, b1, W2, b2, ...]``; Dense kernels
        are (inputs, units), biases (units,), Normalization gives mean and variance."""
        self._require_built("get_weights")
        return [w.copy() for layer in self._layers for w in layer.weights()]

    def set_weights(self, weights):
        """Replace every weight; `weights` as returned by get_weights."""
        self._require_built("set_weights")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays, got {type(weights).__name__}")
        shapes = [s for layer in self._layers for s in layer.weight_shapes()]
        if len(weights) != len(shapes):
            raise ValueError(f"weights has {len(weights)} arrays, the model expects "
                             f"{len(shapes)}")
        arrays = []
        for i, (w, shape) in enumerate(zip(weights, shapes, strict=True)):
            arr = _validation._real_array(w, f"weights[{i}]")
            if arr.shape != shape:
                raise ValueError(f"weights[{i}] has shape {arr.shape}, expected {shape}")
            _validation._check_finite(arr, f"weights[{i}]")
            arrays.append(arr.astype(self.dtype))
        index = 0
        for layer in self._layers:
            count = len(layer.weight_shapes())
            if count == 2 and not isinstance(layer, Dense) and (arrays[index + 1] < 0).any():
                raise ValueError(f"weights[{index + 1}]: a Normalization variance must be >= 0")
            index += count
        index = 0
        for layer in self._layers:
            count = len(layer.weight_shapes())
            layer._set_weights(arrays[index:index + count])
            index += count

    # ------------------------------------------------------------------------- saving
    def save(self, path):
        """Write the model (config, weights, compile settings, optimizer state) to one file
        at exactly `path`, atomically; read it back with ``fastnn.load_model``."""
        from fastnn import saving

        saving.save(self, path)

    def __reduce__(self):
        # pickling uses the same self-checking format as save(), so it never needs the
        # compiled engines and a restored model is bit-identical
        from fastnn import saving

        return (saving.from_bytes, (saving.to_bytes(self),))

    # ------------------------------------------------------------------------- summary
    def summary(self):
        """Print each layer's type, output shape and parameter count, then the totals."""
        rows, trainable, fixed = [], 0, 0
        width = self._n_in
        for i, layer in enumerate(self._layers):
            label = f"{layer.name or type(layer).__name__.lower() + f'_{i}'} " \
                    f"({type(layer).__name__})"
            if width is None:
                out, count = "?", "0 (unbuilt)"
            else:
                n_in = width
                width = layer.output_width(width)
                out = f"(None, {width})"
                n_train, n_fixed = layer.param_count(n_in), layer.stat_count(n_in)
                trainable, fixed = trainable + n_train, fixed + n_fixed
                count = f"{n_train + n_fixed:,}"
            rows.append((label, out, count))
        head = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[c]) for r in [head, *rows]) + 3 for c in range(3)]
        line = "-" * sum(widths)
        fmt = lambda r: "".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
        print(f'Model: "{self.name}"')
        print(line)
        print(fmt(head))
        print("=" * sum(widths))
        for r in rows:
            print(fmt(r))
        print("=" * sum(widths))
        print(f"Total params: {trainable + fixed:,}")
        print(f"Trainable params: {trainable:,}")
        print(f"Non-trainable params: {fixed:,}")


def _split_rows(a, at):
    """(a[:at], a[at:]) as contiguous arrays; (None, None) for None."""
    if a is None:
        return None, None
    return np.ascontiguousarray(a[:at]), np.ascontiguousarray(a[at:])


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


def _check_callbacks(callbacks):
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback, got {type(callbacks).__name__}")
    for cb in callbacks:
        if not isinstance(cb, callbacks_module.Callback):
            raise TypeError(f"callbacks entries must be fastnn.callbacks.Callback, got {cb!r}")
    return list(callbacks)
