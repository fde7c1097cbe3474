"""Layers that know their shapes: compute_output_shape, models built from an input shape,
inputs validated against it, Flatten/Reshape, and files of the dense-only format."""
import pathlib

import numpy as np
import pytest

import fastnn
from fastnn import Input, Sequential, load_model
from fastnn.layers import Activation, Dense, Dropout, Flatten, Normalization, Reshape, Softmax

DATA = pathlib.Path(__file__).parent / "data"


def test_compute_output_shape_of_each_layer():
    assert Dense(7).compute_output_shape((5,)) == (7,)
    assert Dropout(0.5).compute_output_shape((4, 3)) == (4, 3)
    assert Activation("relu").compute_output_shape((4, 3, 2)) == (4, 3, 2)
    assert Flatten().compute_output_shape((8, 8, 3)) == (192,)
    assert Reshape((4, -1)).compute_output_shape((8, 2)) == (4, 4)
    assert Reshape((2, 8)).compute_output_shape((16,)) == (2, 8)


@pytest.mark.parametrize("layer", [Dense(3), Normalization(), Softmax()])
def test_per_feature_layers_refuse_unflattened_inputs(layer):
    with pytest.raises(ValueError, match="Flatten"):
        layer.compute_output_shape((8, 8, 1))


def test_reshape_refuses_a_mismatched_size():
    with pytest.raises(ValueError, match="target_shape"):
        Reshape((3, 3)).compute_output_shape((8,))
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((3, -1)).compute_output_shape((8,))
    with pytest.raises(ValueError, match="target_shape"):
        Reshape((0, 2))


@pytest.mark.parametrize("declare", ["input", "input_shape", "build", "data"])
def test_model_built_from_an_image_shape(declare):
    x = np.random.default_rng(0).random((6, 8, 8, 1))
    if declare == "input":
        model = Sequential([Input(shape=(8, 8, 1)), Flatten(), Dense(4)])
    elif declare == "input_shape":
        model = Sequential([Flatten(input_shape=(8, 8, 1)), Dense(4)])
    else:
        model = Sequential([Flatten(), Dense(4)])
        if declare == "build":
            model.build((None, 8, 8, 1))
    out = model.predict(x)
    assert model.input_shape == (None, 8, 8, 1)
    assert model.output_shape == (None, 4)
    assert model.layers[0].output.shape == (None, 64)
    assert model.layers[1].input.shape == (None, 64)
    np.testing.assert_allclose(out, x.reshape(6, 64).astype(np.float32) @ model.layers[1].kernel
                               + model.layers[1].bias, rtol=1e-5, atol=1e-6)


def test_inputs_are_validated_against_the_full_shape():
    model = Sequential([Input(shape=(8, 8, 1)), Flatten(), Dense(2)])
    model.compile(loss="mse")
    before = model.get_weights()
    for bad in (np.zeros((3, 64)), np.zeros((3, 8, 8)), np.zeros((3, 8, 8, 2))):
        for call in (model.predict, model, lambda a: model.fit(a, np.zeros((3, 2)), verbose=0),
                     lambda a: model.evaluate(a, np.zeros((3, 2)))):
            with pytest.raises(ValueError, match=r"shape \(n_samples, 8, 8, 1\)"):
                call(bad)
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.full((2, 8, 8, 1), np.nan))
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_dense_layer_after_an_image_input_asks_for_flatten():
    model = Sequential([Dense(3)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="Flatten"):
        model.fit(np.zeros((4, 2, 2)), np.zeros((4, 3)), verbose=0)
    assert not model.built
    with pytest.raises(ValueError, match="Flatten"):
        Sequential([Input(shape=(2, 2)), Dense(3)])


def test_reshape_output_and_flatten_order_is_c_order():
    model = Sequential([Input(shape=(12,)), Reshape((3, 4)), Activation("linear")])
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    np.testing.assert_array_equal(model.predict(x), x.reshape(2, 3, 4))
    np.testing.assert_array_equal(Flatten()(x.reshape(2, 3, 4)), x)
    only_shapes = Sequential([Input(shape=(2, 6)), Flatten()])
    np.testing.assert_array_equal(only_shapes.predict(x.reshape(2, 2, 6)), x)


def test_summary_shows_keras_shapes():
    model = Sequential([Input(shape=(4, 4, 2)), Reshape((8, 4)), Flatten(), Dense(3)],
                       name="shapes")
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert "(None, 8, 4)" in text and "(None, 32)" in text and "(None, 3)" in text
    assert "Total params: 99" in text


def test_image_model_saves_and_loads(tmp_path):
    fastnn.set_random_seed(1)
    model = Sequential([Input(shape=(3, 4)), Flatten(), Dense(2, activation="relu")])
    model.compile(loss="mse")
    x = np.random.default_rng(1).random((5, 3, 4))
    model.fit(x, np.ones((5, 2)), verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = load_model(tmp_path / "m.fastnn")
    assert loaded.input_shape == (None, 3, 4)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_file_written_before_shapes_still_loads():
    # written by the release before shape-aware layers (dense-only format 1), with the
    # predictions it gave; the same model saved today writes the same bytes
    model = load_model(DATA / "format1_dense.fastnn")
    x = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
    assert model.input_shape == (None, 5)
    np.testing.assert_array_equal(model.predict(x[:6]), np.load(DATA / "format1_dense_pred.npy"))
    model.fit(x, (x[:, 0] > 0).astype(np.float32), epochs=1, verbose=0)


def test_onnx_export_of_an_image_model_takes_images(tmp_path):
    # image models export since the conv/pooling/flatten ONNX mappings (tests/test_onnx.py)
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = Sequential([Input(shape=(4, 4, 1)), Flatten(), Dense(2)])
    model.export(tmp_path / "m.onnx", format="onnx")
    x = np.random.default_rng(0).standard_normal((3, 4, 4, 1)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x),
                               rtol=1e-5, atol=1e-6)
