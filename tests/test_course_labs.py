"""Course-lab-style code, run with only the imports changed.

Each test is written in the style of the classic course's TensorFlow labs (where the
lab writes ``import tensorflow as tf`` / ``from tensorflow.keras...``, these tests import
the same names from fastnn), with this project's own data and wording: sklearn's 8x8
digits stand in for the labs' 20x20 images (64 features instead of 400).
"""
import numpy as np
import pytest

import fastnn
from fastnn import Sequential
from fastnn import activations as tf_nn  # the labs' tf.nn.softmax
from fastnn.activations import linear, relu, sigmoid
from fastnn.layers import Dense, Input, Normalization
from fastnn.losses import BinaryCrossentropy, SparseCategoricalCrossentropy
from fastnn.optimizers import Adam

sklearn_datasets = pytest.importorskip("sklearn.datasets")


# ----------------------------------------------------------------------------- coffee roasting
def roast_data(m=200, seed=2):
    """Temperature (C) and duration (min); a roast is good inside a temperature window
    and when it lasts long enough (this project's own rule)."""
    rng = np.random.default_rng(seed)
    temp = rng.uniform(150, 285, m)
    dur = rng.uniform(11.5, 15.5, m)
    good = (temp > 190) & (temp < 260) & (dur > 12.5)
    return np.c_[temp, dur], good.astype(float).reshape(-1, 1)


def test_coffee_roasting_lab():
    X, Y = roast_data()
    norm_l = Normalization(axis=-1)
    norm_l.adapt(X)                                   # learns mean, variance
    Xn = norm_l(X)
    assert np.abs(np.mean(Xn.numpy(), axis=0)).max() < 1e-5
    Xt = np.tile(Xn, (100, 1))
    Yt = np.tile(Y, (100, 1))
    assert Xt.shape == (20000, 2) and Yt.shape == (20000, 1)

    fastnn.set_random_seed(1234)
    model = Sequential([
        Input(shape=(2,)),
        Dense(3, activation="sigmoid", name="layer1"),
        Dense(1, activation="sigmoid", name="layer2"),
    ])
    model.summary()
    W1, b1 = model.get_layer("layer1").get_weights()
    W2, b2 = model.get_layer("layer2").get_weights()
    assert W1.shape == (2, 3) and b1.shape == (3,) and W2.shape == (3, 1) and b2.shape == (1,)
    model.compile(loss=BinaryCrossentropy(), optimizer=Adam(learning_rate=0.01))
    model.fit(Xt, Yt, epochs=5, verbose=0)
    trained = model.predict(Xn)
    assert np.mean((trained >= 0.5).astype(float) == Y) > 0.85

    # hand-set weights, as the lab does: each hidden unit fires on one way to ruin a
    # roast (too cold, too hot, too short), the output unit is "none of them fired"
    mean, var = norm_l.get_weights()
    std = np.sqrt(var)
    lo_t, hi_t, lo_d = ((190 - mean[0]) / std[0], (260 - mean[0]) / std[0],
                        (12.5 - mean[1]) / std[1])
    k = 40.0
    W1 = np.array([[-k, k, 0.0], [0.0, 0.0, -k]])
    b1 = np.array([k * lo_t, -k * hi_t, k * lo_d])
    W2 = np.array([[-k], [-k], [-k]])
    b2 = np.array([k / 2])
    model.get_layer("layer1").set_weights([W1, b1])
    model.get_layer("layer2").set_weights([W2, b2])
    X_test = np.array([[200, 13.9],     # good
                       [200, 12.0],     # too short
                       [170, 14.0],     # too cold
                       [270, 14.0]])    # too hot
    X_testn = norm_l(X_test)
    predictions = model.predict(X_testn)
    yhat = (predictions >= 0.5).astype(int)
    np.testing.assert_array_equal(yhat, [[1], [0], [0], [0]])
    yhat = np.zeros_like(predictions)
    for i in range(len(predictions)):
        yhat[i] = 1 if predictions[i] >= 0.5 else 0
    np.testing.assert_array_equal(yhat, [[1], [0], [0], [0]])


# ----------------------------------------------------------------------------- binary digits
def digits01():
    X, y = sklearn_datasets.load_digits(n_class=2, return_X_y=True)
    return X / 16.0, y.reshape(-1, 1)


def my_dense(a_in, W, b, g):
    """The labs' NumPy layer: one unit at a time, a_out[j] = g(z)."""
    units = W.shape[1]
    a_out = np.zeros(units)
    for j in range(units):
        w = W[:, j]
        z = np.dot(w, a_in) + b[j]
        a_out[j] = g(z)
    return a_out


def test_binary_digits_lab():
    X, y = digits01()
    assert X.shape == (360, 64) and y.shape == (360, 1)
    fastnn.set_random_seed(0)
    model = Sequential([
        Input(shape=(64,)),
        Dense(25, activation="sigmoid", name="L1"),
        Dense(15, activation="sigmoid", name="L2"),
        Dense(1, activation="sigmoid", name="L3"),
    ], name="my_model")
    model.summary()
    # the lab's own unit test of the model
    assert model.inputs[0].shape == (None, 64)
    expected = [[(None, 25), 64 * 25 + 25, sigmoid], [(None, 15), 25 * 15 + 15, sigmoid],
                [(None, 1), 15 + 1, sigmoid]]
    for layer, (shape, params, act) in zip(model.layers, expected, strict=True):
        assert type(layer) is Dense
        assert layer.output.shape == shape
        assert layer.count_params() == params
        assert layer.activation == act
    [layer1, layer2, layer3] = model.layers
    W1, b1 = layer1.get_weights()
    assert W1.shape == (64, 25) and b1.shape == (25,)
    assert layer2.get_weights()[0].shape == (25, 15) and layer3.get_weights()[0].shape == (15, 1)

    model.compile(loss=BinaryCrossentropy(), optimizer=Adam(0.001))
    model.fit(X, y, 32, 20, 0)                         # Keras's positional order
    loss = model.evaluate(X, y)
    assert isinstance(loss, float) and loss < 0.3

    prediction = model.predict(X[0].reshape(1, 64))   # a zero
    yhat = 1 if prediction >= 0.5 else 0
    assert yhat == y[0, 0] == 0
    prediction = model.predict(X[1].reshape(1, 64))   # a one
    assert (1 if prediction >= 0.5 else 0) == y[1, 0] == 1
    predictions = model.predict(X)
    yhat = (predictions >= 0.5).astype(int)
    assert np.mean(yhat == y) > 0.95
    assert np.mean((predictions >= 0.5).numpy() == y) > 0.95

    # the NumPy forward pass with the trained weights gives the same answer
    [W1, b1], [W2, b2], [W3, b3] = (layer.get_weights() for layer in model.layers)
    a1 = my_dense(X[1], W1, b1, sigmoid)
    a2 = my_dense(a1, W2, b2, sigmoid)
    a3 = my_dense(a2, W3, b3, sigmoid)
    assert a3[0] == pytest.approx(float(model.predict(X[1:2])[0, 0]), rel=1e-4)


# ----------------------------------------------------------------------------- softmax lab
def blobs4(m=2000):
    centers = [[-5, 2], [-2, -2], [1, 2], [5, -2]]
    X, y = sklearn_datasets.make_blobs(n_samples=m, centers=centers, cluster_std=1.0,
                                       random_state=30)
    return X, y


def test_softmax_lab_from_logits_comparison():
    X_train, y_train = blobs4()
    fastnn.set_random_seed(0)
    model = Sequential([Dense(25, activation="relu"), Dense(15, activation="relu"),
                        Dense(4, activation="softmax")])    # softmax activation here
    model.compile(loss=SparseCategoricalCrossentropy(), optimizer=Adam(0.001))
    model.fit(X_train, y_train, epochs=10, verbose=0)
    p_nonpreferred = model.predict(X_train)
    assert np.allclose(p_nonpreferred.sum(axis=1), 1, atol=1e-5)
    assert np.min(p_nonpreferred) >= 0

    fastnn.set_random_seed(0)
    preferred_model = Sequential([Dense(25, activation="relu"), Dense(15, activation="relu"),
                                  Dense(4, activation="linear")])   # linear activation
    preferred_model.compile(loss=SparseCategoricalCrossentropy(from_logits=True),
                            optimizer=Adam(0.001))
    preferred_model.fit(X_train, y_train, epochs=10, verbose=0)
    p_preferred = preferred_model.predict(X_train)
    assert np.min(p_preferred) < 0                       # logits, not probabilities
    sm_preferred = tf_nn.softmax(p_preferred).numpy()
    assert type(sm_preferred) is np.ndarray
    np.testing.assert_allclose(sm_preferred.sum(axis=1), 1, atol=1e-5)
    for i in range(5):
        assert np.argmax(sm_preferred[i]) == np.argmax(p_preferred[i])
    for p in (p_nonpreferred, sm_preferred):
        assert np.mean(np.argmax(p, axis=1) == y_train) > 0.9


# ----------------------------------------------------------------------------- multiclass lab
def test_multiclass_lab_named_layers():
    X_train, y_train = blobs4(m=100)
    fastnn.set_random_seed(1234)
    model = Sequential([Dense(2, activation="relu", name="L1"),
                        Dense(4, activation="linear", name="L2")])
    model.compile(loss=SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=Adam(0.01))
    model.fit(X_train, y_train, epochs=200, verbose=0)
    l1 = model.get_layer("L1")
    W1, b1 = l1.get_weights()
    l2 = model.get_layer("L2")
    W2, b2 = l2.get_weights()
    assert W1.shape == (2, 2) and b1.shape == (2,) and W2.shape == (2, 4) and b2.shape == (4,)
    assert l1.activation == relu and l2.activation == linear
    # the lab recomputes the hidden layer by hand from these weights
    a1 = np.maximum(0, X_train @ W1 + b1)
    np.testing.assert_allclose(a1 @ W2 + b2, model.predict(X_train), rtol=1e-4, atol=1e-4)
    logits = model(X_train)
    assert np.mean(np.argmax(logits.numpy(), axis=1) == y_train) > 0.7


# ----------------------------------------------------------------------------- 10-class digits
def test_ten_digit_lab_predicts_one_image():
    X, y = sklearn_datasets.load_digits(return_X_y=True)
    X = X / 16.0
    fastnn.set_random_seed(1234)
    model = Sequential([
        Input(shape=(64,)),
        Dense(25, activation="relu", name="L1"),
        Dense(15, activation="relu", name="L2"),
        Dense(10, activation="linear", name="L3"),
    ], name="my_model")
    assert [layer.output.shape for layer in model.layers] == [(None, 25), (None, 15),
                                                              (None, 10)]
    assert model.layers[2].activation == linear
    [layer1, layer2, layer3] = model.layers
    W1, b1 = layer1.get_weights()
    assert W1.shape == (64, 25)
    model.compile(loss=SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=Adam(learning_rate=0.001), metrics=["accuracy"])
    history = model.fit(X, y, epochs=40, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, acc = model.evaluate(X, y)
    assert acc > 0.9

    image_of_two = X[2]
    assert y[2] == 2
    prediction = model.predict(image_of_two.reshape(1, 64))
    prediction_p = tf_nn.softmax(prediction)
    assert np.sum(prediction_p) == pytest.approx(1.0, rel=1e-5)
    yhat = np.argmax(prediction_p)
    assert yhat == 2
    assert int(np.argmax(prediction_p.numpy())) == 2
