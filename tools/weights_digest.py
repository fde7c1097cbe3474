"""SHA-256 digests of trained weights and predictions for a few small fixed-seed models.

A refactor of the engine that must not change numerics prints the same lines before and
after: run it on both builds and compare (``diff``).  Each line is
``<case> weights=<sha256> predictions=<sha256>``; nothing here is timed.
Usage: PYTHONPATH=. python tools/weights_digest.py (from a checkout with an in-place build)
"""
import hashlib

import numpy as np
from sklearn.datasets import load_digits

import fastnn
from fastnn import Sequential
from fastnn.layers import (
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling1D,
    MaxPooling2D,
    Normalization,
)
from fastnn.optimizers import SGD, Adam
from fastnn.regularizers import L2


def _digits(dtype):
    x, y = load_digits(return_X_y=True)
    return (x[:600] / 16.0).astype(dtype), y[:600]


def _dense(dtype):
    return [Dense(25, activation="relu"), Dense(15, activation="relu"), Dense(10)]


def _regularized(dtype):
    norm = Normalization()
    norm.adapt(_digits(dtype)[0])
    return [norm, Dense(24, activation="tanh", kernel_regularizer=L2(1e-3)),
            Dropout(0.25, seed=7), Dense(16, activation="relu", bias_regularizer=L2(1e-3)),
            Dropout(0.1), Dense(10)]


def _conv2d(dtype):
    return [Conv2D(6, 3, padding="same", activation="relu"), MaxPooling2D(2),
            Conv2D(8, (2, 3), strides=(1, 2), activation="relu", kernel_regularizer=L2(1e-3)),
            Flatten(), Dropout(0.2), Dense(10)]


def _conv1d(dtype):
    return [Conv1D(5, 7, strides=2, padding="same", activation="tanh"), MaxPooling1D(3, 2),
            Conv1D(4, 3, activation="relu"), Flatten(), Dense(10)]


SHAPES = {_dense: (64,), _regularized: (64,), _conv2d: (8, 8, 1), _conv1d: (64, 1)}


def digest(build, dtype, optimizer):
    """(weights sha256, predictions sha256) after 3 epochs with fixed seeds."""
    x, y = _digits(dtype)
    x = x.reshape((len(x),) + SHAPES[build])
    fastnn.set_random_seed(0)
    model = Sequential(build(dtype), dtype=np.dtype(dtype).name)
    model.compile(optimizer=optimizer,
                  loss=fastnn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    weights = hashlib.sha256()
    for array in model.get_weights():
        weights.update(np.ascontiguousarray(array).tobytes())
    predictions = hashlib.sha256(np.ascontiguousarray(model.predict(x, verbose=0)).tobytes())
    return weights.hexdigest(), predictions.hexdigest()


def loss_digests():
    """(name, sha256) of the regression loss kernels' sums and gradients on fixed data
    with exact ties (e = 0, |e| = delta) and sample weights."""
    from fastnn._kernels import losses
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        p = rng.standard_normal((37, 13)).astype(dtype)
        y = rng.standard_normal((37, 13)).astype(dtype)
        y[0] = p[0]
        y[1] = p[1] - dtype(1.0)
        sw = rng.uniform(0.5, 2.0, 37).astype(dtype)
        for name in ("mse", "mae", "huber"):
            grad = np.empty_like(p)
            extra = (1.0,) if name == "huber" else ()
            total = getattr(losses, name)(p, y, sw, 1 / 37, grad, *extra)
            h = hashlib.sha256(np.float64(total).tobytes() + grad.tobytes())
            yield f"{name}-{np.dtype(dtype).name}", h.hexdigest()


def main():
    for name, h in loss_digests():
        print(f"loss-{name} {h}")
    for build in SHAPES:
        for dtype in (np.float32, np.float64):
            for name, make in (("sgd", lambda: SGD(0.05, momentum=0.9)),
                               ("adam", lambda: Adam(1e-3))):
                w, p = digest(build, dtype, make())
                print(f"{build.__name__[1:]}-{np.dtype(dtype).name}-{name} "
                      f"weights={w} predictions={p}")


if __name__ == "__main__":
    main()
