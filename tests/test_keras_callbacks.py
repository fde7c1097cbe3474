"""Every Keras 3 hook is called when overridden; the built-in callbacks of issue 7;
fit/evaluate/predict/*_on_batch return conventions and the compile warnings."""
import csv
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import Input, Sequential
from fastnn.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from fastnn.layers import Dense
from fastnn.losses import BinaryCrossentropy, SparseCategoricalCrossentropy
from fastnn.optimizers import SGD
from fastnn.utils import set_random_seed, to_categorical


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)) + y[:, None]
    return x, y


def model3(metrics=("accuracy",), optimizer="adam"):
    fastnn.set_random_seed(0)
    model = Sequential([Input(shape=(4,)), Dense(8, activation="relu"), Dense(3)])
    model.compile(optimizer=optimizer, loss=SparseCategoricalCrossentropy(from_logits=True),
                  metrics=list(metrics) or None)
    return model


class Recorder(Callback):
    """Overrides every Keras 3 hook and records the calls."""

    def __init__(self):
        super().__init__()
        self.calls = []


HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
         "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
         "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
         "on_predict_batch_begin", "on_predict_batch_end"]


def _recording(hook):
    def method(self, *args):
        self.calls.append((hook, *[a for a in args if isinstance(a, int)]))
    return method


for _hook in HOOKS:
    setattr(Recorder, _hook, _recording(_hook))


def test_every_hook_is_called_in_keras_order():
    x, y = blobs(n=40)
    model, rec = model3(), Recorder()
    model.fit(x, y, 16, 2, 0, [rec], validation_data=(x[:20], y[:20]))
    calls = rec.calls
    assert calls[0] == ("on_train_begin",) and calls[-1] == ("on_train_end",)
    epoch0 = calls[1:calls.index(("on_epoch_end", 0)) + 1]
    assert epoch0 == [("on_epoch_begin", 0),
                      ("on_train_batch_begin", 0), ("on_train_batch_end", 0),
                      ("on_train_batch_begin", 1), ("on_train_batch_end", 1),
                      ("on_train_batch_begin", 2), ("on_train_batch_end", 2),
                      ("on_test_begin",),
                      ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
                      ("on_test_batch_begin", 1),
                      ("on_test_batch_end", 1), ("on_test_end",), ("on_epoch_end", 0)]
    assert rec.params == {"epochs": 2, "steps": 3, "verbose": 0}
    rec.calls.clear()
    model.evaluate(x, y, batch_size=32, callbacks=[rec])
    assert rec.calls == [("on_test_begin",), ("on_test_batch_begin", 0),
                         ("on_test_batch_end", 0), ("on_test_batch_begin", 1),
                         ("on_test_batch_end", 1), ("on_test_end",)]
    rec.calls.clear()
    out = model.predict(x, batch_size=32, callbacks=[rec])
    np.testing.assert_array_equal(out, model(x))
    assert rec.calls == [("on_predict_begin",), ("on_predict_batch_begin", 0),
                         ("on_predict_batch_end", 0), ("on_predict_batch_begin", 1),
                         ("on_predict_batch_end", 1), ("on_predict_end",)]


def test_batch_aliases_and_batch_logs_and_same_weights():
    seen = []

    class Alias(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, sorted(logs)))

    x, y = blobs()
    a, b = model3(), model3()
    a.fit(x, y, 16, 2, 0, [Alias()], shuffle=False)
    b.fit(x, y, 16, 2, 0, shuffle=False)
    assert [s[0] for s in seen] == [0, 1, 2, 3] * 2
    assert seen[0][1] == ["accuracy", "loss"]
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)      # batch by batch == chunks
    assert a.optimizer.iterations == b.optimizer.iterations == 8


def test_batch_by_batch_on_large_data_is_bit_identical_with_dropout():
    """Per-batch hooks hand the engine one batch's rows at a time (keeping an epoch linear);
    the weights must be exactly those of whole-epoch calls, dropout included."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((400, 4)), rng.integers(0, 3, 400)
    class PerBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    runs = []
    for hooks in ([], [PerBatch()]):
        fastnn.set_random_seed(5)
        model = Sequential([Input(shape=(4,)), Dense(16, activation="relu"),
                            fastnn.layers.Dropout(0.3), Dense(3)])
        model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, 8, 2, 0, hooks)
        runs.append(model.get_weights())
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_return_conventions_match_keras():
    x, y = blobs()
    model = model3()
    assert isinstance(model.evaluate(x, y), list) and len(model.evaluate(x, y)) == 2
    loss, acc = model.evaluate(x, y)
    assert model.evaluate(x, y, return_dict=True) == {"loss": loss, "accuracy": acc}
    plain = model3(metrics=())
    assert isinstance(plain.evaluate(x, y), float)
    assert isinstance(plain.train_on_batch(x, y), float)
    out = model.train_on_batch(x[:8], y[:8])
    assert isinstance(out, list) and len(out) == 2
    assert set(model.test_on_batch(x, y, return_dict=True)) == {"loss", "accuracy"}
    assert model.test_on_batch(x, y) == model.evaluate(x, y)
    assert model.optimizer.iterations == 1
    assert model.predict_on_batch(x).shape == (60, 3)
    # positional Keras order: batch_size then epochs
    history = model3().fit(x, y, 60, 3, 0)
    assert len(history.epoch) == 3 and model3().fit(x, y, 60, 3, 0).params["steps"] == 1


def test_initial_epoch_validation_freq_steps():
    x, y = blobs()
    model = model3()
    h = model.fit(x, y, epochs=5, initial_epoch=2, verbose=0, validation_split=0.25,
                  validation_freq=2)
    assert h.epoch == [2, 3, 4]
    assert len(h.history["loss"]) == 3 and len(h.history["val_loss"]) == 1
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(x, y, steps_per_epoch=2, verbose=0)
    full = model.evaluate(x[:32], y[:32], return_dict=True)
    assert model.evaluate(x, y, batch_size=16, steps=2, return_dict=True) == full
    assert model.predict(x, batch_size=16, steps=1).shape == (16, 3)


def test_unknown_monitor_in_auto_mode_raises_at_the_first_epoch_end():
    x, y = blobs()
    for monitor in ("val_acc", "whatever"):      # Keras 3 raises for both
        with pytest.raises(ValueError, match="maximized or minimized"):
            model3().fit(x, y, epochs=2, verbose=0, validation_split=0.2,
                         callbacks=[EarlyStopping(monitor=monitor)])
    for monitor in ("val_loss", "val_accuracy", "accuracy", "loss"):
        model3().fit(x, y, epochs=1, verbose=0, validation_split=0.2,
                     callbacks=[EarlyStopping(monitor=monitor)])
    with pytest.warns(UserWarning, match="`val_acc` which is not available"):
        model3().fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping("val_acc", mode="max")])


def test_early_stopping_baseline_and_start_from_epoch():
    x, y = blobs()

    class Flat(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = 1.0

    # Keras 3: the first value is the best so far, but only beating the baseline resets
    # the patience counter
    stop = EarlyStopping(monitor="score", mode="min", patience=1, baseline=0.5)
    h = model3().fit(x, y, epochs=10, verbose=0, callbacks=[Flat(), stop])
    assert h.epoch == [0, 1] and stop.stopped_epoch == 1
    stop = EarlyStopping(monitor="score", mode="min", patience=1, baseline=2.0)
    assert len(model3().fit(x, y, epochs=10, verbose=0, callbacks=[Flat(), stop]).epoch) == 2
    stop = EarlyStopping(monitor="score", mode="min", patience=1, start_from_epoch=4)
    h = model3().fit(x, y, epochs=10, verbose=0, callbacks=[Flat(), stop])
    assert h.epoch[-1] == 5


def test_model_checkpoint(tmp_path):
    x, y = blobs()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.fastnn")
    model3().fit(x, y, epochs=3, verbose=0, validation_split=0.2,
                 callbacks=[ModelCheckpoint(pattern)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0].startswith("ckpt-01-") and names[2].startswith("ckpt-03")
    best = tmp_path / "best.fastnn"
    model = model3()
    values = iter([3.0, 1.0, 2.0])

    class Script(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(values)

    saved = []

    class Spy(Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved.append(best.exists() and best.stat().st_mtime_ns)

    model.fit(x, y, epochs=3, verbose=0, callbacks=[
        Script(), ModelCheckpoint(best, monitor="score", mode="min", save_best_only=True,
                                  save_weights_only=True), Spy()])
    loaded = model3()
    loaded.load_weights(best)
    assert saved[0] and saved[1] != saved[0] and saved[2] == saved[1]
    values = iter([1.0])
    with pytest.raises(ValueError, match="maximized or minimized"):
        model3().fit(x, y, epochs=1, verbose=0, callbacks=[
            Script(), ModelCheckpoint(best, monitor="score", save_best_only=True)])
    per_batch = tmp_path / "b{batch}.fastnn"
    model3().fit(x, y, 32, 1, 0, callbacks=[ModelCheckpoint(str(per_batch), save_freq=1)])
    assert (tmp_path / "b1.fastnn").exists() and (tmp_path / "b2.fastnn").exists()


def test_learning_rate_scheduler_sets_the_rate_per_epoch():
    x, y = blobs()
    model = model3(optimizer=SGD(0.1))
    seen = []

    class Spy(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.model.optimizer.learning_rate)

    h = model.fit(x, y, epochs=3, verbose=0,
                  callbacks=[LearningRateScheduler(lambda epoch, lr: lr / 2), Spy()])
    assert seen == [0.05, 0.025, 0.0125] and h.history["learning_rate"] == seen
    # the rate really changed the steps: lr 0 leaves the weights alone
    frozen = model3(optimizer=SGD(0.1))
    before = frozen.get_weights()
    frozen.fit(x, y, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda e: 0.0)])
    for a, b in zip(frozen.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_reduce_lr_on_plateau():
    x, y = blobs()
    model = model3(optimizer=SGD(0.1))
    values = iter([1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5])

    class Script(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(values)

    h = model.fit(x, y, epochs=7, verbose=0, callbacks=[
        Script(), ReduceLROnPlateau("score", factor=0.5, patience=2, mode="min", cooldown=1,
                                    min_lr=0.02)])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    assert model.optimizer.learning_rate == pytest.approx(0.025)
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


def test_csv_logger(tmp_path):
    x, y = blobs()
    path = tmp_path / "log.csv"
    model3().fit(x, y, epochs=2, verbose=0, callbacks=[CSVLogger(path)])
    model3().fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path, append=True)])
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "0"] and rows[1][3] == "NA"
    model3().fit(x, y, epochs=1, verbose=0, validation_split=0.2,
                 callbacks=[CSVLogger(path, separator=";")])
    assert path.read_text().splitlines()[0] == "epoch;accuracy;loss;val_accuracy;val_loss"


def test_compile_warns_about_logits_mismatch():
    sig = Sequential([Input(shape=(2,)), Dense(1, activation="sigmoid")])
    with pytest.warns(UserWarning, match="from_logits=True.*sigmoid"):
        sig.compile(loss=BinaryCrossentropy(from_logits=True))
    soft = Sequential([Input(shape=(2,)), Dense(3, activation="softmax")])
    with pytest.warns(UserWarning, match="softmax"):
        soft.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
    lin = Sequential([Input(shape=(2,)), Dense(3)])
    with pytest.warns(UserWarning, match="from_logits=False.*linear"):
        lin.compile(loss="sparse_categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lin.compile(loss="mse")
        sig.compile(loss="binary_crossentropy")
        lin.compile(loss=SparseCategoricalCrossentropy(from_logits=True))


def test_utils():
    np.testing.assert_array_equal(to_categorical([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    assert to_categorical(np.array([[1], [2]])).shape == (2, 3)
    assert to_categorical([1, 0]).dtype == np.float64          # as Keras
    for bad in ([-1], [0.5]):
        with pytest.raises(ValueError):
            to_categorical(bad)
    with pytest.raises(ValueError):
        to_categorical([3], num_classes=2)
    assert set_random_seed is fastnn.set_random_seed
