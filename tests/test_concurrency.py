"""Threads: inference and evaluation from many threads at once, and fit's exclusivity.

API.md ("concurrency"): any number of threads may call ``model(x)``, ``predict`` and
``evaluate`` at once and each gets exactly its single-threaded answer; a second ``fit``, or
a ``fit`` while an ``evaluate`` runs, raises RuntimeError.  Before the engine kept its
scratch memory per call, threads shared one workspace that the GIL-free forward pass
resized and overwrote: wrong numbers about once in 30 calls, or a segfault.
"""
import threading

import numpy as np
import pytest

import fastnn
from fastnn import losses
from fastnn.callbacks import Callback
from fastnn.layers import Dense

N_THREADS, CALLS = 4, 200


def _model(dtype):
    fastnn.set_random_seed(11)
    model = fastnn.Sequential([Dense(128, "relu", input_dim=64), Dense(96, "tanh"),
                               Dense(10, "softmax")], dtype=dtype)
    model.compile(loss=losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    return model


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 64)), rng.integers(0, 10, n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_get_their_single_threaded_answers(dtype):
    model = _model(dtype)
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    xs = {n: np.ascontiguousarray(x[:n], dtype=dtype) for n in range(1, 301)}
    # float64 rows into a float32 model take the cast path of the fast entry
    x64 = {n: x[:n].copy() for n in range(1, 301)}
    want_call = {n: model(xs[n]).copy() for n in xs}
    want_cast = {n: model(x64[n]).copy() for n in x64}
    want_eval = {n: model.evaluate(xs[n], y[:n]) for n in (1, 7, 50, 299)}
    failures, crashed = [], []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(CALLS):
                n = int(rng.integers(1, 301))
                kind = rng.integers(0, 4)
                if kind == 0:
                    got, want = model(xs[n]), want_call[n]
                elif kind == 1:
                    got, want = model.predict(xs[n]), want_call[n]
                elif kind == 2:
                    got, want = model(x64[n]), want_cast[n]
                else:
                    n = (1, 7, 50, 299)[n % 4]
                    got, want = np.asarray(model.evaluate(xs[n], y[:n])), np.asarray(want_eval[n])
                if not np.array_equal(got, want):
                    failures.append((seed, int(kind), n))
        except Exception as exc:  # pragma: no cover - reported below
            crashed.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert crashed == []
    assert failures == [], f"{len(failures)} of {N_THREADS * CALLS} calls differed"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_get_their_single_threaded_answers_from_wide_layers(dtype):
    # wide layers: each predict splits its products over fastnn's pool (packed B, row
    # blocks); a caller finding the pool busy with another thread's product runs its
    # own tasks alone, which must neither deadlock nor change a bit
    fastnn.set_random_seed(5)
    model = fastnn.Sequential([Dense(600, "relu", input_dim=450), Dense(530, "relu"),
                               Dense(7)], dtype=dtype)
    x = np.random.default_rng(1).standard_normal((1100, 450)).astype(dtype)
    sizes = (1, 17, 100, 257, 1100)
    want = {n: model.predict(x[:n]).copy() for n in sizes}
    failures, crashed = [], []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(12):
                n = sizes[int(rng.integers(0, len(sizes)))]
                if not np.array_equal(model.predict(x[:n]), want[n]):
                    failures.append((seed, n))
        except Exception as exc:  # pragma: no cover - reported below
            crashed.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a predict thread hung"
    assert crashed == []
    assert failures == []


class _Blocker(Callback):
    """Holds fit inside on_train_begin until released."""

    def __init__(self):
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def on_train_begin(self, logs=None):
        self.started.set()
        assert self.release.wait(30)


def _in_thread(fn):
    errors = []

    def run():
        try:
            fn()
        except Exception as exc:  # pragma: no cover - asserted by the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_second_concurrent_fit_raises():
    model = _model("float32")
    x, y = _data(64)
    blocker = _Blocker()
    thread, errors = _in_thread(lambda: model.fit(x, y, epochs=1, verbose=0,
                                                  callbacks=[blocker]))
    try:
        assert blocker.started.wait(30)
        before = model.get_weights()
        with pytest.raises(RuntimeError, match="fit"):
            model.fit(x, y, epochs=1, verbose=0)
        for a, b in zip(model.get_weights(), before, strict=True):
            np.testing.assert_array_equal(a, b)  # the refused fit changed nothing
    finally:
        blocker.release.set()
        thread.join()
    assert errors == []
    model.fit(x, y, epochs=1, verbose=0)  # the guard is released afterwards


def test_fit_during_evaluate_raises(monkeypatch):
    model = _model("float32")
    x, y = _data(64)
    model.fit(x, y, epochs=1, verbose=0)
    started, release = threading.Event(), threading.Event()
    inner = model._evaluate_arrays

    def slow_evaluate(*args, **kwargs):
        started.set()
        assert release.wait(30)
        return inner(*args, **kwargs)

    monkeypatch.setattr(model, "_evaluate_arrays", slow_evaluate)
    thread, errors = _in_thread(lambda: model.evaluate(x, y))
    try:
        assert started.wait(30)
        with pytest.raises(RuntimeError, match="evaluat"):
            model.fit(x, y, epochs=1, verbose=0)
    finally:
        release.set()
        thread.join()
    assert errors == []
    monkeypatch.undo()
    model.fit(x, y, epochs=1, verbose=0)


def test_evaluate_inside_a_fit_callback_is_allowed():
    # fit's own hooks may evaluate (Keras allows it); only fit-after-evaluate is refused
    model = _model("float32")
    x, y = _data(64)
    seen = []

    class EvalEachEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.evaluate(x, y))

    model.fit(x, y, epochs=2, verbose=0, callbacks=[EvalEachEpoch()])
    assert len(seen) == 2
