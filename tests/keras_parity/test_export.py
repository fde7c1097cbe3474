"""Keras parity of ``model.export(path, format="onnx")``: the same signature, and files that
onnxruntime serves with the same outputs, dynamic batch axis and one input / one output."""
import inspect
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fastnn import Sequential  # noqa: E402
from fastnn.layers import Dense, Dropout  # noqa: E402


def test_export_signature_is_keras():
    ours = inspect.signature(Sequential.export).parameters
    theirs = inspect.signature(keras.Model.export).parameters
    assert list(ours) == list(theirs)
    assert all(ours[k].default == theirs[k].default for k in ours)


def test_onnx_files_serve_the_same_outputs(tmp_path):
    rng = np.random.default_rng(0)
    acts = ["relu", "tanh", "sigmoid", "swish", "softmax"]
    ours = Sequential([Dense(6, activation=a) for a in acts[:2]] + [Dropout(0.5)]
                      + [Dense(6, activation=a) for a in acts[2:]])
    ours.build(5)
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs = keras.Sequential([keras.Input((5,))]
                              + [keras.layers.Dense(6, activation=a) for a in acts[:2]]
                              + [keras.layers.Dropout(0.5)]
                              + [keras.layers.Dense(6, activation=a) for a in acts[2:]])
    theirs.set_weights(weights)
    x = rng.standard_normal((37, 5)).astype(np.float32)
    theirs.predict(x, verbose=0)  # Keras exports only a model that has been called

    ours.export(tmp_path / "ours.onnx", format="onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's tracer warns about Python ints in shapes
        theirs.export(str(tmp_path / "theirs.onnx"), format="onnx", verbose=False)

    outputs = []
    for name in ("ours", "theirs"):
        session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"),
                                       providers=["CPUExecutionProvider"])
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        assert isinstance(inp.shape[0], str) and inp.shape[1] == 5  # dynamic batch
        assert out.shape[1] == 6
        outputs.append([session.run(None, {inp.name: x[:n]})[0] for n in (1, 37)])
    for got, want in zip(*outputs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
