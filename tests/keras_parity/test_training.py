"""Training: fastnn against Keras after several epochs, same initial weights, no shuffling.

Every weight must agree to a relative error of 1e-4 in float32 and 1e-9 in float64, and so must
the History losses. The data leave a partial last batch (70 rows, batches of 16: 4 x 16 + 6).
"""

import numpy as np
import pytest

pytest.importorskip("keras")

from _kparity import (
    DTYPES,
    MODEL_COMBOS,
    OPTIMIZERS,
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

N_ROWS, N_FEATURES, BATCH, EPOCHS = 70, 6, 16, 6
L2_FACTOR = 0.0078125  # exact in float32

PROBLEMS = {
    # id: (sizes after the input width, activations, loss, loss kwargs)
    "softmax+scce": ([8, 5, 3], ["relu", "tanh", "softmax"], "scce", {}),
    "tanh+mse": ([8, 2], ["tanh", "linear"], "mse", {}),
}


def _data(seed, n=N_ROWS, d=N_FEATURES):
    rng = np.random.default_rng(seed)
    return rng, rng.standard_normal((n, d))


def _run(dtype, sizes, acts, loss, loss_kwargs, y, x, weights, opt, l2=0.0, fits=((EPOCHS, BATCH),),
         group=None, metrics=None):
    """Train twins with one or more successive fit calls; compare weights and History."""
    group = group or opt
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, acts, dtype, weights, l2=l2)
        compile_twins(fast, kmodel, opt, loss, loss_kwargs, metrics=metrics)
        for epochs, batch_size in fits:
            f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=epochs, batch_size=batch_size)
            check_history(f_hist, k_hist, dtype, group)
        k_weights = [np.asarray(w) for w in kmodel.get_weights()]
        k_pred = to_numpy(kmodel.predict(x, verbose=0))
        k_eval = float(to_numpy(kmodel.evaluate(x, y, verbose=0)))
    check_weights(fast, k_weights, dtype, group)
    check_close(fast.predict(x), k_pred, dtype, group, "outputs", "predict after fit")
    check_close(fast.evaluate(x, y), k_eval, dtype, group, "outputs", "evaluate after fit")
    return fast, f_hist


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, L2_FACTOR], ids=["noL2", "L2"])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_optimizer_training_matches_keras(opt, problem, l2, dtype):
    hidden, acts, loss, loss_kwargs = PROBLEMS[problem]
    rng, x = _data(31)
    sizes = [N_FEATURES] + hidden
    y = combo_targets(rng, N_ROWS, sizes[-1], loss)
    weights = make_weights(rng, sizes)
    _run(dtype, sizes, acts, loss, loss_kwargs, y, x, weights, opt, l2=l2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("combo", MODEL_COMBOS, ids=[c[0] for c in MODEL_COMBOS])
def test_activation_loss_combo_training_matches_keras(combo, dtype):
    """Each output activation x loss pairing, trained with Adam (non-default settings)."""
    cid, act, units, loss, kwargs = combo
    rng, x = _data(41)
    sizes = [N_FEATURES, 7, units]
    y = combo_targets(rng, N_ROWS, units, loss)
    weights = make_weights(rng, sizes)
    _run(dtype, sizes, ["tanh", act], loss, kwargs, y, x, weights, "adam_custom",
         group=f"combo:{cid}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["adam_default", "sgd_nesterov"])
def test_second_fit_continues_optimizer_state(opt, dtype):
    """Two fit calls (3 + 3 epochs) match Keras's two calls: Adam's step count carries on."""
    hidden, acts, loss, loss_kwargs = PROBLEMS["softmax+scce"]
    rng, x = _data(51)
    sizes = [N_FEATURES] + hidden
    y = combo_targets(rng, N_ROWS, sizes[-1], loss)
    weights = make_weights(rng, sizes)
    _run(dtype, sizes, acts, loss, loss_kwargs, y, x, weights, opt,
         fits=((3, BATCH), (3, BATCH)), group=f"{opt}:two-fits")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [None, N_ROWS, 1, 13], ids=["None", "full", "1", "13"])
def test_batch_sizes_match_keras(batch_size, dtype):
    """batch_size=None means 32 (70 = 2 x 32 + 6); full batch; single rows; 13 (70 = 5x13+5)."""
    hidden, acts, loss, loss_kwargs = PROBLEMS["tanh+mse"]
    rng, x = _data(61)
    sizes = [N_FEATURES] + hidden
    y = combo_targets(rng, N_ROWS, sizes[-1], loss)
    weights = make_weights(rng, sizes)
    epochs = 1 if batch_size == 1 else 4  # 70 single-row steps already amplify f32 noise
    _run(dtype, sizes, acts, loss, loss_kwargs, y, x, weights, "sgd_momentum",
         fits=((epochs, batch_size),), group="sgd_momentum:batch-sizes")


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_metrics_match_keras(dtype):
    """Per-epoch accuracy and mse metrics: per-sample means over the epoch, as Keras."""
    rng, x = _data(71)
    sizes = [N_FEATURES, 8, 3]
    y = combo_targets(rng, N_ROWS, 3, "scce")
    weights = make_weights(rng, sizes)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, ["relu", "softmax"], dtype, weights)
        compile_twins(fast, kmodel, "adam_custom", "scce", metrics=["accuracy"])
        f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=EPOCHS, batch_size=BATCH)
    check_history(f_hist, k_hist, dtype, "metrics", keys=("loss", "accuracy"))
    f_eval = fast.evaluate(x, y, return_dict=True)
    assert set(f_eval) == {"loss", "accuracy"}, f_eval
    with keras_floatx(dtype):
        k_eval = kmodel.evaluate(x, y, verbose=0, return_dict=True)
        k_list = kmodel.evaluate(x, y, verbose=0)
    # without return_dict both return [loss, accuracy]
    f_list = fast.evaluate(x, y)
    assert isinstance(f_list, list) and isinstance(k_list, list) and len(f_list) == len(k_list)
    for key in ("loss", "accuracy"):
        check_close(f_eval[key], float(to_numpy(k_eval[key])), dtype, "metrics", "outputs",
                    f"evaluate[{key!r}]")
