"""Callbacks: hooks, stop_training, EarlyStopping (Keras 3 rules) and TerminateOnNaN."""
import numpy as np
import pytest

import fastnn
from fastnn import Sequential
from fastnn.callbacks import Callback, EarlyStopping, TerminateOnNaN
from fastnn.layers import Dense
from fastnn.optimizers import SGD


def regression(n=64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3))
    return x, x @ np.array([1.0, -1.0, 2.0])


class Scripted(Callback):
    """Replaces the monitored value with a scripted sequence, to test the stopping rules."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs["scripted"] = self.values[epoch]


def fit_with(values, **early):
    fastnn.set_random_seed(0)
    x, y = regression()
    model = Sequential([Dense(1)])
    model.compile(optimizer=SGD(0.01), loss="mse")
    stop = EarlyStopping(monitor="scripted", **{"mode": "min", **early})
    history = model.fit(x, y, epochs=len(values), callbacks=[Scripted(values), stop],
                        verbose=0)
    return model, stop, history


def test_hooks_are_called_in_order():
    calls = []

    class Spy(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    x, y = regression()
    model = Sequential([Dense(1)])
    model.compile(loss="mse", metrics=["mae"])
    spy = Spy()
    model.fit(x, y, epochs=2, validation_split=0.25, callbacks=[spy], verbose=0)
    assert spy.model is model
    assert calls == ["train_begin", "epoch_begin 0", "epoch_end 0 ['loss', 'mae', 'val_loss', "
                     "'val_mae']", "epoch_begin 1", "epoch_end 1 ['loss', 'mae', 'val_loss', "
                     "'val_mae']", "train_end"]


def test_stop_training_stops_after_the_epoch():
    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.stop_training = True

    x, y = regression()
    model = Sequential([Dense(1)])
    model.compile(loss="mse")
    assert model.fit(x, y, epochs=10, callbacks=[StopAt()], verbose=0).epoch == [0, 1, 2]


@pytest.mark.parametrize("values, patience, stopped, epochs_run", [
    ([5, 4, 3, 2, 1], 0, 0, 5),            # always improving: never stops
    ([5, 6, 7, 8, 9], 0, 1, 2),            # patience 0 stops at the first non-improvement
    ([5, 6, 4, 7, 8, 9], 2, 4, 5),         # waits two epochs after the best (epoch 2)
    ([5, 5, 5, 5], 1, 1, 2),               # equal is not an improvement (min_delta 0)
])
def test_early_stopping_epoch(values, patience, stopped, epochs_run):
    _, stop, history = fit_with(values, patience=patience)
    assert stop.stopped_epoch == stopped
    assert len(history.epoch) == epochs_run


def test_min_delta_and_max_mode():
    _, stop, history = fit_with([1.0, 1.05, 1.2, 1.25, 1.28, 1.0], mode="max", min_delta=0.1,
                                patience=2)
    # 1.05, 1.25 and 1.28 are not 0.1 better than the best so far: stop at the second of them
    assert stop.best == 1.2 and stop.best_epoch == 2
    assert stop.stopped_epoch == 4 and len(history.epoch) == 5


def test_nan_is_never_an_improvement():
    _, stop, _ = fit_with([3.0, float("nan"), 2.0, float("nan")], patience=5)
    assert stop.best == 2.0 and stop.best_epoch == 2


def test_restore_best_weights_even_without_stopping():
    snapshots = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    fastnn.set_random_seed(0)
    x, y = regression()
    model = Sequential([Dense(1)])
    model.compile(optimizer=SGD(0.01), loss="mse")
    values = [5, 3, 4, 4.5]
    model.fit(x, y, epochs=4, verbose=0,
              callbacks=[Keep(), Scripted(values),
                         EarlyStopping(monitor="scripted", patience=10, mode="min",
                                       restore_best_weights=True)])
    for a, b in zip(model.get_weights(), snapshots[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_monitor_warns_like_keras():
    x, y = regression()
    model = Sequential([Dense(1)])
    model.compile(loss="mse")
    with pytest.warns(UserWarning, match="`val_loss` which is not available"):
        model.fit(x, y, epochs=1, callbacks=[EarlyStopping()], verbose=0)


def test_early_stopping_on_val_loss_stops_an_overfitting_run():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 20))
    y = rng.standard_normal(40)  # pure noise: validation loss must turn up
    fastnn.set_random_seed(0)
    model = Sequential([Dense(64, activation="relu"), Dense(1)])
    model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss="mse")
    stop = EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(x, y, epochs=300, validation_split=0.3, callbacks=[stop], verbose=0)
    assert len(history.epoch) < 300
    assert model.evaluate(x[28:], y[28:]) == pytest.approx(min(history.history["val_loss"]),
                                                          rel=1e-5)


def test_terminate_on_nan():
    x, y = regression()
    model = Sequential([Dense(1)])
    model.compile(optimizer=SGD(1e6), loss="mse")  # diverges to inf / NaN
    history = model.fit(x, y * 1e10, epochs=50, callbacks=[TerminateOnNaN()], verbose=0)
    assert len(history.epoch) < 50
    assert not np.isfinite(history.history["loss"][-1])
