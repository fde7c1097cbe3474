"""fit validates its data once: per-batch callbacks must not make an epoch quadratic.

Before the engine had bind/set_order/train_batches, every per-batch engine call re-scanned
all labels and the whole row order (60k rows: 104 ms per epoch instead of 9 ms with a
no-op batch callback).  The engine counts its O(n) validation passes (``data_scans``), so
the test needs no timing: a fit of E epochs does 1 + E of them (labels once, one order
per epoch), whatever the number of batch calls.
"""
import numpy as np
import pytest

import fastnn
from fastnn import losses
from fastnn.callbacks import Callback
from fastnn.layers import Dense


class _EveryBatch(Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_batch_end(self, batch, logs=None):
        self.batches += 1


@pytest.mark.parametrize("sparse", [True, False], ids=["labels", "dense-targets"])
def test_per_batch_fit_scans_the_data_once_per_epoch(sparse):
    rng = np.random.default_rng(0)
    n, epochs = 60_000, 2
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = rng.integers(0, 3, n)
    fastnn.set_random_seed(0)
    model = fastnn.Sequential([Dense(3, input_dim=4)])
    if sparse:
        model.compile(optimizer="sgd",
                      loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        y = np.eye(3, dtype=np.float32)[y]
        model.compile(optimizer="sgd", loss="mse")
    counter = _EveryBatch()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[counter])
    assert counter.batches == epochs * (n // 32 + (n % 32 > 0))
    engine = model._train_engine
    assert engine.data_scans == (1 if sparse else 0) + epochs
    assert engine.bound is None      # fit drops its references to the data afterwards


def test_fit_leaves_the_engine_unbound_after_an_error():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((50, 1))
    model = fastnn.Sequential([Dense(1, input_dim=3)])
    model.compile(loss="mse")

    class Boom(Callback):
        def on_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Boom()])
    assert model._train_engine.bound is None
    model.fit(x, y, epochs=1, verbose=0)   # and the model trains on
