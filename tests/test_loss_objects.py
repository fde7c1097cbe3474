"""fastnn.losses at the public level: MeanAbsoluteError and Huber as callables, in compile
(by name and instance), with sample and class weights, and through get_config / save / load."""
import numpy as np
import pytest

import fastnn
from fastnn import losses
from fastnn.layers import Dense, Dropout
from fastnn.losses import Huber, MeanAbsoluteError, MeanSquaredError


def _huber(y, p, delta):
    e = np.abs(np.asarray(p, np.float64) - np.asarray(y, np.float64))
    return np.where(e <= delta, 0.5 * e * e, delta * e - 0.5 * delta * delta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mae_callable(dtype):
    y = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]], dtype)
    p = np.array([[1.5, 2.0], [-1.0, 1.0], [3.0, 2.75]], dtype)
    loss = MeanAbsoluteError()
    # per row: (0.5 + 0) / 2, (1 + 2) / 2, (0 + 0.25) / 2; then the mean over rows
    assert loss(y, p) == (0.25 + 1.5 + 0.125) / 3
    # sample weights: sum(w_i * loss_i) / n (Keras's "sum over batch size")
    assert loss(y, p, sample_weight=[2.0, 0.0, 4.0]) == (0.5 + 0 + 0.5) / 3
    # a (n,) target against a (n,) prediction is one column
    assert loss([1.0, 2.0], [2.0, 4.0]) == 1.5


@pytest.mark.parametrize("delta", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huber_callable(delta, dtype):
    rng = np.random.default_rng(2)
    y = rng.standard_normal((9, 4)).astype(dtype)
    p = (y + 2 * rng.standard_normal((9, 4))).astype(dtype)
    sw = rng.uniform(0, 2, 9)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    rows = _huber(y, p, delta).mean(axis=1)
    np.testing.assert_allclose(Huber(delta)(y, p), rows.mean(), rtol=rtol)
    np.testing.assert_allclose(Huber(delta=delta)(y, p, sample_weight=sw),
                               np.dot(sw, rows) / 9, rtol=rtol)
    assert Huber()(y, p) == Huber(1.0)(y, p)


@pytest.mark.parametrize("delta, error", [(0.0, ValueError), (-1.0, ValueError),
                                          (float("nan"), ValueError), (float("inf"), ValueError),
                                          ("1", TypeError), (True, TypeError)])
def test_huber_delta_is_validated(delta, error):
    with pytest.raises(error, match="delta"):
        Huber(delta)


@pytest.mark.parametrize("name, cls", [
    ("mae", MeanAbsoluteError), ("MAE", MeanAbsoluteError),
    ("mean_absolute_error", MeanAbsoluteError), ("MeanAbsoluteError", MeanAbsoluteError),
    ("huber", Huber), ("Huber", Huber), ("MeanSquaredError", MeanSquaredError),
])
def test_names(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls
    model = fastnn.Sequential([Dense(1, input_dim=2)])
    model.compile(loss=name)
    assert type(model.loss) is cls


@pytest.mark.parametrize("loss", [MeanAbsoluteError(), Huber(), Huber(delta=0.25)])
def test_config_round_trip(loss):
    config = loss.get_config()
    again = losses.from_config(config)
    assert type(again) is type(loss) and again.get_config() == config
    assert repr(again) == repr(loss)


def test_from_config_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown config"):
        losses.from_config({"name": "hinge"})


def _regression_model(dtype, loss, seed=0):
    rng = np.random.default_rng(seed)
    model = fastnn.Sequential([Dense(5, activation="tanh", input_dim=3), Dense(2)], dtype=dtype)
    model.set_weights([rng.standard_normal(w.shape) for w in model.get_weights()])
    model.compile(optimizer="sgd", loss=loss)
    return model


@pytest.mark.parametrize("loss", ["mae", Huber(0.5)], ids=["mae", "huber"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_evaluate_is_the_loss_of_predict(loss, dtype):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((31, 3)), 3 * rng.standard_normal((31, 2))
    sw = rng.uniform(0, 2, 31)
    model = _regression_model(dtype, loss)
    pred = model.predict(x)
    rtol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(model.evaluate(x, y), model.loss(y, pred), rtol=rtol)
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=sw),
                               model.loss(y, pred, sample_weight=sw), rtol=rtol)


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_class_weight_is_sample_weight_by_class(loss):
    # one output column: Keras maps each row to the class round(y) and weighs it
    rng = np.random.default_rng(3)
    x = rng.standard_normal((24, 3))
    y = rng.integers(0, 2, (24, 1)).astype(float)
    weights = {0: 0.5, 1: 2.0}
    a = fastnn.Sequential([Dense(1, input_dim=3)], dtype="float64")
    b = fastnn.Sequential([Dense(1, input_dim=3)], dtype="float64")
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(optimizer="sgd", loss=loss)
    ha = a.fit(x, y, epochs=2, batch_size=5, shuffle=False, verbose=0, class_weight=weights)
    hb = b.fit(x, y, epochs=2, batch_size=5, shuffle=False, verbose=0,
               sample_weight=np.where(y[:, 0] == 1, 2.0, 0.5))
    assert ha.history["loss"] == hb.history["loss"]
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("loss", ["mae", Huber(0.75)], ids=["mae", "huber"])
def test_fit_reduces_the_loss_and_save_load_keeps_it(loss, tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 3))
    y = np.stack([x[:, 0] - 2 * x[:, 1], x[:, 2]], axis=1)
    model = _regression_model("float64", loss, seed=2)
    model.compile(optimizer=fastnn.optimizers.Adam(learning_rate=0.02), loss=loss)
    before = model.evaluate(x, y)
    model.fit(x, y, epochs=20, batch_size=8, verbose=0)
    assert model.evaluate(x, y) < 0.5 * before
    path = tmp_path / "m.fastnn"
    model.save(path)
    loaded = fastnn.load_model(path)
    assert type(loaded.loss) is type(model.loss)
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_huber_delta_changes_training():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((20, 3)), 4 * rng.standard_normal((20, 2))
    out = []
    for delta in (0.5, 2.0):
        model = _regression_model("float64", Huber(delta))
        model.fit(x, y, epochs=1, batch_size=20, verbose=0)
        out.append(model.get_weights()[0])
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_regression_loss_after_a_final_dropout(loss):
    # the last layer is not Dense: nothing to fuse with (this used to raise in fit)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((12, 2)), rng.standard_normal((12, 3))
    model = fastnn.Sequential([Dense(3, input_dim=2), Dropout(0.5)], dtype="float64")
    model.compile(optimizer="sgd", loss=loss)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y), model.loss(y, model.predict(x)),
                               rtol=1e-13)
