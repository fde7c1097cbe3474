"""RMSprop, AdamW, gradient clipping and learning-rate schedules against Keras 3.

Same setup as test_training: twin models with identical weights, no shuffling, 70 rows in
batches of 16 (a partial last batch), several epochs; weights and History losses within 1e-4
(float32) / 1e-9 (float64).  Non-default hyper-parameters are binary fractions, exact in
float32.  Each clipping and schedule case also checks that the feature changed the result
(against the same fastnn run without it), so a no-op implementation cannot pass.
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from _kparity import (  # noqa: E402
    DTYPES,
    check_history,
    check_weights,
    combo_targets,
    fit_twins,
    keras_floatx,
    make_weights,
    twin_losses,
    twin_models,
)

from fastnn import optimizers as fopt  # noqa: E402
from fastnn.optimizers import schedules as fsched  # noqa: E402

N_ROWS, N_FEATURES, BATCH, EPOCHS = 70, 6, 16, 5
L2_FACTOR = 0.0078125
KS = keras.optimizers.schedules

PROBLEMS = {
    "softmax+scce": ([8, 5, 3], ["relu", "tanh", "softmax"], "scce"),
    "tanh+mse": ([8, 2], ["tanh", "linear"], "mse"),
}

# name -> (fastnn factory, Keras factory); each takes the keyword arguments as given
LR, RHO, MOM, EPS = 0.0078125, 0.875, 0.75, 0.0009765625
OPTIMIZERS = {
    "rmsprop_default": (fopt.RMSprop, keras.optimizers.RMSprop, {}),
    "rmsprop_custom": (fopt.RMSprop, keras.optimizers.RMSprop,
                       {"learning_rate": LR, "rho": RHO, "epsilon": EPS}),
    "rmsprop_momentum": (fopt.RMSprop, keras.optimizers.RMSprop,
                         {"learning_rate": LR, "momentum": MOM}),
    "rmsprop_centered": (fopt.RMSprop, keras.optimizers.RMSprop,
                         {"learning_rate": LR, "rho": RHO, "centered": True}),
    "rmsprop_centered_momentum": (fopt.RMSprop, keras.optimizers.RMSprop,
                                  {"learning_rate": LR, "momentum": MOM, "centered": True,
                                   "epsilon": EPS}),
    "adamw_default": (fopt.AdamW, keras.optimizers.AdamW, {}),
    "adamw_custom": (fopt.AdamW, keras.optimizers.AdamW,
                     {"learning_rate": 0.03125, "weight_decay": 0.25, "beta_1": 0.75,
                      "beta_2": 0.9375, "epsilon": EPS}),
}

# Clipping: thresholds well below the gradient norms of these problems, so clipping bites.
CLIPPED = {
    "sgd_clipnorm": (fopt.SGD, keras.optimizers.SGD, {"learning_rate": 0.25, "clipnorm": 0.0625}),
    "sgd_global_clipnorm": (fopt.SGD, keras.optimizers.SGD,
                            {"learning_rate": 0.25, "momentum": 0.5, "global_clipnorm": 0.125}),
    "sgd_clipvalue": (fopt.SGD, keras.optimizers.SGD, {"learning_rate": 0.25,
                                                       "clipvalue": 0.015625}),
    "adam_clipnorm": (fopt.Adam, keras.optimizers.Adam, {"learning_rate": 0.03125,
                                                         "clipnorm": 0.0625}),
    "adam_global_clipnorm": (fopt.Adam, keras.optimizers.Adam,
                             {"learning_rate": 0.03125, "global_clipnorm": 0.0625}),
    "rmsprop_clipvalue": (fopt.RMSprop, keras.optimizers.RMSprop,
                          {"learning_rate": LR, "clipvalue": 0.015625}),
    "adamw_clipnorm": (fopt.AdamW, keras.optimizers.AdamW,
                       {"learning_rate": 0.03125, "weight_decay": 0.25, "clipnorm": 0.0625}),
}

# Schedules: (fastnn schedule factory, Keras schedule factory, optimizer pair, other kwargs)
SCHEDULES = {
    "exponential": (lambda m: m.ExponentialDecay(0.25, 3, 0.75),
                    fopt.SGD, keras.optimizers.SGD, {"momentum": 0.5}),
    "exponential_staircase": (lambda m: m.ExponentialDecay(0.25, 4, 0.5, staircase=True),
                              fopt.SGD, keras.optimizers.SGD, {}),
    "inverse_time": (lambda m: m.InverseTimeDecay(0.03125, 2, 0.5),
                     fopt.Adam, keras.optimizers.Adam, {}),
    "inverse_time_staircase": (lambda m: m.InverseTimeDecay(0.03125, 5, 1.0, staircase=True),
                               fopt.RMSprop, keras.optimizers.RMSprop, {}),
    "piecewise": (lambda m: m.PiecewiseConstantDecay([4, 11], [0.25, 0.0625, 0.015625]),
                  fopt.SGD, keras.optimizers.SGD, {}),
    "piecewise_adamw": (lambda m: m.PiecewiseConstantDecay([5], [0.03125, 0.0078125]),
                        fopt.AdamW, keras.optimizers.AdamW, {"weight_decay": 0.25}),
}


def _problem(name, seed):
    hidden, acts, loss = PROBLEMS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_ROWS, N_FEATURES))
    sizes = [N_FEATURES] + hidden
    y = combo_targets(rng, N_ROWS, sizes[-1], loss)
    return sizes, acts, loss, x, y, make_weights(rng, sizes)


def _run(dtype, problem, f_opt, k_opt, group, l2=0.0, fits=((EPOCHS, BATCH),), seed=7):
    """Train twins (optimizers built inside keras_floatx); compare History and weights."""
    sizes, acts, loss, x, y, weights = _problem(problem, seed)
    with keras_floatx(dtype):
        fast, kmodel = twin_models(sizes, acts, dtype, weights, l2=l2)
        f_loss, k_loss = twin_losses(loss)
        fast.compile(optimizer=f_opt(), loss=f_loss)
        kmodel.compile(optimizer=k_opt(), loss=k_loss)
        for epochs, batch_size in fits:
            f_hist, k_hist = fit_twins(fast, kmodel, x, y, epochs=epochs, batch_size=batch_size)
            check_history(f_hist, k_hist, dtype, group)
        k_weights = [np.asarray(w) for w in kmodel.get_weights()]
    check_weights(fast, k_weights, dtype, group)
    return fast


def _fast_only(dtype, problem, f_opt, seed=7):
    sizes, acts, loss, x, y, weights = _problem(problem, seed)
    with keras_floatx(dtype):
        fast, _ = twin_models(sizes, acts, dtype, weights)
    fast.compile(optimizer=f_opt(), loss=twin_losses(loss)[0])
    fast.fit(x, y, epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0)
    return fast.get_weights()


def _differs(a, b):
    return any(not np.allclose(u, v, rtol=1e-3, atol=1e-6) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, L2_FACTOR], ids=["noL2", "L2"])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_new_optimizers_match_keras(opt, problem, l2, dtype):
    f_cls, k_cls, kwargs = OPTIMIZERS[opt]
    _run(dtype, problem, lambda: f_cls(**kwargs), lambda: k_cls(**kwargs), opt, l2=l2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["rmsprop_centered_momentum", "adamw_custom"])
def test_second_fit_continues_new_optimizer_state(opt, dtype):
    f_cls, k_cls, kwargs = OPTIMIZERS[opt]
    _run(dtype, "softmax+scce", lambda: f_cls(**kwargs), lambda: k_cls(**kwargs),
         f"{opt}:two-fits", fits=((3, BATCH), (2, BATCH)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CLIPPED))
def test_gradient_clipping_matches_keras(case, problem, dtype):
    f_cls, k_cls, kwargs = CLIPPED[case]
    _run(dtype, problem, lambda: f_cls(**kwargs), lambda: k_cls(**kwargs), f"clip:{case}",
         l2=L2_FACTOR)
    plain = {k: v for k, v in kwargs.items()
             if k not in ("clipnorm", "clipvalue", "global_clipnorm")}
    assert _differs(_fast_only(dtype, problem, lambda: f_cls(**kwargs)),
                    _fast_only(dtype, problem, lambda: f_cls(**plain))), "clipping did nothing"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(SCHEDULES))
def test_schedules_match_keras(case, problem, dtype):
    make, f_cls, k_cls, kwargs = SCHEDULES[case]
    # two fits: the schedule continues from optimizer.iterations, as in Keras
    _run(dtype, problem, lambda: f_cls(learning_rate=make(fsched), **kwargs),
         lambda: k_cls(learning_rate=make(KS), **kwargs), f"schedule:{case}",
         fits=((3, BATCH), (2, BATCH)))
    first = make(fsched)(0)
    assert _differs(_fast_only(dtype, problem, lambda: f_cls(learning_rate=make(fsched),
                                                             **kwargs)),
                    _fast_only(dtype, problem, lambda: f_cls(learning_rate=first, **kwargs)))


@pytest.mark.parametrize("case", sorted(SCHEDULES))
def test_schedule_values_match_keras(case):
    """The schedule's value at each step, including boundaries and staircase edges."""
    make = SCHEDULES[case][0]
    ours, theirs = make(fsched), make(KS)
    steps = list(range(0, 25)) + [100, 1000]
    got = np.array([ours(s) for s in steps])
    with keras_floatx("float64"):
        want = np.array([float(keras.ops.convert_to_numpy(theirs(s))) for s in steps])
    np.testing.assert_allclose(got, want, rtol=1e-6)  # Keras evaluates in float32
    assert ours.get_config() == {k: v for k, v in theirs.get_config().items()}
