"""Keras's layer and model surface: Input, input_shape, eager build, naming, weights,
ownership, get_layer, pop, summary(print_fn), symbolic shapes, Tensor results."""
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import Input, InputLayer, Sequential, activations
from fastnn.layers import Dense, Dropout, Normalization
from fastnn.layers import Input as LayersInput


def test_input_declares_the_shape_and_builds_at_once():
    assert LayersInput is Input
    model = Sequential([Input(shape=(4,)), Dense(3, activation="relu"), Dense(1)])
    assert model.built and model.count_params() == 4 * 3 + 3 + 3 + 1
    assert len(model.layers) == 2                     # the InputLayer is not listed (Keras)
    assert model.inputs[0].shape == (None, 4) and model.outputs[0].shape == (None, 1)
    assert model.input_shape == (None, 4) and model.output_shape == (None, 1)
    assert model.layers[0].input.shape == (None, 4)
    assert model.layers[0].output.shape == (None, 3)
    assert model.layers[1].output.shape == (None, 1)


@pytest.mark.parametrize("first", [
    lambda: Dense(3, input_shape=(4,)), lambda: Dense(3, input_dim=4),
    lambda: InputLayer(shape=(4,)), lambda: InputLayer(batch_shape=(None, 4)),
    lambda: Normalization(input_shape=(4,)), lambda: Dropout(0.1, input_shape=(4,)),
])
def test_every_way_to_declare_the_input(first):
    model = Sequential([first(), Dense(2)])
    assert model.built and model.input_shape == (None, 4)
    out = model(np.ones((5, 4)))
    assert out.shape == (5, 2)


def test_add_builds_eagerly_and_summary_before_fit(capsys):
    model = Sequential()
    model.add(Input(shape=(3,)))
    assert not model.layers
    model.add(Dense(2, name="hidden"))
    assert model.built and model.count_params() == 8
    lines = []
    assert model.summary(print_fn=lines.append) is None
    assert len(lines) == 1 and "hidden (Dense)" in lines[0] and "(None, 2)" in lines[0]
    assert "Total params: 8" in lines[0]
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="only be the first"):
        model.add(InputLayer(shape=(3,)))


def test_unbuilt_model_has_no_shapes():
    model = Sequential([Dense(2)])
    assert not model.built
    with pytest.raises(AttributeError):
        model.input_shape  # noqa: B018
    with pytest.raises(AttributeError, match="never been called"):
        model.layers[0].output  # noqa: B018
    with pytest.raises(ValueError, match="not built"):
        model.count_params()
    assert model.layers[0].weights == []


def test_keras_auto_naming_is_unique_per_class_prefix():
    a, b, c = Dense(1), Dense(1), Dropout(0.1)
    assert a.name.startswith("dense") and b.name.startswith("dense_") and a.name != b.name
    assert c.name.startswith("dropout")
    assert int(b.name.rsplit("_", 1)[1]) == (int(a.name.rsplit("_", 1)[1])
                                              if "_" in a.name else 0) + 1
    assert Dense(1, name="mine").name == "mine"
    assert Sequential().name.startswith("sequential")
    assert Sequential().name != Sequential().name


def test_get_layer_by_name_and_index():
    model = Sequential([Input(shape=(2,)), Dense(3, name="l1"), Dense(1, name="l2")])
    assert model.get_layer("l2") is model.layers[1]
    assert model.get_layer(index=0) is model.layers[0]
    assert model.get_layer(index=-1) is model.layers[1]
    with pytest.raises(ValueError, match="No such layer: nope"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="only a layer name or a layer index"):
        model.get_layer("l1", 0)
    with pytest.raises(ValueError, match="index 5"):
        model.get_layer(index=5)
    with pytest.raises(ValueError, match="either"):
        model.get_layer()


def test_layer_weights_api():
    model = Sequential([Input(shape=(3,)), Normalization(), Dense(2, name="d")])
    dense = model.get_layer("d")
    assert [w.shape for w in dense.weights] == [(3, 2), (2,)]
    assert [w.shape for w in dense.trainable_weights] == [(3, 2), (2,)]
    assert model.layers[0].trainable_weights == []
    assert [w.shape for w in model.layers[0].non_trainable_weights] == [(3,), (3,)]
    assert dense.count_params() == 8 and model.layers[0].count_params() == 6
    assert model.count_params() == 14
    assert [w.shape for w in model.weights] == [(3,), (3,), (3, 2), (2,)]
    assert [w.shape for w in model.trainable_weights] == [(3, 2), (2,)]
    w, b = np.arange(6.0).reshape(3, 2), np.array([1.0, -1.0])
    dense.set_weights([w, b])
    got = dense.get_weights()
    np.testing.assert_array_equal(got[0], w)
    got[0][...] = 0                                    # a copy: the model is untouched
    np.testing.assert_array_equal(dense.kernel, w)
    np.testing.assert_allclose(model(np.ones((1, 3))), [[6 + 1, 9 - 1]], rtol=1e-6)
    before = model.get_weights()
    for bad in ([w], [w, b, b], [w.T, b], [w, np.array([np.nan, 0.0])]):
        with pytest.raises(ValueError):
            dense.set_weights(bad)
    with pytest.raises(ValueError):
        model.set_weights([*before[:2], before[2], np.zeros(3)])
    for x, y in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_layer_belongs_to_one_model():
    """Issue 8 item 3: adding a layer that another model holds used to rebind its views
    to the second model's buffer, silently corrupting the first model."""
    first = Sequential([Input(shape=(3,)), Dense(2)])
    before = first.get_weights()
    x = np.ones((4, 3), np.float32)
    out = np.array(first(x))
    shared = first.layers[0]
    with pytest.raises(ValueError, match="already belongs to model"):
        Sequential([Input(shape=(3,)), shared])
    second = Sequential([Input(shape=(3,))])
    with pytest.raises(ValueError, match="cannot be shared"):
        second.add(shared)
    for a, b in zip(first.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first(x), out)
    assert not second.layers
    # after pop() the layer is free again, and a discarded model frees its layers
    first.pop()
    Sequential([Input(shape=(3,)), shared])
    with pytest.raises(ValueError, match="twice"):
        Sequential([Dense(1)] * 2)


def test_pop_rebuilds_and_keeps_the_other_weights():
    model = Sequential([Input(shape=(3,)), Dense(4), Dense(2)])
    w = model.layers[0].get_weights()
    assert model.pop() is None
    assert model.output_shape == (None, 4) and len(model.layers) == 1
    np.testing.assert_array_equal(model.layers[0].kernel, w[0])
    model.pop()
    with pytest.raises(TypeError, match="no layers"):
        model.pop()
    model.add(Dense(5))
    assert model.built and model.output_shape == (None, 5)


def test_standalone_layer_call_builds_from_x():
    layer = Dense(2, activation="relu")
    out = layer(np.ones((3, 4)))
    assert out.shape == (3, 2) and layer.built and layer.count_params() == 10
    assert isinstance(out, np.ndarray) and type(out.numpy()) is np.ndarray


def test_activation_attribute_is_the_function_and_configs_keep_the_name():
    layer = Dense(2, activation="sigmoid")
    assert layer.activation == activations.sigmoid
    assert Dense(2).activation is activations.linear
    assert Dense(2, activation=activations.relu).get_config()["activation"] == "relu"
    clone = Dense.from_config(layer.get_config())
    assert clone.activation is activations.sigmoid


def test_model_outputs_answer_numpy_and_stay_tensors():
    model = Sequential([Input(shape=(2,)), Dense(1, activation="sigmoid")])
    x = np.array([[0.0, 0.0], [5.0, 5.0]], np.float32)
    for p in (model(x), model.predict(x), model.predict_on_batch(x)):
        assert isinstance(p, np.ndarray)
        assert type(p.numpy()) is np.ndarray
        assert type((p >= 0.5).numpy()) is np.ndarray
        assert hasattr(p * 2 + 1, "numpy") and hasattr(p >= 0.5, "numpy")
        np.testing.assert_array_equal(p.numpy(), np.asarray(p))
    assert type(pickle.loads(pickle.dumps(model(x))).numpy()) is np.ndarray
    with pytest.raises(ValueError, match="training=True"):
        model(x, training=True)


@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid", "tanh", "leaky_relu", "swish",
                                  "softmax"])
def test_activations_keep_the_shape(name):
    fn = getattr(activations, name)
    scalar = fn(0.5)
    assert scalar.shape == () and type(scalar.numpy()) is np.ndarray
    out = np.zeros(3)
    out[1] = fn(np.float64(0.25))                       # the lab's a_out[j] = g(z)
    assert fn(np.ones((2, 3))).shape == (2, 3) and fn([1.0, 2.0]).shape == (2,)


def test_normalization_axis_and_broadcast_statistics():
    layer = Normalization(axis=-1, mean=3.0, variance=4.0)
    np.testing.assert_allclose(layer(np.full((2, 3), 5.0)), np.ones((2, 3)))
    assert [w.shape for w in layer.weights] == [(3,), (3,)]
    layer = Normalization(mean=[1.0], variance=[1.0])
    np.testing.assert_allclose(layer(np.full((1, 2), 2.0)), np.ones((1, 2)))
    data = np.array([[1.0, 10.0], [3.0, 30.0]])
    per_feature = Normalization(axis=-1)
    per_feature.adapt(data)
    np.testing.assert_allclose(per_feature.mean, [2.0, 20.0])
    scalar = Normalization(axis=None)
    scalar.adapt(data)
    mean, var = scalar.get_weights()
    assert mean.shape == () and mean == pytest.approx(data.mean())
    assert var == pytest.approx(data.var())
    np.testing.assert_allclose(scalar(data), (data - data.mean()) / data.std(), rtol=1e-6)
    for bad in (dict(axis=0), dict(axis=2), dict(mean=1.0), dict(mean=1.0, variance=-1.0),
                dict(axis=None, mean=[1.0, 2.0], variance=[1.0, 1.0])):
        with pytest.raises((ValueError, TypeError)):
            Normalization(**bad)


def test_dropout_rejects_unsupported_keras_arguments():
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, (1, 2))
    for bad, error in ((-1, ValueError), (2 ** 64, ValueError), (1.0, TypeError),
                       (True, TypeError), ("3", TypeError)):
        with pytest.raises(error, match="seed"):
            Dropout(0.5, seed=bad)


def _dropout_fit(layer_seed, global_seed, epochs=2, dtype="float64"):
    """Weights after fitting a net whose first Dropout has `layer_seed`, with the same
    initial weights and row order each time and a global stream that differs."""
    fastnn.set_random_seed(0)
    model = Sequential([Input(shape=(6,)), Dense(16, activation="relu"),
                        Dropout(0.5, seed=layer_seed), Dense(2)], dtype=dtype)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(1).standard_normal((40, 6))
    y = np.random.default_rng(2).standard_normal((40, 2))
    fastnn.set_random_seed(global_seed)    # only the fit's seed draws from it now
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_seed_fixes_the_masks_whatever_the_global_stream(dtype):
    a = _dropout_fit(11, global_seed=1, dtype=dtype).get_weights()
    b = _dropout_fit(11, global_seed=2, dtype=dtype).get_weights()
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    other = _dropout_fit(12, global_seed=1, dtype=dtype).get_weights()
    assert not all(np.array_equal(wa, wo) for wa, wo in zip(a, other, strict=True))
    # without a layer seed the global stream decides the masks
    c = _dropout_fit(None, global_seed=1, dtype=dtype).get_weights()
    d = _dropout_fit(None, global_seed=2, dtype=dtype).get_weights()
    assert not all(np.array_equal(wc, wd) for wc, wd in zip(c, d, strict=True))


def test_dropout_seed_is_saved(tmp_path):
    model = _dropout_fit(2 ** 64 - 1, global_seed=0, epochs=1)
    assert model.layers[1].get_config()["seed"] == 2 ** 64 - 1
    path = tmp_path / "d.fastnn"
    model.save(path)
    loaded = fastnn.load_model(path)
    assert loaded.layers[1].seed == 2 ** 64 - 1
    clone = pickle.loads(pickle.dumps(model))
    assert clone.layers[1].seed == 2 ** 64 - 1
    assert Dropout(0.5).get_config()["seed"] is None
    # the loaded model trains on with the same masks as the original
    x = np.random.default_rng(3).standard_normal((16, 6))
    y = np.random.default_rng(4).standard_normal((16, 2))
    for m, global_seed in ((model, 5), (loaded, 6)):
        fastnn.set_random_seed(global_seed)
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for wm, wl in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(wm, wl)


def test_model_level_pickle_and_save_keep_names(tmp_path):
    model = Sequential([Input(shape=(2,)), Dense(2, name="first"), Dense(1, name="out")])
    path = tmp_path / "m.fastnn"
    model.save(path)
    loaded = fastnn.load_model(path)
    assert [layer.name for layer in loaded.layers] == ["first", "out"]
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone(np.ones((1, 2))), model(np.ones((1, 2))))


def test_save_and_load_weights(tmp_path):
    fastnn.set_random_seed(0)
    a = Sequential([Input(shape=(3,)), Dense(4, activation="relu"), Dense(1)])
    fastnn.set_random_seed(1)
    b = Sequential([Input(shape=(3,)), Dense(4, activation="relu"), Dense(1)])
    path = tmp_path / "w.fastnn"
    a.save_weights(path)
    b.load_weights(path)
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
    other = Sequential([Input(shape=(3,)), Dense(5), Dense(1)])
    before = other.get_weights()
    with pytest.raises(ValueError, match="weight shapes"):
        other.load_weights(path)
    for x, y in zip(other.get_weights(), before, strict=True):
        np.testing.assert_array_equal(x, y)
    other.load_weights(path, skip_mismatch=True)        # only the last layer matches
    np.testing.assert_array_equal(other.layers[1].bias, a.layers[1].bias)
    (tmp_path / "bad").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a valid fastnn"):
        a.load_weights(tmp_path / "bad")
