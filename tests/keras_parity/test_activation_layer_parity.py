"""Activation layers (ReLU, LeakyReLU, Softmax, Activation) trained against Keras.

A small network built from Dense layers without activation, each followed by an activation
layer, is trained for several epochs from the same weights by fastnn and Keras; weights and
History losses agree within 1e-4 (float32) / 1e-9 (float64), the group's standard.  The
Softmax output with SparseCategoricalCrossentropy(from_logits=False) exercises the fused
loss behind an activation layer (Keras's TensorFlow backend fuses the same way).
"""

import numpy as np
import pytest

pytest.importorskip("keras")

import keras
from _kparity import (
    DTYPES,
    FWD_TOL,
    check_close,
    check_history,
    check_weights,
    keras_floatx,
    make_weights,
    to_numpy,
)

import fastnn
from fastnn import layers as fl
from fastnn import losses as flosses
from fastnn import optimizers as fopt

N_ROWS, N_FEATURES, BATCH, EPOCHS = 70, 6, 16, 6
SIZES = [N_FEATURES, 8, 7, 6, 3]

# (fastnn activation layer, Keras activation layer) after each Dense
STACKS = {
    "relu-leaky-tanh-softmax": [
        (fl.ReLU, keras.layers.ReLU),
        (lambda: fl.LeakyReLU(0.25), lambda: keras.layers.LeakyReLU(negative_slope=0.25)),
        (lambda: fl.Activation("tanh"), lambda: keras.layers.Activation("tanh")),
        (fl.Softmax, keras.layers.Softmax),
    ],
    "default-leaky-swish-sigmoid-softmax": [
        (fl.LeakyReLU, keras.layers.LeakyReLU),      # both default to slope 0.3
        (lambda: fl.Activation("swish"), lambda: keras.layers.Activation("swish")),
        (lambda: fl.Activation("sigmoid"), lambda: keras.layers.Activation("sigmoid")),
        (lambda: fl.Activation("softmax"), lambda: keras.layers.Activation("softmax")),
    ],
}


def _twins(stack, dtype, weights):
    fast_layers, keras_layers = [], [keras.Input((SIZES[0],))]
    for units, (make_fast, make_keras) in zip(SIZES[1:], STACKS[stack], strict=True):
        fast_layers += [fl.Dense(units), make_fast()]
        keras_layers += [keras.layers.Dense(units), make_keras()]
    fast = fastnn.Sequential(fast_layers, dtype=dtype)
    fast.build(SIZES[0])
    kmodel = keras.Sequential(keras_layers)
    fast.set_weights([np.asarray(w, dtype=dtype) for w in weights])
    kmodel.set_weights([np.asarray(w, dtype=dtype) for w in weights])
    return fast, kmodel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_activation_layer_stack_trains_like_keras(stack, dtype):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((N_ROWS, N_FEATURES))
    y = rng.integers(0, 3, N_ROWS)
    weights = make_weights(rng, SIZES)
    with keras_floatx(dtype):
        fast, kmodel = _twins(stack, dtype, weights)
        fast_pred0 = fast.predict(x)
        check_close(fast_pred0, to_numpy(kmodel.predict(x, verbose=0)), dtype,
                    "activation-layers", "outputs", "predict before fit", tol=FWD_TOL[dtype])
        fast.compile(optimizer=fopt.Adam(learning_rate=0.0078125),
                     loss=flosses.SparseCategoricalCrossentropy())
        kmodel.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0078125),
                       loss=keras.losses.SparseCategoricalCrossentropy())
        kw = dict(epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0)
        f_hist = fast.fit(x, y, **kw)
        k_hist = kmodel.fit(x, y, **kw)
        check_history(f_hist, k_hist, dtype, "activation-layers")
        k_weights = [np.asarray(w) for w in kmodel.get_weights()]
        k_pred = to_numpy(kmodel.predict(x, verbose=0))
    check_weights(fast, k_weights, dtype, "activation-layers")
    check_close(fast.predict(x), k_pred, dtype, "activation-layers", "outputs",
                "predict after fit")
