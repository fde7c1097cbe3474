"""fastnn's public API type-checks as course code uses it (issue 10: type hints, py.typed).

mypy checks a short course-style program against the annotations of the fastnn that this
process imports (the checkout, or an installed copy, found through its py.typed marker).
Errors inside fastnn itself are CI's ``mypy fastnn``; here they are silenced
(``--follow-imports=silent``), so that only the user's view of the API is judged.  The
program also runs, so the annotations describe what the calls really return.
"""
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn

pytest.importorskip("mypy")

COURSE = '''
import numpy as np

import fastnn
from fastnn import Input, Sequential
from fastnn.callbacks import EarlyStopping, History
from fastnn.layers import Dense, Dropout, Normalization
from fastnn.losses import SparseCategoricalCrossentropy
from fastnn.optimizers import Adam
from fastnn.optimizers.schedules import ExponentialDecay
from fastnn.regularizers import L2

PATH = "{path}"

fastnn.set_random_seed(0)
rng = np.random.default_rng(0)
X = rng.standard_normal((60, 4)).astype(np.float32)
y = rng.integers(0, 3, size=60)

norm = Normalization()
norm.adapt(X)
model = Sequential([
    Input(shape=(4,)),
    norm,
    Dense(25, activation="relu", kernel_regularizer=L2(0.01)),
    Dropout(0.1),
    Dense(3, activation="linear"),
], name="my_model")
schedule = ExponentialDecay(1e-2, decay_steps=10, decay_rate=0.9)
model.compile(optimizer=Adam(learning_rate=schedule),
              loss=SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(X, y, epochs=3, batch_size=16, validation_split=0.2,
                    callbacks=[EarlyStopping(monitor="val_loss", patience=2)], verbose=0)
losses: list[float] = history.history["loss"]
epochs: list[int] = history.epoch

loss, acc = model.evaluate(X, y, verbose=0)
print(f"loss {{loss:.3f}}, accuracy {{acc:.3f}}")
results = model.evaluate(X, y, return_dict=True)
accuracy: float = results["accuracy"]

logits = model.predict(X)
probs = fastnn.activations.softmax(logits).numpy()
yhat = np.argmax(probs, axis=1)
print((yhat == y).mean(), model(X[:1]).numpy().shape, model.predict_on_batch(X).shape)
W1, b1 = model.layers[1].get_weights()
n_params: int = model.count_params()
model.summary()
model.save(PATH)
restored = fastnn.load_model(PATH)
one_hot = fastnn.utils.to_categorical(y, num_classes=3)
fastnn.set_num_threads(fastnn.get_num_threads())

def check_history(h: History) -> float:
    return h.history["loss"][-1]

check_history(history)
reveal_type(history)
reveal_type(results)
reveal_type(logits)
reveal_type(restored)
reveal_type(one_hot)
'''

# the types course code relies on: mypy must see them as such, not as Any
REVEALED = {
    "history": r"fastnn\.callbacks\.History",
    "results": r"dict\[(builtins\.)?str, (builtins\.)?float\]",
    "logits": r"fastnn\._tensor\.Tensor",
    "restored": r"fastnn\.models\.Sequential",
    "one_hot": r"numpy\.ndarray\[.*numpy\.float64",
}


@pytest.fixture(scope="module")
def run_mypy(tmp_path_factory):
    cache = tmp_path_factory.mktemp("mypy_cache")
    config = tmp_path_factory.mktemp("mypy_config") / "mypy.ini"
    # a user's strict project; its own settings, not fastnn's pyproject.toml
    config.write_text("[mypy]\nstrict = True\nfollow_imports = silent\n"
                      "[mypy-scipy.*,sklearn.*,threadpoolctl]\nignore_missing_imports = True\n")
    # mypy must check against the fastnn this process imports: a checkout is found from
    # its root (the working directory), an installed copy through site-packages and its
    # py.typed marker
    root = Path(fastnn.__file__).resolve().parent.parent
    if root.name in ("site-packages", "dist-packages"):
        root = config.parent

    def run(source, tmp_path):
        program = tmp_path / "course.py"
        program.write_text(source)
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
             str(cache), "--no-error-summary", "--show-error-codes", str(program)],
            cwd=root, capture_output=True, text=True,
            env={**os.environ, "MYPYPATH": ""}, timeout=600)
        return proc, program
    return run


def test_course_program_type_checks_and_runs(run_mypy, tmp_path):
    source = COURSE.format(path=(tmp_path / "model.fastnn").as_posix())
    proc, program = run_mypy(source, tmp_path)
    lines = proc.stdout.splitlines()
    errors = [line for line in lines if ": error:" in line]
    assert not errors, "\n".join(lines) + proc.stderr
    revealed = {int(line.split(":")[1]): line for line in lines
                if ": note: Revealed type is" in line}
    for name, pattern in REVEALED.items():
        line = revealed.get(source.splitlines().index(f"reveal_type({name})") + 1, "")
        assert re.search(pattern, line), (name, line, proc.stdout)
    # and the program really runs (reveal_type exists only for the type checker), so the
    # annotations describe what the calls return
    program.write_text("\n".join(ln for ln in source.splitlines()
                                 if not ln.startswith("reveal_type(")))
    runpy.run_path(str(program), run_name="__main__")


def test_mistakes_are_reported(run_mypy, tmp_path):
    """The hints are precise enough to catch a typo'd argument type and a wrong use of a
    result (so that the first test could fail)."""
    source = ("import numpy as np\nfrom fastnn import Sequential, losses\n"
              "from fastnn.layers import Dense\n"
              "model = Sequential([Dense('25')])\n"
              "model.compile(loss=losses.MeanSquaredError)  # the class, not an instance\n"
              "history = model.fit(np.ones((4, 2)), np.ones(4), epochs='10')\n"
              "history.history.append(1)\n")
    proc, _ = run_mypy(source, tmp_path)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert [int(e.split(":")[1]) for e in errors] == [4, 5, 6, 7], proc.stdout

