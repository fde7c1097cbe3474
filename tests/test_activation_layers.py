"""Activation layers (Activation, ReLU, LeakyReLU, Softmax): values, gradients, fusion, saving.

Gradients follow tests/test_gradients.py: a float64 model fitted one full-batch step with
SGD(learning_rate=1) moves its parameters by minus the gradient of the loss that evaluate
reports; that is compared with a fourth-order central difference of evaluate, for the
compiled engine (through the public API) and for the NumPy reference engine.
"""
import numpy as np
import pytest

import fastnn
from fastnn import activations, losses
from fastnn._kernels import LOSSES, reference
from fastnn.layers import Activation, Dense, LeakyReLU, Normalization, ReLU, Softmax

H = 1e-3
FD_TOL = dict(rtol=1e-7, atol=1e-9)


def central_difference(f, p, h=H):
    grad, q = np.empty_like(p), p.copy()
    for i in range(p.size):
        values = []
        for step in (-2, -1, 1, 2):
            q[i] = p[i] + step * h
            values.append(f(q))
        q[i] = p[i]
        grad[i] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)
    return grad


# id: (hidden activation layer factory, output layers factory, loss, target kind)
CASES = {
    "relu": (ReLU, lambda: [Dense(3)], losses.MeanSquaredError, "dense"),
    "relu-slope": (lambda: ReLU(negative_slope=0.25), lambda: [Dense(3)],
                   losses.MeanSquaredError, "dense"),
    "leaky": (LeakyReLU, lambda: [Dense(3), Softmax()], losses.SparseCategoricalCrossentropy,
              "labels"),
    "tanh": (lambda: Activation("tanh"), lambda: [Dense(3), Activation("sigmoid")],
             losses.BinaryCrossentropy, "binary"),
    "swish": (lambda: Activation("swish"), lambda: [Dense(3), Softmax()],
              losses.CategoricalCrossentropy, "soft"),
    "softmax-hidden": (Softmax, lambda: [Dense(3), Activation("softmax")],
                       losses.MeanSquaredError, "dense"),
    "sigmoid-hidden": (lambda: Activation("sigmoid"), lambda: [Dense(3), LeakyReLU(0.1)],
                       losses.MeanSquaredError, "dense"),
}
KINKED = ("relu", "relu-slope", "leaky")


def _problem(case, seed=0):
    hidden, head, make_loss, target = CASES[case]
    n, n_in = 7, 3
    for attempt in range(200):
        rng = np.random.default_rng([seed, attempt])
        x = rng.standard_normal((n, n_in))
        model = fastnn.Sequential([Normalization(), Dense(4), hidden(), *head()],
                                  dtype="float64")
        model.layers[0].adapt(x)
        model.build(n_in)
        model._params[:] = 0.8 * rng.standard_normal(model._params.shape)
        # keep kinked units away from their kink, so no finite-difference step crosses it
        z = model.layers[0](x) @ model.layers[1].kernel + model.layers[1].bias
        if case not in KINKED or np.min(np.abs(z)) > 0.1:
            break
    if target == "labels":
        y = rng.integers(0, 3, n)
    elif target == "soft":
        y = rng.dirichlet(np.ones(3), n)
    elif target == "binary":
        y = rng.integers(0, 2, (n, 3)).astype(float)
    else:
        y = rng.standard_normal((n, 3))
    return model, make_loss(), x, y, rng.uniform(0.5, 1.5, n)


@pytest.mark.parametrize("case", CASES)
def test_compiled_gradient_matches_finite_differences(case):
    model, loss, x, y, sw = _problem(case)
    p0 = model._params.copy()
    model.compile(optimizer=fastnn.optimizers.SGD(learning_rate=1.0), loss=loss)

    def f(p):
        model._params[:] = p
        return model.evaluate(x, y, sample_weight=sw)

    numeric = central_difference(f, p0)
    model._params[:] = p0
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0, sample_weight=sw)
    analytic = p0 - model._params
    assert np.any(np.abs(numeric) > 1e-3)
    np.testing.assert_allclose(analytic, numeric, **FD_TOL)


@pytest.mark.parametrize("case", CASES)
def test_reference_gradient_matches_finite_differences(case):
    model, loss, x, y, sw = _problem(case)
    p0 = model._params.copy()
    kernel, fused = loss.kernel_for(model.layers[-1].activation)
    if loss.sparse:
        y, labels = None, np.asarray(y, np.intc)
    else:
        y, labels = np.asarray(y, np.float64).reshape(len(x), -1), None

    def engine(params):
        e = reference.Engine(model._specs(), params, model._aux.copy(), LOSSES[kernel], fused,
                             [], 0.5)
        e.set_optimizer("sgd", None, None)
        return e

    def f(p):
        stats = np.zeros(2)
        engine(p.copy()).evaluate(x, y, labels, sw, stats)
        return stats[0] / stats[1]

    numeric = central_difference(f, p0)
    params = p0.copy()
    engine(params).train(x, y, labels, sw, np.arange(len(x)), len(x), 0, 1, np.array([1.0]),
                         0, 0, np.zeros(2))
    np.testing.assert_allclose(p0 - params, numeric, **FD_TOL)


@pytest.mark.parametrize("loss, act", [(losses.SparseCategoricalCrossentropy, "softmax"),
                                       (losses.BinaryCrossentropy, "sigmoid"),
                                       (losses.CategoricalCrossentropy, "softmax")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_activation_layer_fuses_like_dense(loss, act, dtype):
    # Dense(k) + Activation(act) trains bit-identically to Dense(k, act): the fused
    # cross-entropy reads the activation layer's input as logits
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5))
    y = rng.integers(0, 3, 40)
    if loss is not losses.SparseCategoricalCrossentropy:
        y = np.eye(3)[y]
    out = []
    for last in ([Dense(3, act)], [Dense(3), Softmax() if act == "softmax" else
                                   Activation(act)]):
        fastnn.set_random_seed(8)
        model = fastnn.Sequential([Dense(6, "tanh"), *last], dtype=dtype)
        model.compile(loss=loss(), metrics=["accuracy"])
        hist = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        out.append((model.get_weights(), hist.history, model.predict(x)))
    for a, b in zip(out[0][0], out[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert out[0][1] == out[1][1]
    np.testing.assert_array_equal(out[0][2], out[1][2])
    # with logits saturated far beyond float precision the fused loss stays finite
    model.layers[-2].kernel[...] *= 1e4
    result = model.evaluate(x, y)   # a dict today, Keras's [loss, metric] list later
    assert np.isfinite(result["loss"] if isinstance(result, dict) else result[0])


def test_standalone_layers_match_the_activation_functions():
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    np.testing.assert_array_equal(ReLU()(x), activations.relu(x))
    np.testing.assert_array_equal(Softmax()(x), activations.softmax(x))
    np.testing.assert_array_equal(Activation("tanh")(x), activations.tanh(x))
    np.testing.assert_array_equal(Activation(activations.swish)(x), activations.swish(x))
    np.testing.assert_array_equal(LeakyReLU()(x), activations.leaky_relu(x, 0.3))
    np.testing.assert_array_equal(LeakyReLU(0.05)(x), activations.leaky_relu(x, 0.05))
    np.testing.assert_array_equal(ReLU(negative_slope=0.2)(x), activations.leaky_relu(x, 0.2))
    # Activation("leaky_relu") keeps the activation's own slope, as Dense does
    np.testing.assert_array_equal(Activation("leaky_relu")(x), activations.leaky_relu(x))


def test_keras_defaults_and_bad_arguments():
    assert LeakyReLU().negative_slope == 0.3          # Keras 3's layer default
    assert Softmax().axis == -1 and Softmax(axis=-1).axis == -1
    for bad in (lambda: Softmax(axis=0), lambda: Softmax(axis=1),
                lambda: LeakyReLU(-0.1), lambda: ReLU(max_value=6.0),
                lambda: ReLU(threshold=0.5), lambda: ReLU(negative_slope=-1)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError):
        Activation("no-such-activation")
    with pytest.raises(TypeError):
        LeakyReLU("0.3")


def test_activation_layers_save_and_load(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    model = fastnn.Sequential([Dense(5), ReLU(), Dense(5), LeakyReLU(0.15),
                               Dense(5), Activation("tanh"), Dense(3), Softmax()])
    model.compile(loss=losses.SparseCategoricalCrossentropy())
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "m.fastnn")
    loaded = fastnn.load_model(tmp_path / "m.fastnn")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert loaded.layers[3].negative_slope == 0.15
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.count_params() == model.count_params()
    for layer in model.layers:
        twin = type(layer).from_config(layer.get_config())
        assert twin.get_config() == layer.get_config()
