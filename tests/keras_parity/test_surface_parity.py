"""The everyday surface of issue 7 against Keras 3 itself: return types, the monitor
callbacks' decisions on scripted values, symbolic shapes, Normalization's broadcasting
and axis=None, to_categorical."""

import numpy as np
import pytest

pytest.importorskip("keras")

import keras
from _kparity import to_numpy

import fastnn
from fastnn import callbacks as fcb
from fastnn import layers as fl
from fastnn.utils import to_categorical

N, D = 40, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    return (rng.standard_normal((N, D)) + y[:, None]).astype(np.float32), y


def twins(metrics=None):
    fast = fastnn.Sequential([fastnn.Input(shape=(D,)), fl.Dense(4, activation="relu"),
                              fl.Dense(1, activation="sigmoid")])
    fast.compile(optimizer=fastnn.optimizers.SGD(0.1), loss="binary_crossentropy",
                 metrics=metrics)
    kmodel = keras.Sequential([keras.Input(shape=(D,)), keras.layers.Dense(4, activation="relu"),
                               keras.layers.Dense(1, activation="sigmoid")])
    kmodel.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
                   metrics=metrics)
    return fast, kmodel


def scripted(module, values):
    class Script(module.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = values[epoch]
    return Script()


@pytest.mark.parametrize("metrics", [None, ["accuracy"]])
def test_return_types_match_keras(metrics):
    x, y = data()
    fast, kmodel = twins(metrics)
    for f, k in [(fast.evaluate(x, y), kmodel.evaluate(x, y, verbose=0)),
                 (fast.train_on_batch(x, y), kmodel.train_on_batch(x, y)),
                 (fast.test_on_batch(x, y), kmodel.test_on_batch(x, y))]:
        assert type(f) is type(k), (f, k)
        if isinstance(k, list):
            assert len(f) == len(k)
    f = fast.evaluate(x, y, return_dict=True)
    k = kmodel.evaluate(x, y, verbose=0, return_dict=True)
    assert set(f) == set(k)
    hf = fast.fit(x, y, 8, 2, 0)
    hk = kmodel.fit(x, y, 8, 2, 0)
    assert hf.epoch == hk.epoch and set(hf.history) == set(hk.history)
    assert hf.params == hk.params


SCRIPTS = [
    ([1.0, 0.9, 0.95, 0.97, 0.99, 1.0, 1.0, 1.0], {"patience": 2}),
    ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], {"patience": 1, "baseline": 0.5}),
    ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], {"patience": 0, "baseline": 0.1}),
    ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], {"patience": 1, "start_from_epoch": 3}),
    ([1.0, 0.95, 0.92, 0.91, 0.9, 0.9, 0.9, 0.9], {"patience": 1, "min_delta": 0.02}),
    ([0.2, 0.5, 0.4, 0.6, 0.6, 0.6, 0.6, 0.6], {"patience": 2, "mode": "max"}),
]


@pytest.mark.parametrize("values, kwargs", SCRIPTS)
def test_early_stopping_decisions_match_keras(values, kwargs):
    x, y = data()
    fast, kmodel = twins()
    kwargs = {"mode": "min", **kwargs}
    fstop = fcb.EarlyStopping(monitor="score", **kwargs)
    kstop = keras.callbacks.EarlyStopping(monitor="score", **kwargs)
    hf = fast.fit(x, y, epochs=len(values), verbose=0,
                  callbacks=[scripted(fcb, values), fstop])
    hk = kmodel.fit(x, y, epochs=len(values), verbose=0,
                    callbacks=[scripted(keras.callbacks, values), kstop])
    assert hf.epoch == hk.epoch
    assert fstop.stopped_epoch == kstop.stopped_epoch and fstop.wait == kstop.wait
    assert fstop.best == pytest.approx(float(to_numpy(kstop.best)))


@pytest.mark.parametrize("values, kwargs", [
    ([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5], dict(factor=0.5, patience=2, cooldown=1)),
    ([1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8], dict(factor=0.1, patience=1, min_lr=0.002)),
])
def test_reduce_lr_on_plateau_matches_keras(values, kwargs):
    x, y = data()
    fast, kmodel = twins()
    hf = fast.fit(x, y, epochs=len(values), verbose=0, callbacks=[
        scripted(fcb, values), fcb.ReduceLROnPlateau("score", mode="min", **kwargs)])
    hk = kmodel.fit(x, y, epochs=len(values), verbose=0, callbacks=[
        scripted(keras.callbacks, values),
        keras.callbacks.ReduceLROnPlateau("score", mode="min", **kwargs)])
    np.testing.assert_allclose(hf.history["learning_rate"],
                               [float(to_numpy(v)) for v in hk.history["learning_rate"]],
                               rtol=1e-6)


def test_learning_rate_scheduler_matches_keras():
    x, y = data()
    fast, kmodel = twins()

    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * 0.5

    hf = fast.fit(x, y, epochs=5, verbose=0,
                  callbacks=[fcb.LearningRateScheduler(schedule)])
    hk = kmodel.fit(x, y, epochs=5, verbose=0,
                    callbacks=[keras.callbacks.LearningRateScheduler(schedule)])
    np.testing.assert_allclose(hf.history["learning_rate"],
                               [float(to_numpy(v)) for v in hk.history["learning_rate"]],
                               rtol=1e-6)


@pytest.mark.parametrize("monitor, raises", [("val_acc", True), ("score", True),
                                             ("val_accuracy", False), ("val_loss", False),
                                             ("loss", False)])
def test_auto_mode_resolution_matches_keras(monitor, raises):
    x, y = data()
    fast, kmodel = twins(["accuracy"])
    outcomes = []
    for model, module in ((fast, fcb), (kmodel, keras.callbacks)):
        try:
            model.fit(x, y, epochs=1, verbose=0, validation_split=0.25,
                      callbacks=[scripted(module, [1.0]),
                                 module.EarlyStopping(monitor=monitor)])
            outcomes.append(False)
        except ValueError:
            outcomes.append(True)
    assert outcomes == [raises, raises]


def test_symbolic_shapes_match_keras():
    fast, kmodel = twins()
    assert fast.inputs[0].shape == tuple(kmodel.inputs[0].shape)
    assert fast.input_shape == tuple(kmodel.input_shape)
    assert fast.output_shape == tuple(kmodel.output_shape)
    for f, k in zip(fast.layers, kmodel.layers, strict=True):
        assert f.output.shape == tuple(k.output.shape)
        assert f.input.shape == tuple(k.input.shape)
        assert [w.shape for w in f.get_weights()] == [w.shape for w in k.get_weights()]
        assert f.count_params() == k.count_params()
    assert fast.count_params() == kmodel.count_params()


def test_normalization_broadcast_and_axis_none_match_keras():
    x = np.random.default_rng(1).standard_normal((20, 3)).astype(np.float32) * 4 + 1
    got = fl.Normalization(axis=-1, mean=3.0, variance=2.0)(x)
    want = to_numpy(keras.layers.Normalization(axis=-1, mean=3.0, variance=2.0)(x))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    fast, ker = fl.Normalization(axis=None), keras.layers.Normalization(axis=None)
    fast.adapt(x)
    ker.adapt(x)
    np.testing.assert_allclose(fast(x), to_numpy(ker(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.get_weights()[0], to_numpy(ker.get_weights()[0]),
                               rtol=1e-6)


def test_to_categorical_matches_keras():
    for labels, k in (([0, 2, 1, 2], None), (np.array([[1], [0]]), 4),
                      (np.array([[1, 2], [0, 1]]), None)):
        got = to_categorical(labels, k)
        want = keras.utils.to_categorical(labels, k)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
