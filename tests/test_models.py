"""Sequential: building, fitting, predicting, weights and History, through the public API."""
import numpy as np
import pytest

import fastnn
from fastnn import Sequential
from fastnn.callbacks import Callback
from fastnn.layers import Dense, Dropout, Normalization
from fastnn.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
)
from fastnn.optimizers import SGD, Adam


def blobs(n=120, k=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, k)) * 3
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, k))).astype(np.float32), y


def small_model(dtype="float32", out=3, **compile_kw):
    fastnn.set_random_seed(0)
    model = Sequential([Dense(8, activation="relu"), Dense(out)], dtype=dtype)
    defaults = {"loss": SparseCategoricalCrossentropy(from_logits=True),
                "optimizer": Adam(learning_rate=0.01)}
    model.compile(**(defaults | compile_kw))
    return model


def test_lazy_build_from_first_input():
    model = small_model()
    assert not model.built
    x, y = blobs()
    model.fit(x, y, epochs=1, verbose=0)
    assert model.built
    assert [w.shape for w in model.get_weights()] == [(5, 8), (8,), (8, 3), (3,)]


def test_eager_build_with_input_dim():
    model = Sequential([Dense(4, activation="tanh", input_dim=6), Dense(2)])
    assert model.built
    assert model.count_params() == 6 * 4 + 4 + 4 * 2 + 2


def test_glorot_uniform_limits_and_zero_bias():
    fastnn.set_random_seed(3)
    model = Sequential([Dense(200, input_dim=300)])
    w, b = model.get_weights()
    limit = np.sqrt(6 / 500)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.95 * limit
    assert np.std(w) == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert not b.any()


@pytest.mark.parametrize("name, std", [("he_normal", np.sqrt(2 / 300)),
                                       ("he_uniform", np.sqrt(6 / 300) / np.sqrt(3))])
def test_he_initializers_have_keras_scale(name, std):
    fastnn.set_random_seed(4)
    w = Sequential([Dense(200, input_dim=300, kernel_initializer=name)]).get_weights()[0]
    assert np.std(w) == pytest.approx(std, rel=0.03)
    if name == "he_normal":  # truncated at two (pre-scaling) standard deviations
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-7


def test_fit_learns_blobs_and_history_has_keras_keys():
    x, y = blobs()
    model = small_model(metrics=["accuracy"])
    history = model.fit(x, y, epochs=30, batch_size=16, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == list(range(30))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
    assert all(isinstance(v, float) for v in history.history["val_loss"])


def test_fit_continues_from_current_weights_and_optimizer_state():
    x, y = blobs()
    a = small_model()
    a.fit(x, y, epochs=4, shuffle=False, verbose=0)
    b = small_model()
    b.fit(x, y, epochs=2, shuffle=False, verbose=0)
    b.fit(x, y, epochs=2, shuffle=False, verbose=0)
    assert b.optimizer.iterations == a.optimizer.iterations == 4 * 4
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_epoch_loss_is_batch_size_weighted_mean_of_batch_losses():
    x, y = blobs(n=10)
    model = small_model(optimizer=SGD(learning_rate=0.0))  # weights stay put
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    loss = model.loss
    batches = [(0, 4), (4, 8), (8, 10)]
    expected = sum(loss(y[a:b], model.predict(x[a:b])) * (b - a) for a, b in batches) / 10
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-6)
    assert model.evaluate(x, y) == pytest.approx(loss(y, model.predict(x)), rel=1e-6)


def test_full_batch_is_one_step_per_epoch():
    x, y = blobs(n=50)
    model = small_model()
    model.fit(x, y, epochs=3, batch_size=50, verbose=0)
    assert model.optimizer.iterations == 3
    model.fit(x, y, epochs=1, batch_size=None, verbose=0)  # None means 32
    assert model.optimizer.iterations == 3 + 2


def test_epochs_zero_trains_nothing():
    x, y = blobs()
    model = small_model()
    model.build(5)
    before = model.get_weights()
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.history == {}
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_predict_call_and_evaluate_agree():
    x, y = blobs()
    model = small_model(metrics=["accuracy"])
    model.fit(x, y, epochs=5, verbose=0)
    out = model.predict(x)
    assert out.shape == (len(x), 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, model(x))
    np.testing.assert_array_equal(model.predict(x[:1]), out[:1])
    result = model.evaluate(x, y, return_dict=True)
    assert set(result) == {"loss", "accuracy"}
    assert model.evaluate(x, y) == [result["loss"], result["accuracy"]]
    assert result["accuracy"] == pytest.approx(np.mean(out.argmax(1) == y))


def test_float64_model_runs_in_float64():
    x, y = blobs()
    model = small_model(dtype="float64")
    model.fit(x.astype(np.float16), y, epochs=2, verbose=0)  # any real dtype is accepted
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert model.predict(x).dtype == np.float64


def test_inputs_in_any_layout_give_the_same_result():
    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=2, verbose=0)
    fortran = np.asfortranarray(x.astype(np.float64))
    np.testing.assert_array_equal(model.predict(fortran), model.predict(x))
    np.testing.assert_array_equal(model.predict(x.tolist()), model.predict(x))
    strided = np.repeat(x, 2, axis=0)[::2]
    np.testing.assert_array_equal(model.predict(strided), model.predict(x))


def test_set_weights_round_trip_and_keras_order():
    model = Sequential([Dense(3, input_dim=2), Dense(1, use_bias=False)])
    weights = [np.arange(6.0).reshape(2, 3), np.array([1.0, 2, 3]), np.ones((3, 1))]
    model.set_weights(weights)
    got = model.get_weights()
    for a, b in zip(weights, got, strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.array([[1.0, 2.0]])
    # (x @ W1 + b1) @ W2 = [6+1, 9+2, 12+3] summed = 33
    np.testing.assert_allclose(model.predict(x), [[33.0]])


def test_add_after_build_keeps_existing_weights():
    model = Sequential([Dense(3, input_dim=2)])
    before = model.get_weights()
    model.add(Dense(1))
    after = model.get_weights()
    np.testing.assert_array_equal(before[0], after[0])
    assert after[2].shape == (3, 1)


def test_binary_sigmoid_output_with_targets_of_shape_n_and_n1():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    for target in (y, y[:, None]):
        fastnn.set_random_seed(0)
        model = Sequential([Dense(6, activation="tanh"), Dense(1, activation="sigmoid")])
        model.compile(optimizer=Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
        h = model.fit(x, target, epochs=30, verbose=0)
        assert h.history["accuracy"][-1] > 0.9


def test_binary_accuracy_on_logits_thresholds_at_zero():
    model = Sequential([Dense(1, input_dim=1, use_bias=False)])
    model.set_weights([np.array([[1.0]])])
    model.compile(loss=BinaryCrossentropy(from_logits=True), metrics=["binary_accuracy"])
    x = np.array([[-0.2], [0.2], [0.7]])  # logits; sigmoid(0.2) > 0.5 but 0.2 < 0.5
    y = np.array([0, 1, 1])
    assert model.evaluate(x, y, return_dict=True)["binary_accuracy"] == 1.0
    with pytest.warns(UserWarning, match="from_logits=False"):   # linear output
        model.compile(loss=BinaryCrossentropy(), metrics=["binary_accuracy"])
    assert model.evaluate(x, y)[1] == pytest.approx(2 / 3)


def test_multilabel_sigmoid_with_binary_crossentropy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 4))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 0] + x[:, 2] > 0], axis=1).astype(np.float32)
    fastnn.set_random_seed(0)
    model = Sequential([Dense(16, activation="relu"), Dense(3, activation="sigmoid")])
    model.compile(optimizer=Adam(0.02), loss=BinaryCrossentropy(), metrics=["binary_accuracy"])
    h = model.fit(x, y, epochs=40, verbose=0)
    assert h.history["binary_accuracy"][-1] > 0.9
    assert model.predict(x).shape == (200, 3)


def test_categorical_crossentropy_with_softmax_output_and_soft_targets():
    x, y = blobs()
    onehot = np.eye(3)[y]
    soft = 0.9 * onehot + 0.1 / 3
    fastnn.set_random_seed(0)
    model = Sequential([Dense(8, activation="relu"), Dense(3, activation="softmax")])
    model.compile(optimizer=Adam(0.02), loss=CategoricalCrossentropy(), metrics=["accuracy"])
    h = model.fit(x, soft, epochs=20, verbose=0)
    assert h.history["accuracy"][-1] > 0.9
    np.testing.assert_allclose(model.predict(x).sum(axis=1), 1, rtol=1e-5)


def test_regression_with_mse_and_mae_metrics():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    fastnn.set_random_seed(0)
    model = Sequential([Dense(1)])
    model.compile(optimizer=SGD(0.1), loss=MeanSquaredError(), metrics=["mse", "mae"])
    h = model.fit(x, y, epochs=50, verbose=0)
    assert h.history["loss"][-1] < 1e-4
    assert h.history["mse"][-1] == pytest.approx(h.history["loss"][-1], rel=1e-6, abs=1e-9)
    w, b = model.get_weights()
    np.testing.assert_allclose(w[:, 0], [1.0, -2.0, 0.5], atol=1e-2)


def test_dropout_is_identity_at_inference_and_active_in_training():
    x, y = blobs()
    fastnn.set_random_seed(0)
    model = Sequential([Dense(32, activation="relu"), Dropout(0.5), Dense(3)])
    model.compile(optimizer=SGD(0.0), loss=SparseCategoricalCrossentropy(from_logits=True))
    model.build(5)
    plain = Sequential([Dense(32, activation="relu"), Dense(3)])
    plain.build(5)
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x), plain.predict(x))
    # in training the masked, rescaled activations change the loss (weights do not move)
    train_loss = model.fit(x, y, epochs=1, batch_size=len(x), verbose=0).history["loss"][0]
    assert train_loss != pytest.approx(model.evaluate(x, y), rel=1e-3)


def test_normalization_adapt_standardises_with_population_variance():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((100, 4)) * [1, 10, 0.1, 0] + [0, 5, -3, 2]  # a constant feature
    norm = Normalization()
    norm.adapt(x)
    out = norm(x)
    np.testing.assert_allclose(out[:, :3].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, :3].std(axis=0), 1, rtol=1e-4)
    assert np.all(out[:, 3] == 0)  # constant feature stays finite
    model = Sequential([norm, Dense(2)])
    model.build(4)
    mean, var = model.get_weights()[:2]
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-5)


def test_normalization_applies_same_statistics_in_training_and_prediction():
    x, y = blobs()
    norm = Normalization()
    norm.adapt(x * 100 + 50)
    fastnn.set_random_seed(0)
    model = Sequential([norm, Dense(8, activation="relu"), Dense(3)])
    model.compile(optimizer=Adam(0.01), loss=SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    h = model.fit(x * 100 + 50, y, epochs=20, verbose=0)
    assert h.history["accuracy"][-1] > 0.9
    assert np.mean(model.predict(x * 100 + 50).argmax(1) == y) > 0.9


def test_l2_penalty_is_in_the_loss():
    x, y = blobs(n=20)
    from fastnn.regularizers import L2
    fastnn.set_random_seed(0)
    model = Sequential([Dense(4, kernel_regularizer=L2(0.1), input_dim=5), Dense(3)])
    model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
    w = model.get_weights()[0]
    data_loss = model.loss(y, model.predict(x))
    assert model.evaluate(x, y) == pytest.approx(data_loss + 0.1 * np.sum(w.astype(float) ** 2),
                                                 rel=1e-6)


def test_sample_and_class_weights_scale_the_loss_like_keras():
    x, y = blobs(n=12)
    model = small_model(optimizer=SGD(0.0))
    model.build(5)
    per_row = [model.loss(y[i:i + 1], model.predict(x[i:i + 1])) for i in range(12)]
    sw = np.linspace(0, 2, 12)
    h = model.fit(x, y, sample_weight=sw, batch_size=12, epochs=1, verbose=0)
    assert h.history["loss"][0] == pytest.approx(np.dot(sw, per_row) / 12, rel=1e-5)
    cw = {0: 2.0, 1: 0.5}  # class 2 keeps weight 1
    h = model.fit(x, y, class_weight=cw, batch_size=12, epochs=1, verbose=0)
    weights = np.array([cw.get(label, 1.0) for label in y])
    assert h.history["loss"][0] == pytest.approx(np.dot(weights, per_row) / 12, rel=1e-5)


def test_learning_rate_schedule_is_called_per_step():
    x, y = blobs(n=40)
    seen = []
    model = small_model(optimizer=SGD(learning_rate=lambda step: seen.append(step) or 0.0))
    model.build(5)
    before = model.get_weights()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert seen == list(range(6))
    np.testing.assert_array_equal(before[0], model.get_weights()[0])


def test_batch_callbacks_see_every_batch():
    class Count(Callback):
        def __init__(self):
            super().__init__()
            self.batches = []

        def on_batch_end(self, batch, logs=None):
            self.batches.append((batch, logs["loss"]))

    x, y = blobs(n=40)
    counter = Count()
    a = small_model()
    a.fit(x, y, epochs=2, batch_size=16, shuffle=False, callbacks=[counter], verbose=0)
    assert [b for b, _ in counter.batches] == [0, 1, 2, 0, 1, 2]
    b = small_model()
    b.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):  # same steps either way
        np.testing.assert_array_equal(wa, wb)


def test_summary_prints_layers_shapes_and_totals(capsys):
    model = Sequential([Normalization(), Dense(25, activation="relu"), Dropout(0.2), Dense(10)])
    model.build(64)
    assert model.summary() is None
    out = capsys.readouterr().out
    assert "(None, 25)" in out and "(None, 10)" in out
    assert f"Trainable params: {64 * 25 + 25 + 25 * 10 + 10:,}" in out
    assert "Non-trainable params: 128" in out


def test_verbose_prints_one_line_per_epoch(capsys):
    x, y = blobs(n=40)
    small_model(metrics=["accuracy"]).fit(x, y, epochs=3, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3 - 2/2 - ")
    assert "loss: " in lines[0] and "accuracy: " in lines[0]
    small_model().fit(x, y, epochs=3, verbose=0)
    assert capsys.readouterr().out == ""


def test_same_seed_gives_bit_identical_weights():
    x, y = blobs()
    runs = []
    for _ in range(2):
        fastnn.set_random_seed(7)
        model = Sequential([Dense(16, activation="relu"), Dropout(0.2), Dense(3)])
        model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=3, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
