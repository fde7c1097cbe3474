"""save / load_model and pickle: exact round trips, and refusal of damaged files."""
import os
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, load_model
from fastnn.layers import Dense, Dropout, Normalization
from fastnn.losses import SparseCategoricalCrossentropy
from fastnn.optimizers import SGD, Adam, AdamW, RMSprop, schedules
from fastnn.regularizers import L2


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5)) * 3 + 1
    return x, (x[:, 0] > 1).astype(int) + (x[:, 1] > 1).astype(int)


def trained(dtype="float32", optimizer=None):
    x, y = data()
    fastnn.set_random_seed(0)
    norm = Normalization()
    norm.adapt(x)
    model = Sequential([norm, Dense(8, activation="tanh", kernel_regularizer=L2(1e-3)),
                        Dropout(0.1), Dense(3)], dtype=dtype, name="saved")
    model.compile(optimizer=optimizer or Adam(0.01, beta_1=0.8),
                  loss=SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [
    None, lambda: SGD(0.1, momentum=0.9, nesterov=True), lambda: SGD(0.1),
    lambda: RMSprop(0.01, momentum=0.5, centered=True, clipnorm=0.5),
    lambda: AdamW(schedules.ExponentialDecay(0.01, 3, 0.5), weight_decay=0.1,
                  global_clipnorm=1.0),
    lambda: SGD(schedules.PiecewiseConstantDecay([4, 10], [0.1, 0.05, 0.01]), clipvalue=0.1),
    lambda: Adam(schedules.InverseTimeDecay(0.01, 2, 0.5, staircase=True)),
], ids=["adam", "nesterov", "sgd", "rmsprop", "adamw-exp", "sgd-piecewise", "adam-inverse"])
def test_load_predicts_identically_and_continues_training_exactly(tmp_path, dtype, optimizer):
    x, y = data()
    model = trained(dtype, optimizer and optimizer())
    path = tmp_path / "model.fastnn"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.name == "saved" and loaded.dtype == np.dtype(dtype)
    fastnn.set_random_seed(5)
    h1 = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    fastnn.set_random_seed(5)
    h2 = loaded.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_writes_exactly_the_given_path(tmp_path):
    path = tmp_path / "noext"
    trained().save(str(path))
    assert os.listdir(tmp_path) == ["noext"]


def test_uncompiled_and_unbuilt_models_round_trip(tmp_path):
    model = Sequential([Dense(4, activation="relu"), Dense(2)])
    model.save(tmp_path / "a")
    loaded = load_model(tmp_path / "a")
    assert not loaded.built and not loaded._compiled
    assert [type(layer) for layer in loaded.layers] == [Dense, Dense]
    assert loaded.layers[0].activation is fastnn.activations.relu


def test_pickle_round_trip():
    x, _ = data()
    model = trained()
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    assert clone.optimizer.beta_1 == 0.8


@pytest.mark.parametrize("damage", [
    lambda b: b[:-1],                                # truncated
    lambda b: b[:40],                                # truncated in the header
    lambda b: b"PK\x03\x04" + b[4:],                 # foreign magic
    lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:],  # one flipped bit
    lambda b: b[:-40] + bytes(8) + b[-32:],          # tampered weights
    lambda b: b"",
])
def test_damaged_files_raise_value_error(tmp_path, damage):
    path = tmp_path / "m"
    trained().save(path)
    good = path.read_bytes()
    path.write_bytes(damage(good))
    with pytest.raises(ValueError, match="not a valid fastnn model file"):
        load_model(path)


def test_a_consistent_but_malicious_header_is_rejected(tmp_path):
    import hashlib
    import json
    import struct

    from fastnn.saving import MAGIC
    header = json.dumps({"format": 1, "layers": [{"class": "os.system", "config": {}}],
                         "dtype": "float32", "arrays": []}).encode()
    body = MAGIC + struct.pack("<Q", len(header)) + header
    (tmp_path / "m").write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(ValueError, match="unknown layer class"):
        load_model(tmp_path / "m")


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m"
    model = trained()
    model.save(path)
    before = path.read_bytes()

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m"]


def test_callable_learning_rate_cannot_be_saved(tmp_path):
    model = Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer=SGD(learning_rate=lambda step: 0.1), loss="mse")
    with pytest.raises(ValueError, match="callable learning_rate"):
        model.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()
