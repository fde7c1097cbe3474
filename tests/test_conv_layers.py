"""Conv1D, Conv2D, MaxPooling1D/2D in Sequential: shapes, weights, saving, gradients."""
import numpy as np
import pytest

import fastnn
from fastnn import Input, Sequential, load_model, losses
from fastnn.layers import (
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling1D,
    MaxPooling2D,
    Reshape,
)
from fastnn.optimizers import SGD
from fastnn.regularizers import L2


def _cnn(dtype="float32"):
    return Sequential([Input(shape=(8, 8, 1)),
                       Conv2D(16, (3, 3), activation="relu", padding="same"),
                       MaxPooling2D((2, 2)),
                       Conv2D(32, (3, 3), activation="relu"),
                       Flatten(), Dense(10, activation="softmax")], dtype=dtype)


def test_shapes_params_and_summary_as_keras():
    model = _cnn()
    assert [layer.name.rstrip("_0123456789") for layer in model.layers] == [
        "conv2d", "max_pooling2d", "conv2d", "flatten", "dense"]
    assert model.output_shape == (None, 10)
    assert [tuple(layer.output.shape) for layer in model.layers] == [
        (None, 8, 8, 16), (None, 4, 4, 16), (None, 2, 2, 32), (None, 128), (None, 10)]
    assert [w.shape for w in model.get_weights()] == [
        (3, 3, 1, 16), (16,), (3, 3, 16, 32), (32,), (128, 10), (10,)]
    assert model.count_params() == 160 + 4640 + 1290
    lines = []
    model.summary(print_fn=lines.append)
    assert "(None, 8, 8, 16)" in lines[0] and "4,640" in lines[0]


def test_course_ecg_architecture_shapes():
    model = Sequential([Input(shape=(100, 1)), Conv1D(1, 20, strides=10, activation="relu"),
                        Conv1D(1, 5, strides=2, activation="relu"), Flatten(),
                        Dense(1, activation="sigmoid")])
    assert [tuple(layer.output.shape) for layer in model.layers[:2]] == [(None, 9, 1),
                                                                         (None, 3, 1)]
    assert model.count_params() == 21 + 6 + 4


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [1, 2])
def test_model_output_equals_layer_by_layer_numpy(padding, strides):
    fastnn.set_random_seed(4)
    model = Sequential([Input(shape=(9, 7, 2)),
                        Conv2D(3, (3, 2), strides=strides, padding=padding, activation="tanh"),
                        MaxPooling2D(2, padding=padding),
                        Reshape((-1, 3)), Conv1D(2, 2, padding=padding), Flatten()],
                       dtype="float64")
    x = np.random.default_rng(0).standard_normal((5, 9, 7, 2))
    w1, b1, w2, b2 = model.get_weights()

    def conv2d(x, w, b, s, pad):
        n, h, wd, _ = x.shape
        kh, kw = w.shape[:2]
        if pad == "same":
            oh, ow = -(-h // s), -(-wd // s)
            ph, pw = max((oh - 1) * s + kh - h, 0), max((ow - 1) * s + kw - wd, 0)
            x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        else:
            oh, ow = (h - kh) // s + 1, (wd - kw) // s + 1
        out = np.zeros((n, oh, ow, w.shape[3]))
        for i in range(oh):
            for j in range(ow):
                patch = x[:, i * s:i * s + kh, j * s:j * s + kw, :]
                out[:, i, j, :] = np.tensordot(patch, w, axes=3) + b
        return out

    h = np.tanh(conv2d(x, w1, b1, strides, padding))
    ph = h if padding == "valid" else np.pad(
        h, ((0, 0), (0, h.shape[1] % 2), (0, h.shape[2] % 2), (0, 0)),
        constant_values=-np.inf)
    oh, ow = ph.shape[1] // 2, ph.shape[2] // 2
    pooled = ph[:, :2 * oh, :2 * ow].reshape(5, oh, 2, ow, 2, 3).max(axis=(2, 4))
    seq = pooled.reshape(5, -1, 1, 3).transpose(0, 2, 1, 3)
    out = conv2d(seq, w2[None], b2, 1, padding).reshape(5, -1)
    np.testing.assert_allclose(model.predict(x), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model(x), out, rtol=1e-12, atol=1e-12)


def test_glorot_fans_count_the_receptive_field():
    fastnn.set_random_seed(0)
    layer = Conv2D(64, (5, 5))
    layer(np.zeros((1, 9, 9, 32), np.float32))
    limit = np.sqrt(6 / (25 * 32 + 25 * 64))
    assert np.abs(layer.kernel).max() <= limit
    assert np.abs(layer.kernel).max() > 0.95 * limit


def test_set_weights_then_save_load_and_continue_training(tmp_path):
    fastnn.set_random_seed(2)
    model = _cnn()
    rng = np.random.default_rng(2)
    x, y = rng.random((40, 8, 8, 1)), rng.integers(0, 10, 40)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(tmp_path / "cnn.fastnn")
    loaded = load_model(tmp_path / "cnn.fastnn")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    h1 = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0).history
    h2 = loaded.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0).history
    assert h1 == h2
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = _cnn()
    other.set_weights(model.get_weights())
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        other.set_weights([np.zeros((3, 3, 2, 16))] + model.get_weights()[1:])


@pytest.mark.parametrize("bad, match", [
    (lambda: Conv2D(0, 3), "filters"),
    (lambda: Conv2D(4, (3, 3, 3)), "kernel_size"),
    (lambda: Conv1D(4, 3, padding="causal"), "padding"),
    (lambda: Conv2D(4, 3, dilation_rate=2), "dilation_rate"),
    (lambda: MaxPooling2D(pool_size=0), "pool_size"),
    (lambda: Conv2D(4, 3, data_format="channels_first"), "data_format")])
def test_bad_arguments_raise(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()


def test_wrong_input_rank_or_too_small_input_raises_before_building():
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        Sequential([Input(shape=(8, 8)), Conv2D(2, 3)])
    with pytest.raises(ValueError, match="does not fit"):
        Sequential([Input(shape=(4, 1)), Conv1D(2, 5)])
    model = Sequential([Conv1D(2, 3), Flatten(), Dense(1)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match=r"\(steps, channels\)"):
        model.fit(np.zeros((4, 6)), np.zeros(4), verbose=0)
    assert not model.built


def _gradient_problem(layers, shape, seed=0):
    rng = np.random.default_rng(seed)
    model = Sequential([Input(shape=shape), *layers], dtype="float64")
    model.compile(optimizer=SGD(learning_rate=1.0), loss=losses.BinaryCrossentropy())
    x = rng.standard_normal((6, *shape))
    y = rng.integers(0, 2, (6, 1)).astype(float)
    model._params[:] = 0.5 * rng.standard_normal(model._params.shape)
    return model, x, y


@pytest.mark.parametrize("case", ["conv2d-pool-same", "conv2d-stride2-valid", "conv1d-ecg"])
def test_gradients_match_central_differences(case):
    layers, shape = {
        "conv2d-pool-same": ([Conv2D(3, 3, padding="same", activation="tanh",
                                     kernel_regularizer=L2(0.01)),
                              MaxPooling2D(padding="same"), Flatten(),
                              Dense(1, activation="sigmoid")], (5, 5, 2)),
        "conv2d-stride2-valid": ([Conv2D(2, (2, 3), strides=2, activation="sigmoid"),
                                  Conv2D(2, 2, padding="same", activation="tanh"),
                                  Flatten(), Dense(1, activation="sigmoid")], (7, 6, 1)),
        "conv1d-ecg": ([Conv1D(2, 20, strides=10, activation="tanh"),
                        Conv1D(1, 5, strides=2, activation="tanh"),
                        MaxPooling1D(2, padding="same"), Flatten(),
                        Dense(1, activation="sigmoid")], (100, 1)),
    }[case]
    model, x, y = _gradient_problem(layers, shape)
    p0 = model._params.copy()

    def loss(p):
        model._params[:] = p
        return model.evaluate(x, y, batch_size=len(x))

    numeric = np.empty_like(p0)
    for i in range(p0.size):
        values = []
        for step in (-2, -1, 1, 2):
            q = p0.copy()
            q[i] += step * 1e-4
            values.append(loss(q))
        numeric[i] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / 12e-4
    model._params[:] = p0
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(p0 - model._params, numeric, rtol=1e-6, atol=1e-9)


def test_float64_and_dropout_compose():
    fastnn.set_random_seed(0)
    model = Sequential([Input(shape=(6, 2)), Conv1D(4, 3, padding="same", activation="relu"),
                        Dropout(0.3), MaxPooling1D(), Flatten(), Dense(2)], dtype="float64")
    model.compile(loss="mse", optimizer="sgd")
    x = np.random.default_rng(1).standard_normal((10, 6, 2))
    hist = model.fit(x, np.zeros((10, 2)), epochs=3, verbose=0)
    assert len(hist.history["loss"]) == 3
    assert model.predict(x).dtype == np.float64
    assert model.layers[0].kernel.dtype == np.float64


def test_conv_output_takes_targets_of_its_shape():
    model = Sequential([Conv2D(2, 3, padding="same", activation="sigmoid",
                               input_shape=(5, 5, 1))])
    model.compile(loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((7, 5, 5, 1)), (rng.random((7, 5, 5, 2)) > 0.5).astype(float)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x).shape == (7, 5, 5, 2)
    assert np.isfinite(model.evaluate(x, y))
    with pytest.raises(ValueError, match=r"shape \(n, 5, 5, 2\)"):
        model.fit(x, y.reshape(7, -1), verbose=0)


@pytest.fixture
def threads():
    """Set fastnn's thread count for one test and restore it after."""
    old = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(old)


def _threaded_fit(dtype, n_threads, threads):
    """Weights and predictions of a CNN whose im2col, col2im and pooling passes (forward
    and backward, overlapping windows) are large enough to run on the pool.  A third of
    the pixels are denormal where a pool window's maximum is tiny: pooling then depends
    on the floating-point mode (flush-to-zero in training, not in predict), which every
    pool task must take from the caller: workers started by a training call keep its
    flush-to-zero mode."""
    threads(n_threads)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((128, 32, 32, 4)).astype(dtype)
    x[:, :12] = 0
    x[:, 1:12:2, 1::2] = np.finfo(dtype).smallest_subnormal * 7
    y = rng.integers(0, 10, len(x))
    fastnn.set_random_seed(3)
    model = Sequential([Input(shape=(32, 32, 4)), MaxPooling2D(2),
                        Conv2D(32, 3, padding="same", activation="relu"),
                        MaxPooling2D(3, strides=2), Conv2D(16, 3, activation="relu"),
                        Flatten(), Dense(10)], dtype=dtype)
    model.compile(optimizer="adam",
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    pooled = Sequential([Input(shape=(32, 32, 4)), MaxPooling2D(2), Flatten()], dtype=dtype)
    # the pool may run a job on the caller alone after a slow one (csrc/fnn_pool.h's
    # back-off on a busy machine): enough repeats that some reach the workers
    return model.get_weights() + [model.predict(x, verbose=0)] + [
        pooled.predict(x, batch_size=128, verbose=0) for _ in range(30)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_training_and_inference_bits_do_not_depend_on_threads(dtype, threads):
    one = _threaded_fit(dtype, 1, threads)
    two = _threaded_fit(dtype, 2, threads)
    assert np.any((one[-1] > 0) & (one[-1] < np.finfo(dtype).tiny))  # denormals kept
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
