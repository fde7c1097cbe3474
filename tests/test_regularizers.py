"""fastnn.regularizers: L1, L2, L1L2, their aliases, get/serialize, and Dense's two penalties."""
import pathlib

import numpy as np
import pytest

import fastnn
from fastnn import regularizers
from fastnn.layers import Dense
from fastnn.regularizers import L1, L1L2, L2, Regularizer, l1, l1_l2, l2

DATA = pathlib.Path(__file__).parent / "data"


def test_lowercase_names_are_the_classes():
    # Keras 3 exports l1, l2, l1_l2 as aliases of the classes, not as functions
    assert l1 is L1 and l2 is L2 and l1_l2 is L1L2
    assert all(issubclass(cls, Regularizer) for cls in (L1, L2, L1L2))


def test_defaults_are_keras_defaults():
    assert L1().l1 == 0.01
    assert L2().l2 == 0.01
    assert (L1L2().l1, L1L2().l2) == (0.0, 0.0)   # Keras 3: 0, not 0.01
    assert L1(None).l1 == 0.01 and L2(None).l2 == 0.01 and L1L2(None, None).l2 == 0.0


def test_penalty_values():
    w = np.array([[1.0, -2.0], [0.0, 0.5]])
    assert L1(0.5)(w) == 0.5 * 3.5
    assert L2(0.5)(w) == 0.5 * 5.25
    assert L1L2(l1=0.5, l2=0.25)(w) == 0.5 * 3.5 + 0.25 * 5.25
    assert L1L2()(w) == 0.0
    assert isinstance(L2(0.1)(w.astype(np.float32)), float)


@pytest.mark.parametrize("reg", [L1(0.3), L2(0.2), L1L2(0.1, 0.4), L1L2(l2=0.5)])
def test_config_round_trip(reg):
    config = reg.get_config()
    again = type(reg).from_config(config)
    assert again == reg and again is not reg
    assert again.get_config() == config
    assert regularizers.deserialize(regularizers.serialize(reg)) == reg
    assert eval(repr(reg), vars(regularizers)) == reg


def test_get_accepts_what_keras_accepts():
    assert regularizers.get(None) is None
    reg = L1L2(0.1, 0.2)
    assert regularizers.get(reg) is reg
    # Keras 3's string identifiers: the class names and their snake_case ("l1l2")
    for name, want in [("l1", L1()), ("l2", L2()), ("l1l2", L1L2()), ("L1", L1()),
                       ("L2", L2()), ("L1L2", L1L2())]:
        assert regularizers.get(name) == want
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.5}}) == L2(0.5)
    # Keras's own serialized form carries more keys
    keras_form = {"module": "keras.regularizers", "class_name": "L1L2",
                  "config": {"l1": 0.1, "l2": 0.0}, "registered_name": None}
    assert regularizers.get(keras_form) == L1L2(0.1, 0.0)


@pytest.mark.parametrize("identifier, error, match", [
    ("l1_l2", ValueError, "unknown name"),     # Keras 3.15 refuses it too
    ("L3", ValueError, "unknown name"),
    ("l2 ", ValueError, "unknown name"),
    ({"l2": 0.1}, ValueError, "class_name"),
    ({"class_name": "OrthogonalRegularizer", "config": {}}, ValueError, "unknown regularizer"),
    (0.01, TypeError, "must be None"),
    (lambda w: 0.01 * np.sum(w), TypeError, "compiles only"),
    (Regularizer(), TypeError, "compiles only"),
])
def test_get_refuses_the_rest(identifier, error, match):
    with pytest.raises(error, match=match):
        regularizers.get(identifier)


@pytest.mark.parametrize("make, error, match", [
    (lambda: L1(-0.1), ValueError, "l1 must be"),
    (lambda: L2(float("nan")), ValueError, "l2 must be"),
    (lambda: L1L2(l1=float("inf")), ValueError, "l1 must be"),
    (lambda: L1L2(l2=-1), ValueError, "l2 must be"),
    (lambda: L2("0.1"), TypeError, "l2 must be a number"),
    (lambda: L1(True), TypeError, "l1 must be a number"),
])
def test_factors_are_validated(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ----------------------------------------------------------------------------- Dense

def test_dense_takes_both_regularizers_by_name_or_instance():
    layer = Dense(3, kernel_regularizer="l1", bias_regularizer=L1L2(0.01, 0.02))
    assert layer.kernel_regularizer == L1(0.01)
    assert layer.bias_regularizer == L1L2(0.01, 0.02)
    assert Dense(3).bias_regularizer is None


@pytest.mark.parametrize("kernel_reg, bias_reg", [
    (None, None), (L1(0.1), None), (L2(0.2), L1(0.3)), (L1L2(0.1, 0.2), L1L2(l2=0.4)),
])
def test_dense_config_round_trip(kernel_reg, bias_reg):
    layer = Dense(4, activation="relu", kernel_regularizer=kernel_reg, bias_regularizer=bias_reg)
    config = layer.get_config()
    again = Dense.from_config(config)
    assert again.kernel_regularizer == kernel_reg
    assert again.bias_regularizer == bias_reg
    assert again.get_config() == config


def test_dense_reads_configs_of_earlier_releases():
    # before L1 existed, an L2 kernel regularizer was saved as {"l2": x}, with no bias key
    old = {"name": None, "units": 3, "activation": "tanh", "use_bias": True,
           "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
           "kernel_regularizer": {"l2": 0.25}, "input_dim": None}
    layer = Dense.from_config(old)
    assert layer.kernel_regularizer == L2(0.25)
    assert layer.bias_regularizer is None


def test_file_written_before_l1_loads():
    # tests/data/legacy_l2_v1.fastnn was written by fastnn before this change: a Dense(3,
    # tanh, L2(0.0078125)) -> Dense(2) model, Adam and MSE, fitted for 2 epochs
    model = fastnn.load_model(DATA / "legacy_l2_v1.fastnn")
    first, second = model.layers
    assert first.kernel_regularizer == L2(0.0078125) and first.bias_regularizer is None
    assert second.kernel_regularizer is None
    x = np.random.default_rng(0).standard_normal((10, 4))   # the data it was fitted on
    np.testing.assert_allclose(model.predict(x[:2]), [[0.17072837, -0.5061727],
                                                      [0.82157296, -1.1529013]], rtol=1e-6)
    y = np.random.default_rng(1).standard_normal((10, 2))
    want = np.mean((model.predict(x).astype(np.float64) - y) ** 2)
    want += 0.0078125 * np.sum(first.kernel.astype(np.float64) ** 2)
    np.testing.assert_allclose(model.evaluate(x, y), want, rtol=1e-6)
    assert model.optimizer.iterations == 4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_and_load_keep_every_regularizer(tmp_path, dtype):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 2))
    model = fastnn.Sequential([
        Dense(6, activation="tanh", kernel_regularizer=L1(0.01), bias_regularizer="l2",
              input_dim=5),
        Dense(2, kernel_regularizer=L1L2(0.02, 0.03), bias_regularizer=L1L2(l1=0.05)),
    ], dtype=dtype)
    model.compile(optimizer="adam", loss="mae")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "m.fastnn"
    model.save(path)
    loaded = fastnn.load_model(path)
    for a, b in zip(model.layers, loaded.layers, strict=True):
        assert a.kernel_regularizer == b.kernel_regularizer
        assert a.bias_regularizer == b.bias_regularizer
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    # training continues identically: the penalties reach the loaded model's engine
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- the loss

def _penalty_of(model):
    total = 0.0
    for layer in model.layers:
        for reg, arr in ((layer.kernel_regularizer, layer.kernel),
                         (layer.bias_regularizer, layer.bias)):
            if reg is not None:
                total += reg(arr)
    return total


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reported_loss_includes_every_penalty(dtype):
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    regs = dict(kernel_regularizer=L1L2(0.1, 0.2), bias_regularizer=L1(0.3))
    plain = fastnn.Sequential([Dense(4, activation="tanh", input_dim=3), Dense(2)], dtype=dtype)
    reg = fastnn.Sequential([Dense(4, activation="tanh", input_dim=3, **regs),
                             Dense(2, bias_regularizer=L2(0.5))], dtype=dtype)
    weights = [w + 0.1 for w in plain.get_weights()]   # biases away from 0
    plain.set_weights(weights)
    reg.set_weights(weights)
    for model in (plain, reg):
        model.compile(optimizer="sgd", loss="huber")
    penalty = _penalty_of(reg)
    assert penalty > 0.1
    rtol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(reg.evaluate(x, y) - plain.evaluate(x, y), penalty, rtol=rtol)
    # full batch, one epoch: History's loss is the loss at the weights before the step
    h_plain = plain.fit(x, y, batch_size=20, epochs=1, verbose=0)
    h_reg = reg.fit(x, y, batch_size=20, epochs=1, verbose=0)
    np.testing.assert_allclose(h_reg.history["loss"][0] - h_plain.history["loss"][0], penalty,
                               rtol=rtol)


def test_bias_regularizer_without_bias_is_inert():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 1))
    weights = [rng.standard_normal((3, 1))]
    out = []
    for bias_reg in (None, L2(10.0)):
        model = fastnn.Sequential([Dense(1, use_bias=False, bias_regularizer=bias_reg,
                                         input_dim=3)], dtype="float64")
        model.set_weights(weights)
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False)
        out.append((model.get_weights()[0], model.evaluate(x, y)))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]
