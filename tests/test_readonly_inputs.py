"""Read-only inputs: memmaps and writeable=False arrays train, predict and evaluate, uncopied.

joblib hands every array over 1 MB to GridSearchCV workers as a read-only memmap, and
np.load(..., mmap_mode="r") gives one; the engine used to refuse them with Cython's
"buffer source array is read-only".  Contiguous float32 data must also reach the engine
without a copy (API.md, "Dtype").
"""
import numpy as np
import pytest

import fastnn
from fastnn import losses
from fastnn.callbacks import Callback
from fastnn.layers import Dense


class _BoundBuffers(Callback):
    """Records, at the first epoch's end, whether the engine reads the caller's arrays."""

    def __init__(self, x):
        super().__init__()
        self.x, self.shared = x, None

    def on_epoch_end(self, epoch, logs=None):
        if self.shared is None:
            bound = self.model._train_engine.bound
            self.shared = bound is not None and np.shares_memory(bound[0], self.x)


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


@pytest.fixture
def memmapped(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((257, 9)).astype(np.float32)
    y = rng.integers(0, 4, 257)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")


def _classifier(dtype="float32"):
    fastnn.set_random_seed(5)
    model = fastnn.Sequential([Dense(8, "relu"), Dense(4, "softmax")], dtype=dtype)
    model.compile(loss=losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return model


def test_fit_on_memmap_trains_without_a_copy(memmapped):
    x, y = memmapped
    assert not x.flags.writeable
    model, probe = _classifier(), _BoundBuffers(x)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[probe])
    assert probe.shared is True
    # the same fit from writable copies gives the same weights
    twin = _classifier()
    twin.fit(np.array(x), np.array(y), epochs=2, batch_size=32, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x), twin.predict(np.array(x)))
    assert model.evaluate(x, y) == twin.evaluate(np.array(x), np.array(y))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_writeable_false_arrays_everywhere(dtype):
    rng = np.random.default_rng(4)
    x = _read_only(rng.standard_normal((50, 5)).astype(dtype))
    y = _read_only(rng.standard_normal((50, 2)).astype(dtype))
    sw = _read_only(rng.uniform(0.5, 1.5, 50).astype(dtype))
    fastnn.set_random_seed(1)
    model = fastnn.Sequential([Dense(6, "tanh"), Dense(2)], dtype=dtype)
    model.compile(loss="mse")
    probe = _BoundBuffers(x)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, sample_weight=sw,
              validation_data=(x, y, sw), callbacks=[probe])
    assert probe.shared is True
    assert np.isfinite(model.evaluate(x, y, sample_weight=sw))
    assert model(x).shape == (50, 2)
