"""Convolution and pooling against Keras: layer outputs from identical weights, and small
CNNs (1-D and 2-D, strides 1 and 2, both paddings, pooling, Flatten) trained with Adam and
SGD, compared on weights, History and outputs."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from _kparity import (  # noqa: E402
    DTYPES,
    FWD_TOL,
    check_close,
    check_history,
    check_weights,
    keras_floatx,
    to_numpy,
)

import fastnn  # noqa: E402
from fastnn import layers as fl  # noqa: E402
from fastnn import losses as flosses  # noqa: E402
from fastnn import optimizers as fopt  # noqa: E402

# (fastnn layer, Keras layer) factories: both take the same arguments
PAIRS = {
    "Conv1D": (fl.Conv1D, keras.layers.Conv1D),
    "Conv2D": (fl.Conv2D, keras.layers.Conv2D),
    "MaxPooling1D": (fl.MaxPooling1D, keras.layers.MaxPooling1D),
    "MaxPooling2D": (fl.MaxPooling2D, keras.layers.MaxPooling2D),
    "Flatten": (fl.Flatten, keras.layers.Flatten),
    "Dense": (fl.Dense, keras.layers.Dense),
    "Reshape": (fl.Reshape, keras.layers.Reshape),
}


def _twins(stack, input_shape, dtype, rng):
    """fastnn and Keras Sequentials of `stack` ((class name, args, kwargs) triples) with the
    same Glorot-uniform kernels and small biases in both, all drawn from `rng`: Keras's own
    initial kernels are unseeded, and a draw that puts a ReLU or max-pool input within a
    rounding of a tie would make a case fail now and then instead of always or never."""
    fast = fastnn.Sequential([fastnn.Input(shape=input_shape)]
                             + [PAIRS[c][0](*a, **k) for c, a, k in stack], dtype=dtype)
    kmodel = keras.Sequential([keras.Input(input_shape)]
                              + [PAIRS[c][1](*a, **k) for c, a, k in stack])
    shapes = [np.shape(w) for w in kmodel.get_weights()]
    weights = [_glorot(s, rng) if len(s) > 1 else 0.1 * rng.standard_normal(s) for s in shapes]
    kmodel.set_weights([w.astype(dtype) for w in weights])
    fast.set_weights([w.astype(dtype) for w in weights])
    return fast, kmodel


def _glorot(shape, rng):
    """Keras's Glorot-uniform draw for a kernel of `shape` (receptive field x channels)."""
    field = int(np.prod(shape[:-2]))
    limit = np.sqrt(6.0 / (field * (shape[-2] + shape[-1])))
    return rng.uniform(-limit, limit, shape)


LAYER_CASES = {
    # id: (stack, input shape)
    "conv1d-k3-s1-valid": ([("Conv1D", (4, 3), {"activation": "relu"})], (11, 2)),
    "conv1d-k4-s2-same": ([("Conv1D", (3, 4), {"strides": 2, "padding": "same"})], (11, 3)),
    "conv1d-k5-s3-same-tanh": ([("Conv1D", (2, 5), {"strides": 3, "padding": "same",
                                                    "activation": "tanh"})], (13, 1)),
    "conv1d-course-ecg": ([("Conv1D", (1, 20), {"strides": 10, "activation": "relu"}),
                           ("Conv1D", (1, 5), {"strides": 2, "activation": "relu"})], (100, 1)),
    "conv2d-3x3-same": ([("Conv2D", (5, 3), {"padding": "same", "activation": "sigmoid"})],
                        (8, 8, 1)),
    "conv2d-2x3-s2-same": ([("Conv2D", (4, (2, 3)), {"strides": 2, "padding": "same"})],
                           (7, 6, 3)),
    "conv2d-3x2-s(2,1)-valid": ([("Conv2D", (3, (3, 2)), {"strides": (2, 1),
                                                          "use_bias": False})], (9, 5, 2)),
    "maxpool1d-2": ([("MaxPooling1D", (), {})], (9, 3)),
    "maxpool1d-3-s2-same": ([("MaxPooling1D", (3, 2, "same"), {})], (10, 2)),
    "maxpool2d-2": ([("MaxPooling2D", (), {})], (7, 7, 2)),
    "maxpool2d-3-s2-same": ([("MaxPooling2D", ((3, 3), (2, 2), "same"), {})], (8, 7, 2)),
    "maxpool2d-2x3-s1-valid": ([("MaxPooling2D", ((2, 3), 1), {})], (5, 6, 1)),
    "cnn-flatten-dense": ([("Conv2D", (3, 3), {"padding": "same", "activation": "relu"}),
                           ("MaxPooling2D", (), {}), ("Conv2D", (4, 2), {"activation": "tanh"}),
                           ("Flatten", (), {}), ("Dense", (5,), {"activation": "softmax"})],
                          (8, 8, 1)),
    "reshape-conv1d": ([("Reshape", ((12, 2),), {}), ("Conv1D", (3, 3), {"strides": 2})],
                       (24,)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_forward_matches_keras(case, dtype):
    stack, shape = LAYER_CASES[case]
    rng = np.random.default_rng(len(case))
    x = rng.standard_normal((6, *shape))
    with keras_floatx(dtype):
        fast, kmodel = _twins(stack, shape, dtype, rng)
        want = to_numpy(kmodel.predict(x.astype(dtype), verbose=0))
    assert fast.output_shape == tuple(kmodel.output_shape)
    assert fast.count_params() == kmodel.count_params()
    check_close(fast.predict(x), want, dtype, "conv", "outputs", case, tol=FWD_TOL[dtype] * 10)


TRAIN_CASES = {
    "cnn2d-s1-same-pool": ([("Conv2D", (4, 3), {"padding": "same", "activation": "tanh"}),
                            ("MaxPooling2D", (), {}), ("Flatten", (), {}),
                            ("Dense", (3,), {"activation": "softmax"})], (6, 6, 1), "scce"),
    "cnn2d-s2-valid": ([("Conv2D", (3, (3, 2)), {"strides": 2, "activation": "sigmoid"}),
                        ("Conv2D", (2, 2), {"padding": "same", "activation": "tanh"}),
                        ("Flatten", (), {}), ("Dense", (3,), {"activation": "softmax"})],
                       (7, 6, 2), "scce"),
    "cnn1d-ecg": ([("Conv1D", (2, 20), {"strides": 10, "activation": "tanh"}),
                   ("Conv1D", (1, 5), {"strides": 2, "activation": "tanh"}),
                   ("Flatten", (), {}), ("Dense", (1,), {"activation": "sigmoid"})],
                  (100, 1), "bce"),
    "cnn1d-s2-same-pool": ([("Conv1D", (3, 4), {"strides": 2, "padding": "same",
                                                 "activation": "tanh"}),
                            ("MaxPooling1D", (2, None, "same"), {}), ("Flatten", (), {}),
                            ("Dense", (2,), {})], (11, 2), "mse"),
}

OPTS = {
    "adam": (lambda: fopt.Adam(learning_rate=0.0078125),
             lambda: keras.optimizers.Adam(learning_rate=0.0078125)),
    "sgd": (lambda: fopt.SGD(learning_rate=0.0625),
            lambda: keras.optimizers.SGD(learning_rate=0.0625)),
}
LOSS = {"scce": (flosses.SparseCategoricalCrossentropy,
                 keras.losses.SparseCategoricalCrossentropy),
        "bce": (flosses.BinaryCrossentropy, keras.losses.BinaryCrossentropy),
        "mse": (flosses.MeanSquaredError, keras.losses.MeanSquaredError)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", sorted(OPTS))
@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_training_matches_keras(case, opt, dtype):
    stack, shape, loss = TRAIN_CASES[case]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((37, *shape))
    width = stack[-1][1][0]
    y = {"scce": lambda: rng.integers(0, width, 37),
         "bce": lambda: rng.integers(0, 2, (37, width)).astype(float),
         "mse": lambda: rng.standard_normal((37, width))}[loss]()
    with keras_floatx(dtype):
        fast, kmodel = _twins(stack, shape, dtype, rng)
        fast.compile(optimizer=OPTS[opt][0](), loss=LOSS[loss][0]())
        kmodel.compile(optimizer=OPTS[opt][1](), loss=LOSS[loss][1]())
        kw = dict(epochs=3, batch_size=8, shuffle=False, verbose=0)
        f_hist = fast.fit(x, y, **kw)
        k_hist = kmodel.fit(x.astype(dtype), y, **kw)
        k_weights = [np.asarray(w) for w in kmodel.get_weights()]
        k_pred = to_numpy(kmodel.predict(x.astype(dtype), verbose=0))
    check_history(f_hist, k_hist, dtype, "conv")
    check_weights(fast, k_weights, dtype, "conv")
    check_close(fast.predict(x), k_pred, dtype, "conv", "outputs", "predict after fit")
