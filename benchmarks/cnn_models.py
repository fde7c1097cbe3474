"""The convolutional networks of the ``cnn`` part, built and trained in each system's worker.

The parent (``bench_cnn.py``) describes a network as plain data: an input shape
``(height, width, channels)`` and a tuple of layers, each one of

- ``("conv2d", filters, kernel, padding)``: a square kernel, stride 1, ReLU, padding
  ``"same"`` or ``"valid"``;
- ``("maxpool2d", size)``: a square window with the same stride;
- ``("flatten",)``;
- ``("dense", units)``: logits (the last layer).

Every system builds that network the way its users write it -- fastnn and tf.keras as a
``Sequential`` trained by ``fit`` on channels-last images, PyTorch as ``nn.Sequential``
trained by the usual loop on channels-first images -- with Glorot-uniform kernels and
zero biases (Keras's defaults; PyTorch is initialised to match), ``Adam(1e-3,
epsilon=1e-7)`` on softmax cross-entropy from logits, a fresh shuffle every epoch and a
partial last batch.  The timed call builds the model too, as a user pays it.

This module runs in the workers only (it imports NumPy and the worker's own library,
never another system's).
"""
import numpy as np

from competitors import torch_train

_IMAGES = {}  # image sets prepared in this worker, by (spec, layout)

CHANNELS_FIRST = ("PyTorch",)


def _shape_after(layer, shape):
    """``(height, width, channels)`` after ``layer`` (for sizing PyTorch's Linear)."""
    kind = layer[0]
    height, width, channels = shape
    if kind == "conv2d":
        _, filters, kernel, padding = layer
        if padding == "same":
            return height, width, filters
        if padding == "valid":
            return height - kernel + 1, width - kernel + 1, filters
        raise ValueError(f"unknown padding {padding!r}")
    if kind == "maxpool2d":
        return height // layer[1], width // layer[1], channels
    if kind == "flatten":
        return 1, 1, height * width * channels
    if kind == "dense":
        return 1, 1, layer[1]
    raise ValueError(f"unknown layer kind {kind!r}")


def images(spec, layout):
    """``(X_train, y_train, X_test, y_test)`` as float32 images, cached in this worker.

    ``spec`` is ``("digits", path)`` (the helper's digits split, train and test rows, as
    8x8x1 images) or ``("random", rows, height, width, channels, classes, seed)``
    (uniform [0, 1) pixels, uniform labels, no test set).  ``layout`` is ``"NHWC"`` or
    ``"NCHW"``: a PyTorch user keeps images channels first, so they are transposed once,
    outside the timed fit.
    """
    key = (tuple(spec), layout)
    if key in _IMAGES:
        return _IMAGES[key]
    if spec[0] == "digits":
        with np.load(spec[1]) as saved:
            X_train, y_train = saved["X_train"], saved["y_train"]
            X_test, y_test = saved["X_test"], saved["y_test"]
        X_train = X_train.astype(np.float32).reshape(-1, 8, 8, 1)
        X_test = X_test.astype(np.float32).reshape(-1, 8, 8, 1)
    elif spec[0] == "random":
        _, rows, height, width, channels, classes, seed = spec
        rng = np.random.default_rng(seed)
        X_train = rng.random((rows, height, width, channels), dtype=np.float32)
        y_train, X_test, y_test = rng.integers(0, classes, rows), None, None
    else:
        raise ValueError(f"unknown image set {spec[0]!r}")
    if layout == "NCHW":
        X_train = np.ascontiguousarray(X_train.transpose(0, 3, 1, 2))
        X_test = None if X_test is None else np.ascontiguousarray(X_test.transpose(0, 3, 1, 2))
    elif layout != "NHWC":
        raise ValueError(f"unknown layout {layout!r}")
    _IMAGES[key] = (X_train, y_train.astype(np.int64), X_test,
                    None if y_test is None else y_test.astype(np.int64))
    return _IMAGES[key]


def drop_images():
    _IMAGES.clear()


# ---------------------------------------------------------------- fastnn

def _fit_fastnn(system, X, y, input_shape, layers, epochs, batch_size, seed):
    fastnn = system.fastnn
    from fastnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from fastnn.losses import SparseCategoricalCrossentropy
    from fastnn.optimizers import Adam

    fastnn.set_random_seed(seed)
    built = [fastnn.Input(shape=tuple(input_shape))]
    for layer in layers:
        kind = layer[0]
        if kind == "conv2d":
            built.append(Conv2D(layer[1], layer[2], activation="relu", padding=layer[3]))
        elif kind == "maxpool2d":
            built.append(MaxPooling2D(layer[1]))
        elif kind == "flatten":
            built.append(Flatten())
        elif kind == "dense":
            built.append(Dense(layer[1]))
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    model = fastnn.Sequential(built)
    model.compile(optimizer=Adam(learning_rate=1e-3, epsilon=1e-7),
                  loss=SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return lambda X_: model.predict(X_, verbose=0)


# ---------------------------------------------------------------- tf.keras

def _fit_keras(system, X, y, input_shape, layers, epochs, batch_size, seed):
    keras = system.keras
    keras.utils.set_random_seed(seed)
    built = [keras.Input(tuple(input_shape))]
    for layer in layers:
        kind = layer[0]
        if kind == "conv2d":
            built.append(keras.layers.Conv2D(layer[1], layer[2], activation="relu",
                                             padding=layer[3]))
        elif kind == "maxpool2d":
            built.append(keras.layers.MaxPooling2D(layer[1]))
        elif kind == "flatten":
            built.append(keras.layers.Flatten())
        elif kind == "dense":
            built.append(keras.layers.Dense(layer[1]))
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    model = keras.Sequential(built)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return lambda X_: model.predict(X_, verbose=0)


# ---------------------------------------------------------------- PyTorch

def _torch_model(torch, input_shape, layers):
    nn = torch.nn
    modules, shape = [], tuple(input_shape)
    for layer in layers:
        kind = layer[0]
        if kind == "conv2d":
            _, filters, kernel, padding = layer
            conv = nn.Conv2d(shape[2], filters, kernel, padding="same" if padding == "same" else 0)
            nn.init.xavier_uniform_(conv.weight)  # Keras's glorot_uniform, same fans
            nn.init.zeros_(conv.bias)
            modules += [conv, nn.ReLU()]
        elif kind == "maxpool2d":
            modules.append(nn.MaxPool2d(layer[1]))
        elif kind == "flatten":
            modules.append(nn.Flatten())
        elif kind == "dense":
            linear = nn.Linear(shape[2], layer[1])
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
            modules.append(linear)
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        shape = _shape_after(layer, shape)
    return nn.Sequential(*modules)


def _fit_torch(system, X, y, input_shape, layers, epochs, batch_size, seed):
    torch = system.torch
    torch.manual_seed(seed)
    model = _torch_model(torch, input_shape, layers)
    torch_train(torch, model, X, y, epochs, batch_size, seed)
    model.eval()

    def predict(X_):
        with torch.no_grad():
            return model(torch.from_numpy(X_)).numpy()
    return predict


_FITS = {"fastnn": _fit_fastnn, "tf.keras": _fit_keras, "PyTorch": _fit_torch}


def fit(system, X, y, input_shape, layers, epochs, batch_size, seed):
    """Build and train the network on ``system``; return its ``predict(X) -> logits``."""
    try:
        fit_fn = _FITS[system.name]
    except KeyError:
        raise ValueError(f"no CNN for system {system.name!r}; have {sorted(_FITS)}") from None
    return fit_fn(system, X, y, input_shape, tuple(tuple(layer) for layer in layers), epochs,
                  batch_size, seed)
