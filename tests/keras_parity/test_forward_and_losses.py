"""Forward passes and loss values: fastnn against Keras, no training involved.

Covers every activation (as a function and as a Dense layer's output), Dropout at inference,
and every loss in both `from_logits` modes on extreme inputs: probabilities of exactly 0 and
1, logits of +-1e4, unnormalised probability rows, soft targets and multi-label targets.
"""

import numpy as np
import pytest

pytest.importorskip("keras")

import keras
from _kparity import (
    DTYPES,
    FWD_TOL,
    MODEL_COMBOS,
    SHARED_ACTIVATIONS,
    check_close,
    combo_targets,
    keras_floatx,
    make_weights,
    record,
    rel_err,
    to_numpy,
    twin_losses,
    twin_models,
)

import fastnn
from fastnn import activations as fact
from fastnn.layers import Dense
from fastnn.losses import BinaryCrossentropy

# Tiny absolute slack for values that underflow differently: torch's BCE-with-logits gives
# 0.0 for y=0, z=-100, where the exact value log1p(exp(-100)) is 3.7e-44 (fastnn gives that).
ATOL = {"float32": 1e-30, "float64": 1e-30}

Z_ROW = [-1e4, -60.0, -20.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 20.0, 60.0, 1e4]
SOFTMAX_ROWS = [[-1e4, 0.0, 1e4], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-50.0, 50.0, 0.0],
                [1e4, 1e4, -1e4]]


def _keras_act(name, z, **kw):
    return to_numpy(getattr(keras.activations, name)(keras.ops.convert_to_tensor(z), **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SHARED_ACTIVATIONS)
def test_activation_function_matches_keras(name, dtype):
    z = np.array(SOFTMAX_ROWS if name == "softmax" else [Z_ROW], dtype=dtype)
    with keras_floatx(dtype):
        want = _keras_act(name, z)
    got = getattr(fact, name)(z)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, want, rtol=FWD_TOL[dtype], atol=ATOL[dtype])
    record(f"activation:{name}", dtype, "outputs", rel_err(got, want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_slopes_match_keras(dtype):
    """fastnn's default slope is the course's 0.01 (Keras: 0.2); both are available."""
    z = np.array([Z_ROW], dtype=dtype)
    with keras_floatx(dtype):
        keras_001 = _keras_act("leaky_relu", z, negative_slope=0.01)
        keras_default = _keras_act("leaky_relu", z)
    np.testing.assert_allclose(fact.leaky_relu(z), keras_001, rtol=FWD_TOL[dtype])
    np.testing.assert_allclose(fact.leaky_relu(z, negative_slope=0.2), keras_default,
                               rtol=FWD_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_act", SHARED_ACTIVATIONS + ["leaky_relu"])
def test_dense_output_activation_predict_matches_keras(out_act, dtype):
    rng = np.random.default_rng(11)
    x = 3.0 * rng.standard_normal((45, 6))
    sizes = [6, 9, 4]
    weights = make_weights(rng, sizes)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["tanh", out_act], dtype, weights)
        want = to_numpy(kmodel.predict(x, verbose=0))
    got = fast.predict(x)
    assert got.dtype == np.dtype(dtype)
    check_close(got, want, dtype, f"predict:{out_act}", "outputs", "predict", FWD_TOL[dtype])
    check_close(fast(x), want, dtype, f"predict:{out_act}", "outputs", "model(x)", FWD_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_is_identity_at_inference(dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((50, 7))
    y = rng.standard_normal((50, 2))
    sizes = [7, 10, 8, 2]
    weights = make_weights(rng, sizes)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["relu", "tanh", "linear"], dtype, weights,
                                   dropout=0.4)
        fast.compile(optimizer="sgd", loss="mse")
        kmodel.compile(optimizer="sgd", loss="mse")
        want = to_numpy(kmodel.predict(x, verbose=0))
        want_loss = float(to_numpy(kmodel.evaluate(x, y, verbose=0)))
    assert [type(layer).__name__ for layer in fast.layers].count("Dropout") == 2
    check_close(fast.predict(x), want, dtype, "dropout-inference", "outputs", "predict",
                FWD_TOL[dtype])
    check_close(fast(x), want, dtype, "dropout-inference", "outputs", "model(x)", FWD_TOL[dtype])
    check_close(fast.evaluate(x, y), want_loss, dtype, "dropout-inference", "outputs",
                "evaluate", FWD_TOL[dtype])


# ----------------------------------------------------------------------------- loss objects

def _bce_prob_case():
    y = np.array([[1], [0], [1], [0], [1], [0], [1], [0]], dtype=float)
    p = np.array([[0.0], [1.0], [1.0], [0.0], [0.5], [1e-9], [1 - 1e-9], [0.3]])
    return y, p


def _bce_logit_case():
    z = np.array([[-1e4], [1e4], [-30.0], [30.0], [0.0], [17.0], [-17.0], [2.5], [-100.0]])
    y = np.array([[1], [0], [1], [0], [1], [0], [1], [1], [0]], dtype=float)
    return y, z


def _multilabel_case():
    y = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=float)
    p = np.array([[0.0, 1.0, 0.9], [0.1, 0.0, 1.0], [1.0, 1.0, 0.2], [0.5, 0.5, 0.5]])
    return y, p


CAT_PROBS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [2.0, 1.0, 1.0], [0.2, 0.3, 0.5],
                      [1e-9, 0.5, 0.5]])
CAT_LOGITS = np.array([[-1e4, 0.0, 1e4], [1e4, 1e4, -1e4], [0.0, 0.0, 0.0], [1.0, -2.0, 0.5],
                       [-30.0, 30.0, 0.0]])
CAT_LABELS = np.array([0, 0, 1, 2, 0])
SOFT = np.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.1, 0.9],
                 [0.7, 0.2, 0.1]])


def _loss_cases():
    """(id, loss name, kwargs, y_true, y_pred)."""
    y, p = _bce_prob_case()
    yield "bce-prob", "bce", {}, y, p
    yield "bce-prob-1d-target", "bce", {}, y[:, 0], p
    y, z = _bce_logit_case()
    yield "bce-logit", "bce", {"from_logits": True}, y, z
    y, p = _multilabel_case()
    yield "bce-prob-multilabel", "bce", {}, y, p
    yield "bce-logit-multilabel", "bce", {"from_logits": True}, y, 40.0 * (p - 0.5)
    onehot = np.eye(3)[CAT_LABELS]
    yield "cce-prob", "cce", {}, onehot, CAT_PROBS
    yield "cce-prob-soft", "cce", {}, SOFT, CAT_PROBS
    yield "cce-logit", "cce", {"from_logits": True}, onehot, CAT_LOGITS
    yield "cce-logit-soft", "cce", {"from_logits": True}, SOFT, CAT_LOGITS
    yield "scce-prob", "scce", {}, CAT_LABELS, CAT_PROBS
    yield "scce-prob-col", "scce", {}, CAT_LABELS[:, None], CAT_PROBS
    yield "scce-logit", "scce", {"from_logits": True}, CAT_LABELS, CAT_LOGITS
    yield "scce-logit-col", "scce", {"from_logits": True}, CAT_LABELS[:, None], CAT_LOGITS
    rng = np.random.default_rng(3)
    yield "mse", "mse", {}, rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    yield "mse-1col", "mse", {}, rng.standard_normal((6, 1)), rng.standard_normal((6, 1))


LOSS_CASES = list(_loss_cases())


def _as_inputs(name, y, p, dtype):
    y = np.asarray(y)
    y = y.astype(np.int64) if name == "scce" else y.astype(dtype)
    return y, np.asarray(p, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_object_matches_keras(case, dtype):
    """Whole batch, then each row on its own so that no extreme row hides in a mean."""
    cid, name, kwargs, y, p = case
    y, p = _as_inputs(name, y, p, dtype)
    with keras_floatx(dtype):
        f_loss, k_loss = twin_losses(name, **kwargs)
        want = [float(to_numpy(k_loss(y, p)))]
        want += [float(to_numpy(k_loss(y[i:i + 1], p[i:i + 1]))) for i in range(len(y))]
    got = [float(f_loss(y, p))]
    got += [float(f_loss(y[i:i + 1], p[i:i + 1])) for i in range(len(y))]
    errs = [rel_err(g, w) for g, w in zip(got, want, strict=True) if w != 0.0]
    record(f"loss:{cid}", dtype, "outputs", max(errs, default=0.0))
    labels = ["batch"] + [f"row {i}" for i in range(len(y))]
    bad = [
        f"{lab}: fastnn {g!r} Keras {w!r}"
        for lab, g, w in zip(labels, got, want, strict=True)
        if not np.isclose(g, w, rtol=FWD_TOL[dtype], atol=ATOL[dtype])
    ]
    assert not bad, f"{cid} ({dtype}):\n  " + "\n  ".join(bad)


# ----------------------------------------------------------------------------- model level

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("combo", MODEL_COMBOS, ids=[c[0] for c in MODEL_COMBOS])
def test_evaluate_matches_keras(combo, dtype):
    """Moderate logits: the fused and the clipped paths agree to rounding."""
    cid, act, units, loss, kwargs = combo
    rng = np.random.default_rng(21)
    x = rng.standard_normal((53, 5))
    y = combo_targets(rng, 53, units, loss)
    sizes = [5, 8, units]
    weights = make_weights(rng, sizes)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["relu", act], dtype, weights)
        f_loss, k_loss = twin_losses(loss, **kwargs)
        fast.compile(optimizer="sgd", loss=f_loss)
        kmodel.compile(optimizer="sgd", loss=k_loss)
        want = float(to_numpy(kmodel.evaluate(x, y, batch_size=16, verbose=0)))
    got = fast.evaluate(x, y, batch_size=16)
    assert isinstance(got, float)
    check_close(got, want, dtype, f"evaluate:{cid}", "outputs", "evaluate", FWD_TOL[dtype])


def _single_layer(dtype, units, act, kernel):
    model = fastnn.Sequential(
        [Dense(units, activation=act, input_dim=kernel.shape[0])], dtype=dtype)
    model.set_weights([kernel.astype(dtype), np.zeros(units, dtype)])
    return model


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_bce_extreme_logits_use_the_fused_path(dtype):
    """API.md: sigmoid + BCE(from_logits=False) inside evaluate is computed from the logits.

    The reference is Keras's BCE(from_logits=True) on the pre-activations, the TensorFlow-backend
    behaviour. Keras-on-torch itself clips the probabilities here and reports a capped loss
    (KERAS_NOTES.md, section 2), which is a documented difference, not a fastnn bug.
    """
    z = np.array([[40.0], [-40.0], [17.0], [3.0], [-25.0], [0.0]])
    y = np.array([[0.0], [1.0], [0.0], [0.0], [1.0], [1.0]])
    model = _single_layer(dtype, 1, "sigmoid", np.eye(1))
    model.compile(optimizer="sgd", loss=BinaryCrossentropy())
    with keras_floatx(dtype):
        want = float(to_numpy(keras.losses.BinaryCrossentropy(from_logits=True)(
            y.astype(dtype), z.astype(dtype))))
    got = model.evaluate(z, y)
    assert np.isclose(got, want, rtol=FWD_TOL[dtype]), f"fastnn {got} vs fused {want}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["cce", "scce"])
def test_softmax_crossentropy_extreme_logits_use_the_fused_path(loss, dtype):
    z = np.array([[40.0, -40.0, 0.0], [-1e3, 1e3, 0.0], [5.0, 5.0, 5.0], [30.0, 0.0, -30.0]])
    labels = np.array([1, 0, 2, 2])
    y = labels if loss == "scce" else np.eye(3)[labels]
    model = _single_layer(dtype, 3, "softmax", np.eye(3))
    f_loss, _ = twin_losses(loss)
    model.compile(optimizer="sgd", loss=f_loss)
    with keras_floatx(dtype):
        _, k_logits = twin_losses(loss, from_logits=True)
        want = float(to_numpy(k_logits(y, z.astype(dtype))))
    got = model.evaluate(z, y)
    assert np.isclose(got, want, rtol=FWD_TOL[dtype]), f"fastnn {got} vs fused {want}"
