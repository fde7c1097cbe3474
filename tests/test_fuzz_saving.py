"""load_model against hostile files: only clean ValueErrors (issue 8, "fuzzing load_model").

The explicit cases are what the fuzzer (tools/fuzz_load_model.py) found in the first
version of fastnn/saving.py; the bounded campaign at the end runs a few thousand mutated
files through the fuzzer's worker child, so that a crash cannot take pytest down.
"""
import hashlib
import importlib.util
import json
import pathlib
import pickle
import struct
import tracemalloc

import pytest

import fastnn
from fastnn.layers import Dense
from fastnn.saving import MAGIC, from_bytes, to_bytes

TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "fuzz_load_model.py"


def file_with(header, payload=b""):
    """A correctly framed and signed file around any header bytes."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = MAGIC + struct.pack("<Q", len(text)) + text + payload
    return body + hashlib.sha256(body).digest()


def valid(built=True):
    fastnn.set_random_seed(0)
    model = fastnn.Sequential([Dense(3, activation="relu"), Dense(2)])
    if built:
        model.build(4)
    model.compile(optimizer="adam", loss="mse")
    data = to_bytes(model)
    (n,) = struct.unpack("<Q", data[8:16])
    return json.loads(data[16:16 + n]), data[16 + n:-32]


def load_within(data, limit):
    """from_bytes(data) must raise ValueError, allocating at most `limit` bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="not a valid fastnn model file"):
            from_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"{peak} bytes allocated for a {len(data)}-byte file"


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_header(depth):
    load_within(file_with(b"[" * depth + b"]" * depth), 64 * depth + (8 << 20))


@pytest.mark.parametrize("shape", [[2 ** 63], [2 ** 32, 2 ** 32], [2 ** 62, 4], [-1]])
def test_huge_or_wrapping_array_shapes(shape):
    header, payload = valid()
    header["arrays"][0]["shape"] = shape
    load_within(file_with(header, payload), 8 << 20)


@pytest.mark.parametrize("units, input_dim", [(2 ** 20, 2 ** 20), (2 ** 31, 3), (3, 2 ** 40)])
def test_huge_declared_layers_are_not_allocated(units, input_dim):
    header, payload = valid()
    header["layers"][0]["config"]["units"] = units
    header["input_dim"] = input_dim
    load_within(file_with(header, payload), 8 << 20)


def test_layer_input_dim_without_weights_is_not_built():
    header, payload = valid(built=False)
    header["layers"][0]["config"]["input_dim"] = 2 ** 30
    header["layers"][0]["config"]["units"] = 2 ** 30
    load_within(file_with(header, payload), 8 << 20)


@pytest.mark.parametrize("iterations", [2 ** 64, -1, True, 1.5])
def test_bad_iteration_counts(iterations):
    header, payload = valid()
    header["compile"]["iterations"] = iterations
    load_within(file_with(header, payload), 8 << 20)


class Boom:
    def __reduce__(self):
        return (pytest.fail, ("a pickle payload was executed",))


@pytest.mark.parametrize("where", ["bare", "header", "payload"])
def test_pickle_payloads_are_never_unpickled(where):
    evil = pickle.dumps(Boom())
    header, payload = valid()
    data = {"bare": evil, "header": file_with(evil),
            "payload": file_with(header, evil + payload)}[where]
    try:  # as weights the pickle's bytes are just numbers; as anything else, corrupt
        from_bytes(data)
    except ValueError as exc:
        assert str(exc).startswith("not a valid fastnn model file")


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_load_model", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not TOOL.exists(), reason="tools/ is not part of this checkout")
def test_bounded_fuzz_campaign():
    summary = _fuzzer().run(cases=2500, seed=20261130)
    print({k: v for k, v in summary.items() if k != "findings"})
    assert summary["findings"] == []
    assert set(summary["outcomes"]) <= {"ValueError", "model"}
    assert summary["outcomes"].get("ValueError", 0) > 1000  # the mutations do bite
