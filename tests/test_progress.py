"""fit's output (live bar on a terminal, one line per epoch otherwise) and Ctrl-C.

The bar is exercised in-process through a stream that claims to be a terminal, and
once under a real pseudo-terminal; Ctrl-C is a real SIGINT sent to a child process in
the middle of a long fit.  No timing is asserted beyond a generous bound.
"""
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn
from fastnn import Input, Sequential, _progbar, models
from fastnn.callbacks import Callback
from fastnn.layers import Dense
from fastnn.losses import SparseCategoricalCrossentropy


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def small(n=40):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)) + y[:, None]
    fastnn.set_random_seed(0)
    model = Sequential([Input(shape=(4,)), Dense(8, activation="relu"), Dense(3)])
    model.compile(loss=SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model, x, y


@pytest.mark.parametrize("verbose", [1, 2, "auto"])
def test_not_a_terminal_gives_one_line_per_epoch(capsys, verbose):
    model, x, y = small()
    model.fit(x, y, 16, 3, verbose)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "\r" not in out and len(lines) == 3
    assert lines[0].startswith("Epoch 1/3 - 3/3 - ") and "/step - loss: " in lines[0]
    assert "accuracy: " in lines[0]


def test_verbose_0_and_predict_evaluate_are_silent(capsys):
    model, x, y = small()
    model.fit(x, y, verbose=0)
    model.predict(x)
    model.evaluate(x, y)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=1)
    assert "2/2 - " in capsys.readouterr().out


def test_live_bar_redraws_in_place(monkeypatch):
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", term)
    monkeypatch.setattr(_progbar.Progbar, "interval", 0.0)   # redraw after every chunk
    monkeypatch.setattr(models, "_CHUNK_SECONDS", 0.0)       # one batch per engine call
    model, x, y = small()
    model.fit(x, y, 8, 2, 1, validation_split=0.2)
    out = term.getvalue()
    epochs = out.split("Epoch ")[1:]
    assert len(epochs) == 2 and epochs[0].startswith("1/2\n")
    frames = epochs[0].split("\n", 1)[1].split("\r")[1:]
    assert [f.split("/", 1)[0].strip() for f in frames] == ["1", "2", "3", "4"]
    assert "ETA" in frames[0] and "[=======>..." in frames[0] and "loss: " in frames[0]
    final = frames[-1].rstrip("\n")
    assert "[" + "=" * 30 + "]" in final and "ETA" not in final
    assert "val_loss: " in final and final.endswith(final.rstrip())
    assert out.endswith("\n")


def test_jupyter_output_counts_as_a_terminal():
    class OutStream(io.StringIO):      # ipykernel's stream: isatty() is False
        pass

    OutStream.__module__ = "ipykernel.iostream"
    assert _progbar.is_terminal(OutStream()) and not _progbar.is_terminal(io.StringIO())
    assert _progbar.is_terminal(FakeTerminal())


def test_live_bar_under_a_pseudo_terminal(run_python):
    pty = pytest.importorskip("pty")
    script = textwrap.dedent("""
        import numpy as np
        import fastnn
        from fastnn import Input, Sequential, _progbar, models
        from fastnn.layers import Dense
        _progbar.Progbar.interval = 0.0
        models._CHUNK_SECONDS = 0.0
        x = np.random.default_rng(0).standard_normal((64, 3))
        model = Sequential([Input(shape=(3,)), Dense(1)])
        model.compile(loss="mse")
        model.fit(x, x.sum(axis=1), 16, 2)
    """)
    leader, follower = pty.openpty()
    try:
        proc = run_python(["-c", script], stdout=follower, stderr=subprocess.PIPE,
                          capture_output=False, timeout=120)
        os.close(follower)
        follower = None
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:   # EIO once the child side is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    assert proc.returncode == 0, proc.stderr
    out = b"".join(chunks).decode()
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "\r1/4 [" in out and "\r4/4 [" + "=" * 30 + "]" in out


CHILD = """
import json, signal, sys
# the SIGINT a script started from a terminal has, whatever the test process passed on
# (an ignored or blocked signal is inherited across exec)
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
import numpy as np
import fastnn
from fastnn import Input, Sequential
from fastnn.callbacks import Callback
from fastnn.layers import Dense
from fastnn.optimizers import SGD

class Ready(Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            print("ready", flush=True)

rng = np.random.default_rng(0)
x = rng.standard_normal((20000, 32)).astype(np.float32)
y = rng.integers(0, 10, 20000)
def build():
    fastnn.set_random_seed(0)
    m = Sequential([Input(shape=(32,)), Dense(128, activation="relu"), Dense(10)])
    m.compile(optimizer=SGD(0.01), loss=fastnn.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    return m
model = build()
try:
    model.fit(x, y, 32, 10**6, 0, [Ready()], shuffle=False)
except KeyboardInterrupt:
    steps = model.optimizer.iterations
    weights = model.get_weights()
    # replay exactly that many steps on a fresh copy: the interrupted model holds the
    # weights of its last completed step, and iterations counts exactly those
    twin = build()
    nb = 625
    twin.fit(x, y, 32, steps // nb, 0, shuffle=False)
    for b in range(steps % nb):
        twin.train_on_batch(x[b * 32:(b + 1) * 32], y[b * 32:(b + 1) * 32])
    same = all(np.array_equal(a, b) for a, b in zip(weights, twin.get_weights()))
    model.fit(x[:64], y[:64], 32, 1, 0)          # still usable
    import signal
    print(json.dumps({"steps": int(steps), "same": bool(same),
                      "finite": bool(all(np.isfinite(w).all() for w in weights)),
                      "handler": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                      "pred": model.predict(x[:2]).shape[0]}), flush=True)
    sys.exit(3)
print("finished", flush=True)
"""


def test_ctrl_c_stops_fit_cleanly(run_python, tmp_path):
    import fastnn as package

    root = os.path.dirname(os.path.dirname(os.path.abspath(package.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=root, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)   # well inside a later epoch's engine calls
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, (out, err)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["steps"] >= 625 and result["same"] and result["finite"]
    assert result["handler"] and result["pred"] == 2


@pytest.fixture
def default_sigint():
    """SIGINT as a user's interpreter has it (Python's handler, not blocked) for the test,
    whatever earlier tests' libraries left behind; the state before is restored after."""
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    signal.signal(signal.SIGINT, handler)


def test_interrupt_from_a_callback_leaves_a_consistent_model(default_sigint):
    model, x, y = small()

    class CtrlC(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, 16, 10, 0, [CtrlC()])
    assert model.optimizer.iterations == 2 * 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert np.isfinite(model.predict(x)).all()
    model.fit(x, y, 16, 1, 0)
    assert model.optimizer.iterations == 3 * 3


def test_chunks_follow_the_measured_step_time():
    model, x, y = small(n=320)
    model.fit(x, y, 8, 1, 0)                       # first call measures one batch
    assert model._step_seconds is not None
    model._step_seconds = models._CHUNK_SECONDS / 3
    assert model._chunk_size(40) == 3
    model._step_seconds = 1e-7                     # tiny steps: the whole epoch at once
    assert model._chunk_size(40) == 40
    model._step_seconds = 10.0                     # slow steps: still at least one
    assert model._chunk_size(40) == 1
