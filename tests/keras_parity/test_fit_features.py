"""fit() features against Keras: validation, sample and class weights, soft targets,
Normalization, EarlyStopping."""

import numpy as np
import pytest

pytest.importorskip("keras")

import keras
from _kparity import (
    DTYPES,
    TOL,
    check_close,
    check_history,
    check_weights,
    combo_targets,
    compile_twins,
    fit_twins,
    keras_floatx,
    make_weights,
    to_numpy,
    twin_models,
)

import fastnn
from fastnn.callbacks import EarlyStopping
from fastnn.layers import Dense, Normalization

N, D, BATCH = 70, 6, 16


def _setup(seed, units, loss, hidden=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    y = combo_targets(rng, N, units, loss)
    sizes = [D, hidden, units]
    return rng, x, y, sizes, make_weights(rng, sizes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("split", [0.25, 0.3])
def test_validation_split_matches_keras(split, dtype):
    """Last rows, before shuffling; val_loss in inference mode and with the L2 penalty."""
    _, x, y, sizes, weights = _setup(81, 1, "bce")
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["tanh", "sigmoid"], dtype, weights, l2=0.0078125)
        compile_twins(fast, kmodel, "adam_custom", "bce")
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=5, batch_size=BATCH,
                                   validation_split=split)
        k_weights = kmodel.get_weights()
    check_history(f_hist, k_hist, dtype, "validation", keys=("loss", "val_loss"))
    check_weights(fast, k_weights, dtype, "validation")


@pytest.mark.parametrize("dtype", DTYPES)
def test_validation_data_matches_keras(dtype):
    rng, x, y, sizes, weights = _setup(82, 3, "scce")
    xv, yv = rng.standard_normal((23, D)), rng.integers(0, 3, 23)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["relu", "softmax"], dtype, weights)
        compile_twins(fast, kmodel, "sgd_momentum", "scce", metrics=["accuracy"])
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=5, batch_size=BATCH,
                                   validation_data=(xv, yv))
    check_history(f_hist, k_hist, dtype, "validation",
                  keys=("loss", "val_loss", "accuracy", "val_accuracy"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_validation_data_with_sample_weights_matches_keras(dtype):
    """Keras accepts (x_val, y_val, sample_weight_val): val_loss = sum(w * l) / n_val."""
    rng, x, y, sizes, weights = _setup(83, 2, "mse")
    xv, yv, wv = rng.standard_normal((23, D)), rng.standard_normal((23, 2)), rng.random(23) * 2
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["tanh", "linear"], dtype, weights)
        compile_twins(fast, kmodel, "sgd", "mse")
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=3, batch_size=BATCH,
                                   validation_data=(xv, yv, wv))
    check_history(f_hist, k_hist, dtype, "validation", keys=("loss", "val_loss"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["adam_default", "sgd"])
def test_sample_weight_matches_keras(opt, dtype):
    """Batch loss = sum(w * l) / batch_rows (not / sum(w)); some weights are exactly 0."""
    rng, x, y, sizes, weights = _setup(84, 3, "cce")
    sw = rng.random(N) * 3.0
    sw[::7] = 0.0
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["tanh", "softmax"], dtype, weights, l2=0.0078125)
        compile_twins(fast, kmodel, opt, "cce")
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=5, batch_size=BATCH,
                                   sample_weight=sw)
        k_weights = kmodel.get_weights()
        # API.md's evaluate() takes no sample_weight: compare the unweighted loss.
        k_plain = float(to_numpy(kmodel.evaluate(x, y, verbose=0)))
    check_history(f_hist, k_hist, dtype, "sample_weight")
    check_weights(fast, k_weights, dtype, "sample_weight")
    check_close(fast.evaluate(x, y), k_plain, dtype, "sample_weight", "outputs", "evaluate")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["binary", "sparse", "onehot"])
def test_class_weight_matches_keras(kind, dtype):
    """class_weight becomes per-row weights; a class missing from the dict weighs 1."""
    if kind == "binary":
        units, loss, act, cw = 1, "bce", "sigmoid", {0: 0.5, 1: 3.0}
    elif kind == "sparse":
        units, loss, act, cw = 3, "scce", "softmax", {0: 1.5, 2: 0.25}  # class 1 missing
    else:
        units, loss, act, cw = 3, "cce", "softmax", {0: 0.5, 1: 2.0, 2: 1.25}
    _, x, y, sizes, weights = _setup(85, units, loss)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["relu", act], dtype, weights)
        compile_twins(fast, kmodel, "adam_custom", loss)
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=5, batch_size=BATCH,
                                   class_weight=cw, validation_split=0.2)
        k_weights = kmodel.get_weights()
    # val_loss carries no class weights in Keras.
    check_history(f_hist, k_hist, dtype, "class_weight", keys=("loss", "val_loss"))
    check_weights(fast, k_weights, dtype, "class_weight")


@pytest.mark.parametrize("dtype", DTYPES)
def test_metrics_ignore_sample_weight_like_keras(dtype):
    """Keras applies sample_weight to the loss but not to `metrics=` (only to
    `weighted_metrics=`, which fastnn does not have)."""
    rng, x, y, sizes, weights = _setup(86, 2, "mse")
    sw = rng.random(N) * 3.0
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["tanh", "linear"], dtype, weights)
        compile_twins(fast, kmodel, "sgd", "mse", metrics=["mse", "mae"])
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=3, batch_size=BATCH,
                                   sample_weight=sw)
    check_history(f_hist, k_hist, dtype, "metrics", keys=("loss", "mse", "mae"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_target_cce_training_matches_keras(dtype):
    rng, x, _, sizes, weights = _setup(87, 4, "cce")
    y = rng.dirichlet(np.ones(4), size=N)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["tanh", "softmax"], dtype, weights)
        compile_twins(fast, kmodel, "sgd_nesterov", "cce")
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=5, batch_size=BATCH)
        k_weights = kmodel.get_weights()
    check_history(f_hist, k_hist, dtype, "soft-targets")
    check_weights(fast, k_weights, dtype, "soft-targets")


# ----------------------------------------------------------------------------- Normalization

def _norm_data(rng, n=N):
    """Large offsets (catch E[x^2] - E[x]^2 cancellation), mixed scales, a constant feature."""
    x = rng.standard_normal((n, D)) * np.array([1.0, 10.0, 0.01, 3.0, 1.0, 0.5])
    x += np.array([100.0, -5.0, 0.0, 1e3, 0.0, 2.0])
    x[:, 4] = 7.25
    return x


def _keras_normalization(x, x_new, dtype):
    with keras_floatx(dtype):
        k_norm = keras.layers.Normalization()
        k_norm.adapt(x)
        k_mean, k_var = (np.asarray(w) for w in k_norm.get_weights()[:2])
        k_out = to_numpy(k_norm(x_new.astype(dtype)))
    return k_mean, k_var, k_out


NORM_OUT_TOL = {"float32": 1e-4, "float64": 1e-11}


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalization_adapt_matches_keras(dtype):
    rng = np.random.default_rng(88)
    x, x_new = _norm_data(rng), _norm_data(rng, 17)
    k_mean, k_var, k_out = _keras_normalization(x, x_new, dtype)
    f_norm = Normalization()
    f_norm.adapt(x.astype(dtype))
    # The layer called on its own. fastnn has no global floatx: a layer outside a model
    # computes in float32 (the library default), whatever the input dtype.
    got = np.asarray(f_norm(x_new.astype(dtype)))
    assert np.all(np.isfinite(got)) and np.all(got[:, 4] == 0.0)
    check_close(got, k_out, dtype, "normalization", "outputs", "layer called on its own",
                NORM_OUT_TOL["float32"])
    # The statistics, read through a model's get_weights (mean, variance first).
    fast = fastnn.Sequential([f_norm, Dense(1)], dtype=dtype)
    fast.predict(x_new)  # builds the Dense layer from the input width
    f_mean, f_var = fast.get_weights()[:2]
    # Keras computes them with NumPy in float64, then rounds to the layer dtype.
    # A float32 E[x^2] - E[x]^2 would be off by ~1e-2 on the offset-1000 feature.
    mean_tol, var_tol = {"float32": (1e-6, 1e-5), "float64": (1e-13, 1e-9)}[dtype]
    check_close(f_mean, k_mean, dtype, "normalization", "outputs", "mean", mean_tol)
    np.testing.assert_allclose(f_var, k_var, rtol=var_tol, atol=1e-30,
                               err_msg="population variance (ddof 0)")
    assert 0.0 <= f_var[4] < 1e-10  # the constant feature


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalization_only_model_predicts_like_keras(dtype):
    """A Sequential holding only an adapted Normalization has no trainable weights; Keras
    predicts with it all the same."""
    rng = np.random.default_rng(90)
    x, x_new = _norm_data(rng), _norm_data(rng, 17)
    _, _, k_out = _keras_normalization(x, x_new, dtype)
    f_norm = Normalization()
    f_norm.adapt(x.astype(dtype))
    fast = fastnn.Sequential([f_norm], dtype=dtype)
    check_close(fast.predict(x_new), k_out, dtype, "normalization", "outputs",
                "Normalization-only model", NORM_OUT_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalization_in_a_trained_model_matches_keras(dtype):
    rng = np.random.default_rng(89)
    x = _norm_data(rng)
    y = rng.standard_normal((N, 1))
    dense = make_weights(rng, [D, 7, 1])
    with keras_floatx(dtype):
        k_norm = keras.layers.Normalization()
        k_norm.adapt(x)
        kmodel = keras.Sequential([keras.Input((D,)), k_norm,
                                   keras.layers.Dense(7, activation="tanh"),
                                   keras.layers.Dense(1)])
        kmodel.layers[1].set_weights(dense[:2])
        kmodel.layers[2].set_weights(dense[2:])
        kmodel.compile(optimizer=keras.optimizers.Adam(learning_rate=0.0078125), loss="mse")
        k_hist = kmodel.fit(x, y, epochs=5, batch_size=BATCH, shuffle=False, verbose=0)
        k_weights = kmodel.get_weights()
    f_norm = Normalization()
    f_norm.adapt(x)
    fast = fastnn.Sequential([f_norm, Dense(7, activation="tanh"), Dense(1)], dtype=dtype)
    fast.predict(x[:2])  # builds the Dense layers from the input width
    mean, var = fast.get_weights()[:2]
    fast.set_weights([mean, var] + [w.astype(dtype) for w in dense])
    fast.compile(optimizer=fastnn.optimizers.Adam(learning_rate=0.0078125), loss="mse")
    f_hist = fast.fit(x, y, epochs=5, batch_size=BATCH, shuffle=False, verbose=0)
    check_history(f_hist, k_hist, dtype, "normalization")
    # Keras: [mean, variance, count, W1, b1, W2, b2]; fastnn: [mean, variance, W1, ...].
    f_weights = fast.get_weights()
    assert len(f_weights) == 6
    for i, (a, b) in enumerate(zip(f_weights[2:], k_weights[3:], strict=True)):
        check_close(a, b, dtype, "normalization", "weights", f"dense weights[{i}]")
    np.testing.assert_array_equal(f_weights[0], mean)  # adapt() statistics are not trained


# ----------------------------------------------------------------------------- EarlyStopping

def _early_stopping_problem(dtype):
    """Training targets y = x @ w; validation targets 0.5 * x_val @ w, starting from ~zero
    outputs, so val_loss falls for a few epochs and then rises steadily."""
    rng = np.random.default_rng(2)
    x, xv = rng.standard_normal((60, 5)), rng.standard_normal((30, 5))
    w = rng.standard_normal((5, 1))
    y, yv = x @ w + 0.1 * rng.standard_normal((60, 1)), 0.5 * (xv @ w)
    weights = [rng.standard_normal((5, 6)) * 0.1, np.zeros(6),
               rng.standard_normal((6, 1)) * 0.1, np.zeros(1)]
    return x, y, xv, yv, weights


ES_CASES = [
    # id, EarlyStopping kwargs, epochs
    ("patience2-restore", dict(patience=2, restore_best_weights=True), 30),
    ("patience1-no-restore", dict(patience=1), 30),
    ("min-delta", dict(patience=1, min_delta=0.3, restore_best_weights=True), 30),
    ("restore-without-stopping", dict(patience=2, restore_best_weights=True), 4),
    ("monitor-loss-patience0", dict(monitor="loss", patience=0), 12),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ES_CASES, ids=[c[0] for c in ES_CASES])
def test_early_stopping_matches_keras(case, dtype):
    cid, es_kwargs, epochs = case
    x, y, xv, yv, weights = _early_stopping_problem(dtype)
    with keras_floatx(dtype):
        fast, kmodel = twin_models([5, 6, 1], ["tanh", "linear"], dtype, weights)
        fast.compile(optimizer=fastnn.optimizers.Adam(learning_rate=0.03125), loss="mse")
        kmodel.compile(optimizer=keras.optimizers.Adam(learning_rate=0.03125), loss="mse")
        k_es = keras.callbacks.EarlyStopping(**es_kwargs)
        k_hist = kmodel.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=BATCH,
                            shuffle=False, verbose=0, callbacks=[k_es])
        k_weights = kmodel.get_weights()
    f_es = EarlyStopping(**es_kwargs)
    f_hist = fast.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=BATCH,
                      shuffle=False, verbose=0, callbacks=[f_es])
    # The problem is well-posed: the monitored values differ between epochs by far more than
    # the tolerance, so the stopping epoch cannot flip on rounding.
    monitored = np.array([float(to_numpy(v)) for v in k_hist.history[es_kwargs.get(
        "monitor", "val_loss")]])
    assert np.min(np.abs(np.diff(monitored)) / monitored[1:]) > 10 * TOL[dtype]
    assert len(f_hist.history["loss"]) == len(k_hist.history["loss"]), (
        f"fastnn ran {len(f_hist.history['loss'])} epochs, Keras {len(k_hist.history['loss'])}"
        f" (Keras stopped_epoch={k_es.stopped_epoch})")
    assert list(f_hist.epoch) == list(k_hist.epoch)
    check_history(f_hist, k_hist, dtype, "early-stopping", keys=("loss", "val_loss"))
    check_weights(fast, k_weights, dtype, "early-stopping", what="final weights")
    if k_es.stopped_epoch:
        assert getattr(f_es, "stopped_epoch", k_es.stopped_epoch) == k_es.stopped_epoch


@pytest.mark.parametrize("dtype", DTYPES)
def test_early_stopping_problem_is_nontrivial(dtype):
    """Guards the scenario above: Keras stops early and the best epoch is not the last."""
    x, y, xv, yv, weights = _early_stopping_problem(dtype)
    with keras_floatx(dtype):
        _, kmodel = twin_models([5, 6, 1], ["tanh", "linear"], dtype, weights)
        kmodel.compile(optimizer=keras.optimizers.Adam(learning_rate=0.03125), loss="mse")
        es = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
        hist = kmodel.fit(x, y, validation_data=(xv, yv), epochs=30, batch_size=BATCH,
                          shuffle=False, verbose=0, callbacks=[es])
    assert 0 < es.best_epoch < es.stopped_epoch == len(hist.history["loss"]) - 1
