"""MeanAbsoluteError, Huber and the L1 / L2 / L1L2 regularizers: fastnn against Keras 3.

Loss values on their own (every row as well as the batch, with sample weights, on both sides
of Huber's delta and exactly at it), the regularizers' penalty values and identifiers, and
training runs whose weights and History must agree to 1e-4 (float32) / 1e-9 (float64).
Evaluate and the Adam combo runs for MAE and Huber are in the shared MODEL_COMBOS table
(test_forward_and_losses.py, test_training.py).
"""

import numpy as np
import pytest

pytest.importorskip("keras")

import keras
from _kparity import (
    DTYPES,
    FWD_TOL,
    OPTIMIZERS,
    PENALTIES,
    check_close,
    check_history,
    check_weights,
    combo_targets,
    compile_twins,
    fit_twins,
    keras_floatx,
    make_weights,
    record,
    rel_err,
    to_numpy,
    twin_losses,
    twin_models,
)
from keras.src.regularizers import ALL_OBJECTS_DICT as KERAS_REGULARIZER_NAMES

import fastnn._kernels as kernels
from fastnn import losses as flosses
from fastnn import regularizers as freg

N_ROWS, N_FEATURES, BATCH, EPOCHS = 70, 6, 16, 6


# ----------------------------------------------------------------------------- loss values

def _regression_cases():
    """(id, loss name, kwargs, y_true, y_pred); binary fractions where values are exact."""
    e = np.array([[0.0, 0.5, -0.5, 1.0], [-1.0, 3.0, -3.0, 0.25]])  # |e| at and around 1
    y = np.array([[0.25, -1.0, 2.0, 0.0], [1.5, 0.0, -0.75, 4.0]])
    yield "mae-exact", "mae", {}, y, y + e
    yield "huber-at-delta", "huber", {}, y, y + e
    yield "huber-delta-0.5", "huber", {"delta": 0.5}, y, y + e
    yield "huber-delta-3", "huber", {"delta": 3.0}, y, y + e
    rng = np.random.default_rng(17)
    y, p = rng.standard_normal((9, 3)), 2 * rng.standard_normal((9, 3))
    yield "mae-random", "mae", {}, y, p
    yield "huber-random", "huber", {}, y, p
    yield "huber-random-0.2", "huber", {"delta": 0.2}, y, p
    yield "mae-1col", "mae", {}, y[:, :1], p[:, :1]
    yield "huber-1d-target", "huber", {}, y[:, 0], p[:, :1]
    yield "mae-large", "mae", {}, 1e4 * y, -1e4 * p
    yield "huber-large", "huber", {"delta": 2.0}, 1e4 * y, -1e4 * p


CASES = list(_regression_cases())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "sample_weight"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_loss_object_matches_keras(case, weighted, dtype):
    """The batch, then each row on its own, so that no row hides in a mean."""
    cid, name, kwargs, y, p = case
    y, p = np.asarray(y, dtype), np.asarray(p, dtype)
    n = len(y)
    sw = np.linspace(0.0, 2.0, n).astype(dtype) if weighted else None
    with keras_floatx(dtype):
        f_loss, k_loss = twin_losses(name, **kwargs)
        want = [float(to_numpy(k_loss(y, p, sample_weight=sw)))]
        want += [float(to_numpy(k_loss(y[i:i + 1], p[i:i + 1]))) for i in range(n)]
    got = [float(f_loss(y, p, sample_weight=sw))]
    got += [float(f_loss(y[i:i + 1], p[i:i + 1])) for i in range(n)]
    record(f"loss:{cid}", dtype, "outputs",
           max((rel_err(g, w) for g, w in zip(got, want, strict=True) if w), default=0.0))
    bad = [f"{i - 1 if i else 'batch'}: fastnn {g!r} Keras {w!r}"
           for i, (g, w) in enumerate(zip(got, want, strict=True))
           if not np.isclose(g, w, rtol=FWD_TOL[dtype], atol=0)]
    assert not bad, f"{cid} ({dtype}):\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_loss_gradient_matches_keras(case, dtype):
    """d loss / d y_pred, including the subgradient at e = 0 and the branch at |e| = delta."""
    torch = pytest.importorskip("torch")
    _, name, kwargs, y, p = case
    y, p = np.asarray(y, dtype), np.asarray(p, dtype)
    with keras_floatx(dtype):
        f_loss, k_loss = twin_losses(name, **kwargs)
        pt = torch.tensor(p, requires_grad=True)
        k_loss(torch.tensor(y), pt).backward()
        want = pt.grad.numpy()
    got = np.full_like(p, np.nan)
    getattr(kernels, name)(p, y, None, 1.0 / len(p), got, *f_loss._kernel_params())
    np.testing.assert_array_equal(got, want)  # exact: every value is a binary fraction


# ----------------------------------------------------------------------------- regularizers

def test_regularizer_names_match_keras():
    """regularizers.get accepts exactly Keras 3's names for L1, L2 and L1L2."""
    keras_names = {name for name, cls in KERAS_REGULARIZER_NAMES.items()
                   if cls.__name__ in ("L1", "L2", "L1L2")}
    assert keras_names == {"L1", "L2", "L1L2", "l1", "l2", "l1l2"}
    for name in keras_names:
        with keras_floatx("float64"):  # Keras's L1 keeps its factor as a floatx tensor
            got, want = freg.get(name), keras.regularizers.get(name)
            assert type(got).__name__ == type(want).__name__
            assert got.get_config() == {k: float(v) for k, v in want.get_config().items()}
    for name in ("l1_l2", "L1_L2"):  # Keras 3.15 refuses these; so does fastnn
        with pytest.raises(ValueError):
            keras.regularizers.get(name)
        with pytest.raises(ValueError):
            freg.get(name)
    assert keras.regularizers.l1_l2 is keras.regularizers.L1L2 and freg.l1_l2 is freg.L1L2
    assert keras.regularizers.l1 is keras.regularizers.L1 and freg.l1 is freg.L1
    assert keras.regularizers.l2 is keras.regularizers.L2 and freg.l2 is freg.L2


def test_regularizer_defaults_match_keras():
    with keras_floatx("float64"):  # Keras's L1 stores its factor as a floatx tensor
        pairs = [(freg.L1(), keras.regularizers.L1()), (freg.L2(), keras.regularizers.L2()),
                 (freg.L1L2(), keras.regularizers.L1L2()),
                 (freg.L1L2(l2=0.5), keras.regularizers.L1L2(l2=0.5))]
        for ours, theirs in pairs:
            assert ours.get_config() == {k: float(v) for k, v in theirs.get_config().items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, kwargs", [("L1", {"l1": 0.3}), ("L2", {"l2": 0.2}),
                                         ("L1L2", {"l1": 0.1, "l2": 0.4}), ("L1L2", {})])
def test_regularizer_value_matches_keras(cls, kwargs, dtype):
    w = np.random.default_rng(3).standard_normal((7, 5)).astype(dtype)
    w[0, :2] = 0
    with keras_floatx(dtype):
        want = float(to_numpy(getattr(keras.regularizers, cls)(**kwargs)(
            keras.ops.convert_to_tensor(w))))
    got = getattr(freg, cls)(**kwargs)(w)
    np.testing.assert_allclose(got, want, rtol=FWD_TOL[dtype])


# ----------------------------------------------------------------------------- training

# id: (hidden widths and output width, activations, loss, loss kwargs)
PROBLEMS = {
    "tanh+mse": ([8, 2], ["tanh", "linear"], "mse", {}),
    "softmax+scce": ([8, 5, 3], ["relu", "tanh", "softmax"], "scce", {}),
}


def _train(dtype, sizes, acts, loss, loss_kwargs, x, y, weights, opt, group, penalty=None,
           sample_weight=None):
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, acts, dtype, weights, penalty=penalty)
        compile_twins(fast, kmodel, opt, loss, loss_kwargs)
        kw = {} if sample_weight is None else {"sample_weight": sample_weight}
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=EPOCHS, batch_size=BATCH, **kw)
        check_history(f_hist, k_hist, dtype, group)
        k_weights = [np.asarray(w) for w in kmodel.get_weights()]
        k_eval = float(to_numpy(kmodel.evaluate(x, y, verbose=0)))
    check_weights(fast, k_weights, dtype, group)
    check_close(fast.evaluate(x, y), k_eval, dtype, group, "outputs", "evaluate after fit")
    return fast


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["sgd_momentum", "adam_custom"])
@pytest.mark.parametrize("penalty", sorted(PENALTIES))
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_regularized_training_matches_keras(problem, penalty, opt, dtype):
    hidden, acts, loss, loss_kwargs = PROBLEMS[problem]
    rng = np.random.default_rng(81)
    x = rng.standard_normal((N_ROWS, N_FEATURES))
    sizes = [N_FEATURES] + hidden
    y = combo_targets(rng, N_ROWS, sizes[-1], loss)
    weights = make_weights(rng, sizes)
    fast = _train(dtype, sizes, acts, loss, loss_kwargs, x, y, weights, opt,
                  group=f"penalty:{penalty}", penalty=penalty)
    # the penalty is visible: the same run without it ends elsewhere
    with keras_floatx(dtype):
        plain, _ = twin_models(sizes, acts, dtype, weights)
    plain.compile(optimizer=OPTIMIZERS[opt][0](), loss=twin_losses(loss, **loss_kwargs)[0])
    plain.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0)
    assert rel_err(plain.get_weights()[0], fast.get_weights()[0]) > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["sgd", "sgd_nesterov", "adam_default"])
@pytest.mark.parametrize("loss, loss_kwargs", [("mae", {}), ("huber", {}),
                                               ("huber", {"delta": 0.25})],
                         ids=["mae", "huber", "huber-0.25"])
def test_regression_loss_training_matches_keras(loss, loss_kwargs, opt, dtype):
    rng = np.random.default_rng(91)
    x = rng.standard_normal((N_ROWS, N_FEATURES))
    sizes = [N_FEATURES, 7, 3]
    y = 1.5 * combo_targets(rng, N_ROWS, 3, loss)
    sw = rng.uniform(0.0, 2.0, N_ROWS)
    weights = make_weights(rng, sizes)
    _train(dtype, sizes, ["tanh", "linear"], loss, loss_kwargs, x, y, weights, opt,
           group=f"{loss}:{opt}", penalty="all", sample_weight=sw)


def test_huber_config_carries_delta_unlike_keras():
    """Keras 3.15's Huber.get_config() leaves delta out (so a reloaded Keras Huber has
    delta=1); fastnn's keeps it, so that a saved model trains on with its own delta."""
    assert "delta" not in keras.losses.Huber(delta=0.5).get_config()
    assert flosses.Huber(delta=0.5).get_config()["delta"] == 0.5
    assert flosses.from_config(flosses.Huber(delta=0.5).get_config()).delta == 0.5
