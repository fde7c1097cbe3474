"""Keras parity group: fastnn against Keras 3 on its torch backend.

The whole group skips where Keras is not importable. In CI, `keras` and the CPU wheel
`torch==2.13.0` are installed, and the backend is torch. Keras reads KERAS_BACKEND once, at
import, so the default has to be set before anything imports it.

Each test module opens with `pytest.importorskip("keras")`. A module-level importorskip in
this conftest would skip the group under a plain `pytest`, but it crashes pytest (an
INTERNALERROR traceback, exit 1) when the folder is named on the command line, because the
conftest is then loaded before collection starts.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest  # noqa: E402

try:
    import keras
    import torch
except ImportError:  # the test modules skip themselves
    keras = torch = None
else:
    # Tiny models: one torch thread is faster and leaves the other core to the rest of CI.
    torch.set_num_threads(1)

# Keras 3.15 turns torch tensors into arrays with np.array(tensor); torch's __array__ lacks
# NumPy 2's `copy` keyword, so NumPy warns on every predict/evaluate/History value. That is
# between Keras and torch, not fastnn, and the project's filterwarnings=error would fail on it.
KERAS_NUMPY_WARNING = (
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

REPORT_PATH = os.environ.get("FASTNN_KERAS_PARITY_REPORT", "/tmp/fastnn_keras_parity.json")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.filterwarnings(KERAS_NUMPY_WARNING))


@pytest.fixture(autouse=True)
def _keras_float32_between_tests():
    """Every test starts and ends with Keras in its default float32 mode."""
    if keras is not None:
        keras.config.set_floatx("float32")
    yield
    if keras is not None:
        keras.config.set_floatx("float32")


def pytest_terminal_summary(terminalreporter):
    """Print the worst relative error per group and dtype, and write them to a JSON file."""
    kparity = sys.modules.get("_kparity")
    worst = getattr(kparity, "WORST", None)
    if not worst:
        return
    tr = terminalreporter
    tr.section("fastnn vs Keras: worst relative errors")
    tr.write_line(f"{'group':<28}{'dtype':<9}{'weights':>11}{'history':>11}{'outputs':>11}")
    rows = {}
    for (group, dtype, kind), err in sorted(worst.items()):
        rows.setdefault((group, dtype), {})[kind] = err
    for (group, dtype), errs in sorted(rows.items()):
        cells = "".join(
            f"{errs[k]:>11.2e}" if k in errs else f"{'-':>11}"
            for k in ("weights", "history", "outputs")
        )
        tr.write_line(f"{group:<28}{dtype:<9}{cells}")
    payload = [
        {"group": g, "dtype": d, **errs} for (g, d), errs in sorted(rows.items())
    ]
    try:
        with open(REPORT_PATH, "w") as fh:
            json.dump(payload, fh, indent=1)
        tr.write_line(f"(written to {REPORT_PATH})")
    except OSError as exc:  # a read-only /tmp must not fail the run
        tr.write_line(f"(could not write {REPORT_PATH}: {exc})")
