"""ONNX export: onnxruntime computes what model.predict computes, and the file is valid ONNX."""
import numpy as np
import pytest

import fastnn
from fastnn import Sequential, activations
from fastnn._kernels import ACTIVATIONS
from fastnn.layers import (
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPooling1D,
    MaxPooling2D,
    Normalization,
    Reshape,
)
from fastnn.losses import SparseCategoricalCrossentropy

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ACTS = ["linear", "relu", "sigmoid", "tanh", "leaky_relu", "swish", "softmax"]
BATCHES = [1, 37]
# float32: ORT's GEMM and transcendental functions differ from BLAS/fastnn's in rounding only
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    return out


def export(model, tmp_path, **kwargs):
    path = tmp_path / "model.onnx"
    model.export(path, format="onnx", **kwargs)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def randomize_biases(model, rng):
    # zero biases (the initial ones) would leave the bias input of Gemm/Conv untested
    weights = []
    for layer in model.layers:
        arrays = [w.copy() for w in layer.weights]
        if isinstance(layer, (Dense, Conv1D, Conv2D)) and layer.use_bias:
            arrays[1] = rng.standard_normal(arrays[1].shape)
        weights += arrays
    model.set_weights(weights)


def assert_matches_predict(model, path, x):
    got, want = run_onnx(path, x), model.predict(x)
    assert got.dtype == want.dtype == model.dtype
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[model.dtype.type])


class FakeActivationLayer(Layer):
    """A layer that reports the "activation" spec the activation layers use."""

    def __init__(self, activation, alpha=0.0):
        super().__init__()
        self.activation, self.alpha = activation, alpha

    def _spec(self, offset, aux_offset):
        return {"kind": "activation", "n_in": self.n_in, "n_out": self.n_in,
                "activation": ACTIVATIONS[self.activation], "alpha": self.alpha}


class MysteryLayer(Layer):
    def _spec(self, offset, aux_offset):
        return {"kind": "mystery", "n_in": self.n_in, "n_out": self.n_in}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_each_activation_matches_predict(tmp_path, dtype, activation, use_bias):
    rng = np.random.default_rng([ACTS.index(activation), use_bias])
    model = Sequential([Dense(11, activation=activation, use_bias=use_bias)], dtype=dtype)
    model.build(7)
    randomize_biases(model, rng)
    path = export(model, tmp_path)
    for n in BATCHES:
        assert_matches_predict(model, path, 2 * rng.standard_normal((n, 7)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
def test_random_models_of_every_layer_kind_match_predict(tmp_path, dtype, seed):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 20))
    x_fit = rng.standard_normal((50, n_in)) * rng.uniform(0.1, 10, n_in) + rng.normal(0, 3, n_in)
    norm = Normalization()
    norm.adapt(x_fit)
    layers = [norm]
    for act in rng.permutation(ACTS):
        layers.append(Dense(int(rng.integers(1, 24)), activation=str(act),
                            use_bias=bool(rng.integers(2))))
        if rng.integers(2):
            layers.append(Dropout(0.5))
    fastnn.set_random_seed(seed)
    model = Sequential(layers, dtype=dtype)
    model.build(n_in)
    randomize_biases(model, rng)
    path = export(model, tmp_path)
    for n in BATCHES:
        x = (rng.standard_normal((n, n_in)) * 5).astype(dtype)
        assert_matches_predict(model, path, x)


def test_normalization_with_a_constant_feature_uses_the_stored_std(tmp_path):
    # variance 0 -> std 1e-7 (Keras's epsilon), exactly as the model divides
    norm = Normalization(mean=[0.5, 2.0, 0.0], variance=[0.0, 4.0, 1e-20])
    model = Sequential([norm, Dense(2)])
    model.build(3)
    path = export(model, tmp_path)
    x = np.array([[0.5, 1.0, 0.0], [0.5000001, 3.0, 1e-12]], np.float32)
    assert_matches_predict(model, path, x)


def test_models_of_identities_only_export(tmp_path):
    model = Sequential([Dropout(0.3)])
    model.build(4)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(run_onnx(export(model, tmp_path), x), x)


@pytest.mark.parametrize("activation", ACTS)
def test_activation_layer_spec_exports(tmp_path, activation):
    dense = Dense(9, activation="linear")
    model = Sequential([dense, FakeActivationLayer(activation, alpha=0.3)])
    model.build(6)
    rng = np.random.default_rng(ACTS.index(activation))
    path = export(model, tmp_path)
    x = rng.standard_normal((37, 6)).astype(np.float32)
    z = dense(x)
    want = (activations.leaky_relu(z, 0.3) if activation == "leaky_relu"
            else getattr(activations, activation)(z))
    np.testing.assert_allclose(run_onnx(path, x), want, **TOL[np.float32])


@pytest.mark.skipif(not hasattr(fastnn.layers, "Activation"), reason="no activation layers yet")
def test_activation_layers_match_predict(tmp_path):
    from fastnn.layers import Activation, LeakyReLU, ReLU, Softmax

    model = Sequential([Dense(8), Activation("tanh"), Dense(8), LeakyReLU(), Dense(8), ReLU(),
                        Dense(8), Activation("swish"), Dense(5), Softmax()])
    model.build(4)
    path = export(model, tmp_path)
    rng = np.random.default_rng(0)
    for n in BATCHES:
        assert_matches_predict(model, path, rng.standard_normal((n, 4)).astype(np.float32))


def test_trained_digits_models_match_predict(tmp_path):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    fastnn.set_random_seed(0)
    multiclass = Sequential([Dense(25, activation="relu"), Dense(15, activation="relu"),
                             Dense(10, activation="linear")])
    regularized = Sequential([Dense(256, activation="relu"), Dropout(0.3),
                              Dense(256, activation="relu"), Dropout(0.3), Dense(10)])
    for model in (multiclass, regularized):
        model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=5, verbose=0)
        path = export(model, tmp_path)
        assert_matches_predict(model, path, x)
        assert_matches_predict(model, path, x[:1])
        assert (run_onnx(path, x).argmax(1) == model.predict(x).argmax(1)).all()


def test_export_metadata_and_opset(tmp_path):
    model = Sequential([Dense(3, activation="softmax")], name="digits")
    model.build(2)
    path = tmp_path / "m.onnx"
    model.export(str(path), format="onnx", opset_version=19)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 19
    assert proto.producer_name == "fastnn"
    assert proto.graph.name == "digits"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == 2


@pytest.mark.parametrize("kwargs, error", [
    (dict(format="tf_saved_model"), ValueError),
    (dict(format="litert"), ValueError),
    (dict(format="onnx", opset_version=12), ValueError),
    (dict(format="onnx", opset_version="17"), TypeError),
    (dict(format="onnx", dynamic=True), TypeError),
    (dict(format="onnx", input_signature=[(None, 2)]), ValueError),
])
def test_bad_arguments_raise_and_write_nothing(tmp_path, kwargs, error):
    model = Sequential([Dense(3)])
    model.build(2)
    path = tmp_path / "m.onnx"
    with pytest.raises(error):
        model.export(path, **kwargs)
    assert not path.exists()


def test_default_format_is_keras_and_unsupported(tmp_path):
    model = Sequential([Dense(3)])
    model.build(2)
    with pytest.raises(ValueError, match="format='onnx'"):
        model.export(tmp_path / "m")


def test_unbuilt_model_and_unknown_layer_kind_raise(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        Sequential([Dense(3)]).export(tmp_path / "m.onnx", format="onnx")
    model = Sequential([Dense(3), MysteryLayer()])
    model.build(2)
    with pytest.raises(ValueError, match="mystery"):
        model.export(tmp_path / "m.onnx", format="onnx")
    assert not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------------------- images
# (strides, padding) of the convolutions and poolings: every combination, so the
# asymmetric "same" pads and the unused tail of "valid" windows both occur
WINDOWS = [(1, "valid"), (1, "same"), (2, "valid"), (2, "same")]


def assert_image_model_matches(model, tmp_path, rng, scale=2.0):
    randomize_biases(model, rng)
    path = export(model, tmp_path)
    proto = onnx.load(str(path))
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]]
    assert tuple(dims) == model.input_shape[1:]
    dims = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim[1:]]
    assert tuple(dims) == model.output_shape[1:]
    for n in BATCHES:
        x = (scale * rng.standard_normal((n, *model.input_shape[1:]))).astype(model.dtype)
        assert_matches_predict(model, path, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("strides, padding", WINDOWS)
def test_conv2d_models_match_predict(tmp_path, dtype, activation, strides, padding):
    rng = np.random.default_rng([ACTS.index(activation), strides, len(padding)])
    model = Sequential([
        Conv2D(5, (3, 2), strides=strides, padding=padding, activation=activation,
               input_shape=(10, 7, 3)),
        MaxPooling2D((2, 3), strides=(strides, 1), padding=padding),
        Conv2D(4, 2, padding="same", activation="tanh", use_bias=False),
        Flatten(),
        Dense(6, activation=activation),
    ], dtype=dtype)
    assert_image_model_matches(model, tmp_path, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("strides, padding", WINDOWS)
def test_conv1d_models_match_predict(tmp_path, dtype, activation, strides, padding):
    rng = np.random.default_rng([ACTS.index(activation), strides, len(padding), 1])
    model = Sequential([
        Conv1D(6, 3, strides=strides, padding=padding, activation=activation,
               input_shape=(13, 2)),
        MaxPooling1D(3, strides=strides, padding=padding),
        Reshape((-1, 3)),       # (steps, 6) -> (2 * steps, 3): a new sequence
        Conv1D(4, 2, padding="same", activation="relu"),
        Flatten(),
        Dense(5, activation=activation),
    ], dtype=dtype)
    assert_image_model_matches(model, tmp_path, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_image_shaped_outputs_match_predict(tmp_path, dtype):
    # the graph's output keeps the model's output shape: (batch, h, w, f) and (batch, l, f)
    rng = np.random.default_rng(7)
    for layers in (
            [Conv2D(3, 3, padding="same", input_shape=(6, 5, 2)), MaxPooling2D(padding="same")],
            [Conv1D(4, 2, strides=2, input_shape=(9, 3)), MaxPooling1D(2, padding="same")],
            [Flatten(input_shape=(4, 3, 2)), Dense(12), Reshape((3, 2, 2)),
             Conv2D(2, (2, 1), activation="sigmoid")],
            [Reshape((6, 4), input_shape=(24,)), Conv1D(3, 3, activation="swish")]):
        model = Sequential(layers, dtype=dtype)
        assert_image_model_matches(model, tmp_path, rng)
    assert model.output_shape == (None, 4, 3)


def test_flatten_and_reshape_only_model_exports(tmp_path):
    model = Sequential([Flatten(input_shape=(2, 3, 4)), Reshape((4, 6))])
    x = np.arange(2 * 24, dtype=np.float32).reshape(2, 2, 3, 4)
    np.testing.assert_array_equal(run_onnx(export(model, tmp_path), x), model.predict(x))


def test_trained_digits_cnn_matches_predict(tmp_path):
    # the model of examples/digits_cnn.py, briefly trained
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    fastnn.set_random_seed(0)
    model = Sequential([
        fastnn.Input(shape=(8, 8, 1)),
        Conv2D(16, (3, 3), activation="relu", padding="same"),
        MaxPooling2D((2, 2)),
        Conv2D(32, (3, 3), activation="relu"),
        Flatten(),
        Dense(10),
    ])
    model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    path = export(model, tmp_path)
    assert_matches_predict(model, path, x)
    assert_matches_predict(model, path, x[:1])
    assert (run_onnx(path, x).argmax(1) == model.predict(x).argmax(1)).all()
