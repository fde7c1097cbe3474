"""fastnn._kernels.engine.Engine vs reference.Engine: whole training runs, inference, contract.

Layer stacks are described by building a fastnn.Sequential and taking its
``_specs()`` (the layer dicts the model hands to the engine); the parameters are
then drawn from the test's own generator, so the initialisers do not matter.
"""
import textwrap

import numpy as np
import pytest
from fastnn._kernels.engine import _probe_unknown_kind, _workspace_layout

import fastnn
import fastnn._kernels as kernels
from fastnn._kernels import LOSSES, METRICS, reference
from fastnn.layers import (
    Activation,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPooling1D,
    MaxPooling2D,
    Normalization,
    ReLU,
    Softmax,
)
from fastnn.regularizers import L1, L1L2, L2

TWINS = (kernels.Engine, reference.Engine)


def _norm(width, lo=-0.5, hi=0.5):
    return Normalization(mean=np.linspace(lo, hi, width), variance=np.linspace(0.5, 2.0, width))


# name: (layers factory, n_in, loss kernel, fused, target kind, metrics)
STACKS = {
    "sparse-fused": (lambda: [_norm(6), Dense(7, "relu", kernel_regularizer=L2(0.01)),
                              Dropout(0.3), Dense(5, "tanh"), Dense(4, "softmax")],
                     6, "sparse_softmax_xent", True, "labels", ["sparse_categorical_accuracy"]),
    "sparse-probs": (lambda: [_norm(6), Dense(7, "relu", kernel_regularizer=L2(0.01)),
                              Dropout(0.3), Dense(5, "tanh"), Dense(4, "softmax")],
                     6, "sparse_cce", False, "labels", ["sparse_categorical_accuracy"]),
    "sparse-logits": (lambda: [Dense(6, "sigmoid"), Dense(4, kernel_regularizer=L2(0.02))],
                      5, "sparse_softmax_xent", False, "labels", ["sparse_categorical_accuracy"]),
    "soft-fused": (lambda: [Dense(6, "swish"), Dense(3, "softmax")],
                   4, "softmax_xent", True, "soft", ["categorical_accuracy", "mse"]),
    "soft-probs": (lambda: [Dense(6, "leaky_relu", use_bias=False), Dropout(0.5),
                            Dense(3, "softmax")],
                   4, "cce", False, "soft", ["categorical_accuracy", "mae"]),
    "binary-fused": (lambda: [Dense(5, "tanh"), Dense(2, "sigmoid")],
                     3, "sigmoid_bce", True, "binary", ["binary_accuracy"]),
    "binary-probs": (lambda: [Dense(5, "relu"), Dense(1, "sigmoid")],
                     3, "bce", False, "binary", ["binary_accuracy", "mse"]),
    "binary-logits": (lambda: [Dropout(0.2), Dense(5, "softmax"), Dense(3)],
                      4, "sigmoid_bce", False, "binary", ["binary_accuracy"]),
    "regression": (lambda: [_norm(5), Dense(8, "relu", kernel_regularizer=L2(0.01)),
                            Dense(1, kernel_regularizer=L2(0.001))],
                   5, "mse", False, "dense", ["mse", "mae"]),
    "norm-mid-drop-last": (lambda: [Dense(6, "tanh"), _norm(6, -0.2, 0.3),
                                    Dense(3, "sigmoid"), Dropout(0.25)],
                           4, "mse", False, "dense", ["mae"]),
    "width-1": (lambda: [Dense(1, "relu"), Dense(1)], 1, "mse", False, "dense", []),
    # every penalty kind on kernels and biases (the first layer's bias gets L1 + L2)
    "penalties-mae": (lambda: [_norm(5), Dense(8, "tanh", kernel_regularizer=L1(0.01),
                                               bias_regularizer=L1L2(0.02, 0.03)),
                               Dense(3, kernel_regularizer=L1L2(0.005, 0.01),
                                     bias_regularizer=L2(0.05))],
                      5, "mae", False, "dense", ["mae"]),
    "huber": (lambda: [Dense(6, "relu", kernel_regularizer=L2(0.01), bias_regularizer=L1(0.01)),
                       Dense(2)],
              4, "huber", False, "dense", ["mse"]),
    # activation layers (kind "activation"), fused as the output layer or not
    "act-layers-fused": (lambda: [Dense(6), ReLU(), Dense(5), LeakyReLU(0.2), Dense(4),
                                  Softmax()],
                         5, "sparse_softmax_xent", True, "labels",
                         ["sparse_categorical_accuracy"]),
    "act-layers-probs": (lambda: [Dense(6), Activation("tanh"), Dropout(0.3), Dense(3),
                                  Activation("sigmoid")],
                         4, "bce", False, "binary", ["binary_accuracy"]),
    "act-first-soft-fused": (lambda: [Activation("swish"), Dense(4), Activation("softmax")],
                             3, "softmax_xent", True, "soft", ["categorical_accuracy"]),
    "act-sigmoid-fused": (lambda: [_norm(3), Dense(3), Activation("leaky_relu"), Dense(2),
                                   Activation("sigmoid")],
                          3, "sigmoid_bce", True, "binary", ["binary_accuracy"]),
    "act-softmax-mse": (lambda: [Dense(4, "tanh"), Softmax()], 3, "mse", False, "dense",
                        ["mae"]),
    # convolution stacks: n_in is the input shape (batch axis excluded)
    "conv2d-sparse-fused": (lambda: [Conv2D(3, 3, padding="same", activation="relu",
                                            kernel_regularizer=L2(0.01)),
                                     MaxPooling2D(padding="same"),
                                     Conv2D(4, (2, 3), strides=2, activation="tanh"),
                                     Flatten(), Dropout(0.2), Dense(3, "softmax")],
                            (7, 6, 2), "sparse_softmax_xent", True, "labels",
                            ["sparse_categorical_accuracy"]),
    "conv1d-ecg": (lambda: [Conv1D(2, 20, strides=10, activation="relu"),
                            Conv1D(1, 5, strides=2, activation="sigmoid", padding="same"),
                            Flatten(), Dense(1, "sigmoid")],
                   (100, 1), "sigmoid_bce", True, "binary", ["binary_accuracy"]),
    "conv1d-out-fused": (lambda: [MaxPooling1D(3, strides=1, padding="same"),
                                  Conv1D(2, 3, strides=2, activation="sigmoid", padding="same",
                                         kernel_regularizer=L1L2(0.01, 0.02),
                                         bias_regularizer=L2(0.1))],
                         (9, 2), "sigmoid_bce", True, "binary", ["binary_accuracy"]),
}

OPTIMIZERS = {
    "adam": dict(kind="adam", beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "sgd": dict(kind="sgd"),
    "momentum": dict(kind="sgd", momentum=0.9),
    "nesterov": dict(kind="sgd", momentum=0.8, nesterov=True),
    "rmsprop": dict(kind="rmsprop", rho=0.9, epsilon=1e-7),
    "rmsprop-centered-momentum": dict(kind="rmsprop", rho=0.8, momentum=0.5, centered=True,
                                      epsilon=1e-7),
    "adamw": dict(kind="adamw", weight_decay=0.5, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    # thresholds below these problems' gradient norms, so clipping acts
    "adam-clipnorm": dict(kind="adam", clipnorm=0.05),
    "momentum-global-clipnorm": dict(kind="sgd", momentum=0.9, global_clipnorm=0.1),
    "sgd-clipvalue": dict(kind="sgd", clipvalue=0.01),
}


class Case:
    """One layer stack with its parameters and data, ready to hand to either twin."""

    def __init__(self, stack, dtype, rng, n=23, weighted=False):
        factory, n_in, self.loss, self.fused, self.target, metrics = STACKS[stack]
        model = fastnn.Sequential(factory(), dtype=dtype)
        model.build((None, *n_in) if isinstance(n_in, tuple) else n_in)
        n_in = model._n_in
        self.dtype = np.dtype(dtype)
        self.specs = model._specs()
        self.segments = model._variable_segments()
        self.params = (0.6 * rng.standard_normal(model._params.shape)).astype(dtype)
        self.aux = model._aux.copy() if model._aux.shape[0] else np.zeros(1, dtype)
        self.metrics = [METRICS[name] for name in metrics]
        self.n_out = self.specs[-1]["n_out"]
        self.rng = rng
        self.x, self.y, self.labels, self.sw = self.data(n, n_in, weighted)
        self.shuffled = rng.permutation(n).astype(np.int64)  # a second epoch's row order

    def data(self, n, n_in, weighted):
        rng, dtype, m = self.rng, self.dtype, self.n_out
        x = rng.standard_normal((n, n_in)).astype(dtype)
        y = labels = None
        if self.target == "labels":
            labels = rng.integers(0, m, n).astype(np.intc)
        elif self.target == "soft":
            y = rng.dirichlet(np.ones(m), n).astype(dtype)
        elif self.target == "binary":
            y = rng.integers(0, 2, (n, m)).astype(dtype)
        else:
            y = rng.standard_normal((n, m)).astype(dtype)
        sw = rng.uniform(0.0, 2.0, n).astype(dtype) if weighted else None
        return x, y, labels, sw

    def engine(self, twin, opt=None, loss=None, fused=None, metrics=None):
        """(engine, its params, its optimizer state) on fresh copies of the parameters."""
        params = self.params.copy()
        loss = self.loss if loss is None else loss
        fused = self.fused if fused is None else fused
        metrics = self.metrics if metrics is None else metrics
        engine = twin(self.specs, params, self.aux.copy(), LOSSES[loss], fused, list(metrics),
                      0.5)
        state = (np.zeros_like(params), np.zeros_like(params), np.zeros_like(params))
        if opt is not None:
            cfg = dict(OPTIMIZERS[opt])
            kind = cfg.pop("kind")
            if kind != "sgd" and self.dtype == np.float32:
                # Adam's step lr * m_hat / (sqrt(v_hat) + eps) is ~lr * sign(g) for any
                # |g| >> eps, so its sensitivity to g is lr * eps' / (|g| + eps')^2 with
                # eps' = eps / sqrt(1 - beta_2) at step 1.  A float32 gradient entry that
                # is a cancelling sum (|g| ~ 1e-6, rounding ~ 2e-9) then moves the weight
                # by ~7e-6 more in one twin than in the other: measured, and the formula
                # reproduces it.  That is Adam, not the engine (the Adam kernel itself is
                # tested at the default epsilon in test_optim.py), so float32 engine runs
                # use epsilon = 1e-3, which bounds the amplification by ~lr / eps'.
                # RMSprop's first step lr g / sqrt((1 - rho) g^2 + eps) is sign-like too.
                cfg["epsilon"] = 1e-3
            m = state[0] if kind != "sgd" or cfg.get("momentum") else None
            v = state[1] if kind in ("adam", "adamw") or (
                kind == "rmsprop" and cfg.get("momentum")) else None
            if cfg.get("centered"):
                cfg["average_grad"] = state[2]
            if cfg.get("clipnorm"):
                cfg["segments"] = self.segments
            engine.set_optimizer(kind, m, v, **cfg)
        return engine, params, state

    def stats(self):
        return np.zeros(2 + 2 * len(self.metrics))


def _assert_twins_agree(got, want, tol):
    assert got.keys() == want.keys()
    for key in got:
        if key == "step":
            assert got[key] == want[key]
        else:
            np.testing.assert_allclose(got[key], want[key], err_msg=key, **tol)


def _train_run(case, twin, opt, batch_size, lr=0.02, seed=12345):
    """Epoch 1: one call over every batch; epoch 2: one call per batch (callback path)."""
    engine, params, (m, v, avg) = case.engine(twin, opt)
    n = case.x.shape[0]
    n_batches = -(-n // batch_size)
    lrs = np.linspace(lr, lr / 2, n_batches)
    inputs = [a.copy() for a in (case.x, case.y, case.labels, case.sw, lrs) if a is not None]
    stats, step = case.stats(), 0
    order = np.arange(n, dtype=np.int64)
    step = engine.train(case.x, case.y, case.labels, case.sw, order, batch_size, 0, n_batches,
                        lrs, step, seed, stats)
    order = case.shuffled.copy()
    order_before = order.copy()
    stats2 = case.stats()
    for b in range(n_batches):
        step = engine.train(case.x, case.y, case.labels, case.sw, order, batch_size, b, 1,
                            lrs[b:], step, seed, stats2)
    np.testing.assert_array_equal(order, order_before)
    after = [a for a in (case.x, case.y, case.labels, case.sw, lrs) if a is not None]
    for a, a0 in zip(after, inputs, strict=True):
        np.testing.assert_array_equal(a, a0)
    return dict(step=step, params=params, m=m, v=v, avg=avg, stats=stats, stats2=stats2,
                grads=engine.grads.copy(), l2=engine.penalty())


# ----------------------------------------------------------------------------- training

@pytest.mark.parametrize("weighted", [False, True], ids=["sw=None", "sw"])
@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("stack", STACKS)
def test_train_matches_reference(stack, opt, weighted, dtype, rng, tol):
    case = Case(stack, dtype, rng, n=23, weighted=weighted)
    # 23 rows in batches of 8: the last batch has 7 rows.  Two epochs (one call, then
    # one call per batch) = 6 optimizer steps; params, optimizer state, stats, the last
    # gradient and the L2 penalty are compared (see Case.engine for float32 Adam).
    got = _train_run(case, kernels.Engine, opt, batch_size=8)
    want = _train_run(case, reference.Engine, opt, batch_size=8)
    assert got["step"] == 6
    assert got["stats"][1] == got["stats2"][1] == 23
    for name in ("stats", "stats2"):
        for k in range(len(case.metrics)):
            assert got[name][3 + 2 * k] == 23   # metrics are unweighted: weight = rows
    _assert_twins_agree(got, want, tol)
    assert not np.array_equal(got["params"], case.params)


@pytest.mark.parametrize("n, batch_size", [(1, 1), (5, 64), (9, 1), (40, 40)],
                         ids=["one-row", "batch>n", "batch=1", "full-batch"])
@pytest.mark.parametrize("stack", ["sparse-fused", "soft-probs", "norm-mid-drop-last"])
def test_train_batch_shapes_match_reference(stack, n, batch_size, dtype, rng, tol):
    case = Case(stack, dtype, rng, n=n, weighted=True)
    got = _train_run(case, kernels.Engine, "adam", batch_size)
    want = _train_run(case, reference.Engine, "adam", batch_size)
    _assert_twins_agree(got, want, tol)


def test_workspace_grows_between_calls(dtype, rng, tol):
    # a larger batch after a smaller one re-sizes the workspace (reserve) mid-run
    case = Case("sparse-fused", dtype, rng, n=30)
    out = []
    for twin in TWINS:
        engine, params, _ = case.engine(twin, "sgd")
        order, stats = np.arange(30, dtype=np.int64), case.stats()
        for batch_size in (3, 10, 30):
            engine.train(case.x, None, case.labels, None, order, batch_size, 0, 1,
                         np.array([0.05]), 0, 1, stats)
        out.append((params, stats))
    np.testing.assert_allclose(out[0][0], out[1][0], **tol)
    np.testing.assert_allclose(out[0][1], out[1][1], **tol)


def test_dropout_masks_depend_on_seed_and_step_only(dtype, rng):
    case = Case("binary-logits", dtype, rng, n=16)
    results = {}
    for seed in (1, 1, 2):
        engine, params, _ = case.engine(kernels.Engine, "sgd")
        engine.train(case.x, case.y, None, None, np.arange(16, dtype=np.int64), 16, 0, 1,
                     np.array([0.1]), 0, seed, case.stats())
        results.setdefault(seed, []).append(params)
    np.testing.assert_array_equal(results[1][0], results[1][1])  # bit-identical
    assert not np.array_equal(results[1][0], results[2][0])       # the mask changed


def test_layer_seed_replaces_the_fit_seed_in_both_twins(dtype, rng, tol):
    """A Dropout spec with "seed": its masks ignore the fit's seed (and the layer's
    position), the twins agree, and another layer seed gives other masks."""
    case = Case("binary-logits", dtype, rng, n=16)   # Dropout(0.2) is the first layer
    results = {}
    for twin in TWINS:
        for layer_seed, fit_seed in ((7, 1), (7, 99), (8, 1)):
            case.specs[0]["seed"] = layer_seed
            engine, params, _ = case.engine(twin, "sgd")
            engine.train(case.x, case.y, None, None, np.arange(16, dtype=np.int64), 8, 0, 2,
                         np.array([0.1, 0.1]), 3, fit_seed, case.stats())
            results[twin, layer_seed, fit_seed] = params
        del case.specs[0]["seed"]
        np.testing.assert_array_equal(results[twin, 7, 1], results[twin, 7, 99])
        assert not np.array_equal(results[twin, 7, 1], results[twin, 8, 1])
    np.testing.assert_allclose(results[kernels.Engine, 7, 1], results[reference.Engine, 7, 1],
                               **tol)
    layers, params, aux = _simple()
    for twin in TWINS:
        for bad in (-1, 2 ** 64, 1.5, "1"):
            with pytest.raises(ValueError, match="layer seed"):
                twin([dict(layers[0], kind="dropout", n_out=layers[0]["n_in"], seed=bad)],
                     params, aux, LOSSES["mse"], False, [], 0.5)
        with pytest.raises(ValueError, match="layer seed"):  # only Dropout takes one
            twin([dict(layers[0], seed=1), layers[1]], params, aux, LOSSES["mse"], False, [],
                 0.5)


@pytest.mark.parametrize("pair", [("sparse_softmax_xent", "softmax_xent"),
                                  ("sparse_cce", "cce"),
                                  ("sparse_softmax_xent", "cce")],
                         ids=["fused", "probs", "fused-vs-probs"])
def test_labels_and_one_hot_train_alike(pair, dtype, rng, tol):
    # sparse vs one-hot targets, and the fused softmax/CCE vs softmax then CCE
    case = Case("sparse-fused", dtype, rng, n=20, weighted=True)
    one_hot = np.eye(case.n_out, dtype=dtype)[case.labels]
    for twin in TWINS:
        out = []
        for loss, y, labels in ((pair[0], None, case.labels), (pair[1], one_hot, None)):
            fused = loss.endswith("xent")
            # no metrics: sparse_categorical_accuracy would need labels on both sides
            engine, params, _ = case.engine(twin, "adam", loss=loss, fused=fused, metrics=[])
            stats = np.zeros(2)
            engine.train(case.x, y, labels, case.sw, np.arange(20, dtype=np.int64), 7, 0, 3,
                         np.full(3, 0.01), 0, 3, stats)
            out.append((params, stats[:2]))
        np.testing.assert_allclose(out[0][0], out[1][0], **tol)
        np.testing.assert_allclose(out[0][1], out[1][1], rtol=tol["rtol"])


@pytest.mark.parametrize("stack", ["regression", "penalties-mae", "huber"])
def test_penalty_matches_hand_sum(stack, dtype, rng, tol):
    case = Case(stack, dtype, rng)
    want = 0.0
    for spec in case.specs:
        if spec["kind"] != "dense":
            continue
        size = spec["n_in"] * spec["n_out"]
        w = case.params[spec["w_off"]:spec["w_off"] + size].astype(np.float64)
        b = case.params[spec["b_off"]:spec["b_off"] + spec["n_out"]].astype(np.float64)
        want += spec["l1"] * np.abs(w).sum() + spec["l2"] * (w ** 2).sum()
        want += spec["bias_l1"] * np.abs(b).sum() + spec["bias_l2"] * (b ** 2).sum()
    assert want > 0
    for twin in TWINS:
        engine, _, _ = case.engine(twin)
        np.testing.assert_allclose(engine.penalty(), want, rtol=tol["rtol"])


@pytest.mark.parametrize("delta", [0.25, 1.0, 4.0])
def test_huber_delta_reaches_the_engine(delta, dtype, rng, tol):
    case = Case("huber", dtype, rng, n=17)
    out = []
    for twin in TWINS:
        params = case.params.copy()
        engine = twin(case.specs, params, case.aux.copy(), LOSSES["huber"], False, [], 0.5,
                      delta)
        engine.set_optimizer("sgd", None, None)
        stats = np.zeros(2)
        engine.evaluate(case.x, case.y, None, None, stats)
        engine.train(case.x, case.y, None, None, np.arange(17, dtype=np.int64), 5, 0, 4,
                     np.full(4, 0.1), 0, 0, np.zeros(2))
        out.append((stats[0], params))
        # the loss value is Keras's Huber of the engine's own predictions
        pred = np.empty((17, 2), dtype)
        twin(case.specs, case.params.copy(), case.aux.copy(), LOSSES["huber"], False, [], 0.5,
             delta).forward(case.x, pred)
        e = np.abs(pred.astype(np.float64) - case.y)
        rows = np.where(e <= delta, 0.5 * e * e, delta * e - 0.5 * delta * delta).mean(axis=1)
        np.testing.assert_allclose(stats[0], rows.sum(), rtol=10 * tol["rtol"])
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=tol["rtol"])
    np.testing.assert_allclose(out[0][1], out[1][1], **tol)


# ----------------------------------------------------------------------------- inference

@pytest.mark.parametrize("n", [1, 23, 1500], ids=["1", "23", "1500-chunked"])
@pytest.mark.parametrize("stack", STACKS)
def test_forward_and_evaluate_match_reference(stack, n, dtype, rng, tol):
    case = Case(stack, dtype, rng, n=n, weighted=True)
    before = [a.copy() for a in (case.x, case.y, case.labels, case.sw) if a is not None]
    outs, evals = [], []
    for twin in TWINS:
        engine, params, _ = case.engine(twin)
        p0 = params.copy()
        out = np.full((n, case.n_out), np.nan, dtype)
        assert engine.forward(case.x, out) is out
        inferred = engine.infer(case.x)  # the low-latency path behind model(x)
        assert inferred.dtype == dtype and inferred.shape == (n, case.n_out)
        assert not np.shares_memory(inferred, engine.infer(case.x))  # a new array each time
        np.testing.assert_array_equal(inferred, out)
        stats = case.stats()
        assert engine.evaluate(case.x, case.y, case.labels, case.sw, stats) is None
        np.testing.assert_array_equal(params, p0)  # inference does not train
        outs.append(out)
        evals.append(stats)
    after = [a for a in (case.x, case.y, case.labels, case.sw) if a is not None]
    for a, a0 in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, a0)
    np.testing.assert_allclose(outs[0], outs[1], **tol)
    np.testing.assert_allclose(evals[0], evals[1], rtol=tol["rtol"], atol=tol["atol"] * n)
    assert evals[0][1] == n


def test_forward_is_inference_mode(dtype, rng, tol):
    # dropout is the identity at inference: the stack with dropout layers computes
    # the same outputs as the stack without them
    case = Case("soft-probs", dtype, rng, n=11)
    engine, _, _ = case.engine(kernels.Engine)
    out = np.empty((11, 3), dtype)
    engine.forward(case.x, out)
    no_dropout = [s for s in case.specs if s["kind"] != "dropout"]
    plain = kernels.Engine(no_dropout, case.params.copy(), case.aux.copy(), LOSSES["cce"],
                           False, [], 0.5)
    out2 = np.empty((11, 3), dtype)
    plain.forward(case.x, out2)
    np.testing.assert_array_equal(out, out2)


@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_infer_rejects_bad_inputs(twin, dtype, rng):
    case = Case("regression", dtype, rng, n=4)
    engine, _, _ = case.engine(twin)
    with pytest.raises(ValueError):
        engine.infer(np.zeros((4, 4), dtype))  # width 4, the stack takes 5
    for bad in (np.nan, np.inf, -np.inf):
        x = case.x.copy()
        x[2, 3] = bad
        with pytest.raises(ValueError):
            engine.infer(x)


def test_evaluate_accumulates_into_stats(dtype, rng, tol):
    case = Case("binary-fused", dtype, rng, n=10)
    engine, _, _ = case.engine(kernels.Engine)
    once, twice = case.stats(), case.stats()
    engine.evaluate(case.x, case.y, None, None, once)
    engine.evaluate(case.x, case.y, None, None, twice)
    engine.evaluate(case.x, case.y, None, None, twice)
    np.testing.assert_allclose(twice, 2 * once, **tol)


# ----------------------------------------------------------------------------- threads

@pytest.fixture
def restore_threads():
    old = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(old)


# The optimizer loops run threaded only for buffers of at least this many elements.
PARALLEL_MIN = kernels.PARALLEL_MIN


def _fit_big_model(threads, dtype):
    """Adam over 300,362 parameters (above PARALLEL_MIN, so with 2 threads the update
    runs threaded), with dropout, for 3 mini-batches."""
    fastnn.set_num_threads(threads)
    fastnn.set_random_seed(2024)
    model = fastnn.Sequential([Dense(512, "relu", input_dim=128), Dropout(0.2),
                               Dense(448, "tanh"), Dense(10, "softmax")], dtype=dtype)
    assert model.count_params() > PARALLEL_MIN
    data = np.random.default_rng(7)
    x = data.standard_normal((90, 128))
    y = data.integers(0, 10, 90)
    model.compile(optimizer=fastnn.optimizers.Adam(learning_rate=1e-3),
                  loss=fastnn.losses.SparseCategoricalCrossentropy())
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model._params.copy(), history.history["loss"]


@pytest.mark.skipif(not kernels.openmp_available(), reason="built without OpenMP")
def test_thread_count_does_not_change_results(dtype, tol, restore_threads):
    p1, loss1 = _fit_big_model(1, dtype)
    p2, loss2 = _fit_big_model(2, dtype)
    p2_again, loss2_again = _fit_big_model(2, dtype)
    p1_again, _ = _fit_big_model(1, dtype)
    # the same thread count twice: bit-identical weights and history
    np.testing.assert_array_equal(p2, p2_again)
    np.testing.assert_array_equal(p1, p1_again)
    assert loss2 == loss2_again
    # 1 vs 2 threads: within tolerance (BLAS may split its sums differently)
    np.testing.assert_allclose(p1, p2, **tol)
    np.testing.assert_allclose(loss1, loss2, rtol=tol["rtol"])


# ----------------------------------------------------------------------------- contract

def _simple(dtype=np.float64):
    layers = [{"kind": "dense", "n_in": 3, "n_out": 4, "activation": 1, "w_off": 0, "b_off": 12},
              {"kind": "dense", "n_in": 4, "n_out": 2, "activation": 0, "w_off": 16,
               "b_off": 24}]
    return layers, np.zeros(26, dtype), np.zeros(1, dtype)


def test_constructor_rejects_bad_descriptions():
    layers, params, aux = _simple()
    mse = LOSSES["mse"]
    with pytest.raises(ValueError):
        kernels.Engine([], params, aux, mse, False, [], 0.5)
    bad = [dict(layers[0]), dict(layers[1], n_in=5)]
    with pytest.raises(ValueError):  # widths do not chain
        kernels.Engine(bad, np.zeros(40), aux, mse, False, [], 0.5)
    with pytest.raises(ValueError):  # parameters past the end of the buffer
        kernels.Engine(layers, np.zeros(20), aux, mse, False, [], 0.5)
    drop_last = layers + [{"kind": "dropout", "n_in": 2, "n_out": 2, "rate": 0.5}]
    with pytest.raises(ValueError):  # a fused loss needs a Dense output
        kernels.Engine(drop_last, params, aux, LOSSES["sigmoid_bce"], True, [], 0.5)
    norm = [{"kind": "normalization", "n_in": 3, "n_out": 3, "aux_off": 0}] + layers
    with pytest.raises(ValueError):  # statistics past the end of aux
        kernels.Engine(norm, params, np.zeros(4), mse, False, [], 0.5)
    with pytest.raises(ValueError):
        kernels.Engine(layers, params, aux, mse, False, [0] * 9, 0.5)
    with pytest.raises(TypeError):  # params and aux of different dtypes
        kernels.Engine(layers, params, aux.astype(np.float32), mse, False, [], 0.5)


@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_constructor_rejects_bad_losses_and_penalties(twin):
    layers, params, aux = _simple()
    for code in (-1, len(LOSSES)):
        with pytest.raises(ValueError, match="loss code"):
            twin(layers, params, aux, code, False, [], 0.5)
    for delta in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="delta"):
            twin(layers, params, aux, LOSSES["huber"], False, [], 0.5, delta)
    twin(layers, params, aux, LOSSES["mse"], False, [], 0.5, 0.0)  # delta unused: accepted
    if twin is kernels.Engine:  # the twin trusts the layer specs, as for widths
        for key in ("l1", "l2", "bias_l1", "bias_l2"):
            bad = [dict(layers[0], **{key: -0.1}), layers[1]]
            with pytest.raises(ValueError, match="regularization"):
                twin(bad, params, aux, LOSSES["mse"], False, [], 0.5)


def test_train_rejects_mismatched_inputs():
    layers, params, aux = _simple()
    engine = kernels.Engine(layers, params, aux, LOSSES["mse"], False, [], 0.5)
    engine.set_optimizer("sgd", None, None)
    x, y = np.zeros((5, 3)), np.zeros((5, 2))
    order, lrs, stats = np.arange(5, dtype=np.int64), np.full(3, 0.1), np.zeros(2)
    args = dict(x=x, y=y, labels=None, sample_weight=None, order=order, batch_size=2, first=0,
                count=3, lrs=lrs, step=0, seed=0, stats=stats)

    def call(**changes):
        engine.train(**dict(args, **changes))

    call()  # the unchanged arguments are valid
    bad = [dict(x=np.zeros((5, 4))), dict(x=x.astype(np.float32)), dict(y=np.zeros((5, 3))),
           dict(y=np.zeros((4, 2))), dict(y=None), dict(labels=np.zeros(5, np.intc)),
           dict(sample_weight=np.ones(4)), dict(first=1), dict(count=4), dict(batch_size=0),
           dict(lrs=np.full(2, 0.1)), dict(stats=np.zeros(1)),
           dict(order=np.array([0, 1, 2, 3, 5], np.int64)),
           dict(order=np.array([0, 1, 2, 3, -1], np.int64))]
    for changes in bad:
        with pytest.raises(ValueError):
            call(**changes)


def test_optimizer_state_must_match():
    layers, params, aux = _simple()
    engine = kernels.Engine(layers, params, aux, LOSSES["mse"], False, [], 0.5)
    with pytest.raises(ValueError):
        engine.set_optimizer("adam", np.zeros(26), None)
    with pytest.raises(ValueError):
        engine.set_optimizer("adam", np.zeros(25), np.zeros(26))
    with pytest.raises(ValueError):
        engine.set_optimizer("adam", np.zeros(26, np.float32), np.zeros(26))
    with pytest.raises(ValueError):
        engine.set_optimizer("sgd", None, None, momentum=0.9)
    z = lambda: np.zeros(26)  # noqa: E731
    with pytest.raises(ValueError, match="RMSprop"):
        engine.set_optimizer("rmsprop", None, None)
    with pytest.raises(ValueError, match="RMSprop"):
        engine.set_optimizer("rmsprop", z(), None, momentum=0.5)
    with pytest.raises(ValueError, match="RMSprop"):
        engine.set_optimizer("rmsprop", z(), None, centered=True)
    with pytest.raises(ValueError, match="Adam"):
        engine.set_optimizer("adamw", z(), None)


@pytest.mark.parametrize("twin", [kernels.Engine, reference.Engine], ids=["compiled", "twin"])
def test_set_optimizer_rejects_unknown_kind_and_two_clips(twin):
    layers, params, aux = _simple()
    engine = twin(layers, params, aux, LOSSES["mse"], False, [], 0.5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        engine.set_optimizer("adagrad", None, None)
    with pytest.raises(ValueError, match="at most one"):
        engine.set_optimizer("sgd", None, None, clipvalue=1.0, global_clipnorm=1.0)


def test_set_optimizer_checks_clipping_segments():
    layers, params, aux = _simple()      # 26 parameters
    engine = kernels.Engine(layers, params, aux, LOSSES["mse"], False, [], 0.5)
    seg = lambda rows: np.array(rows, np.int64).reshape(-1, 2)  # noqa: E731
    engine.set_optimizer("sgd", None, None, clipnorm=1.0, segments=seg([[0, 20], [20, 6]]))
    bad = [None, seg([[0, 20], [19, 7]]), seg([[0, 27]]), seg([[-1, 3]]), seg([[5, -1]]),
           seg([[10, 5], [0, 5]]), np.zeros((2, 3), np.int64)]
    for segments in bad:
        with pytest.raises(ValueError, match="segments"):
            engine.set_optimizer("sgd", None, None, clipnorm=1.0, segments=segments)
    with pytest.raises(ValueError, match=">= 0"):
        engine.set_optimizer("sgd", None, None, clipvalue=-1.0)
    with pytest.raises(ValueError, match=">= 0"):
        engine.set_optimizer("sgd", None, None, global_clipnorm=float("nan"))


def test_forward_and_evaluate_reject_mismatched_inputs():
    layers, params, aux = _simple()
    engine = kernels.Engine(layers, params, aux, LOSSES["mse"], False, [], 0.5)
    x = np.zeros((4, 3))
    for out in (np.zeros((4, 3)), np.zeros((3, 2)), np.zeros((4, 2), np.float32),
                np.zeros((2, 4)).T):
        with pytest.raises(ValueError):
            engine.forward(x, out)
    with pytest.raises(ValueError):
        engine.forward(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        engine.evaluate(x, np.zeros((4, 3)), None, None, np.zeros(2))
    with pytest.raises(ValueError):
        engine.evaluate(x, np.zeros((4, 2)), None, None, np.zeros(1))


# Targets that do not fit the loss or the metrics.  Unchecked, they reach loss_block /
# metric_block with a NULL pointer (or labels outside [0, n_out)) and crash the
# interpreter or read and write outside the row -- as the Engine did before it checked
# them.  The standalone loss kernels and metric_sum refuse the same inputs with
# ValueError.  Each case runs in a child process so that a crash fails the test instead
# of killing the test run.
ENGINE_MISUSE = {
    "train: sparse loss, dense y": ("train", "sparse_softmax_xent", [], "y"),
    "train: dense loss, labels": ("train", "softmax_xent", [], "labels"),
    "train: sparse metric, dense y": ("train", "softmax_xent",
                                      ["sparse_categorical_accuracy"], "y"),
    "train: dense metric, labels": ("train", "sparse_softmax_xent",
                                    ["categorical_accuracy"], "labels"),
    "evaluate: sparse loss, dense y": ("evaluate", "sparse_cce", [], "y"),
    "train: label out of range": ("train", "sparse_softmax_xent", [], "bad-labels"),
    "evaluate: label out of range": ("evaluate", "sparse_cce", [], "bad-labels"),
}

_MISUSE_SCRIPT = """
import numpy as np
from fastnn._kernels import LOSSES, METRICS, Engine
method, loss, metrics, given = {args!r}
layers = [dict(kind="dense", n_in=3, n_out=4, activation=6, w_off=0, b_off=12)]
params, aux = np.random.default_rng(0).standard_normal(16), np.zeros(1)
x = np.ones((5, 3))
y = np.eye(4)[[0, 1, 2, 3, 0]]
labels = np.array([0, 1, 2, 3, 7 if given == "bad-labels" else 0], np.intc)
y, labels = (y, None) if given == "y" else (None, labels)
stats = np.zeros(2 + 2 * len(metrics))
try:  # refusing the combination when the engine is built is fine too
    engine = Engine(layers, params, aux, LOSSES[loss], loss.endswith("xent"),
                    [METRICS[m] for m in metrics], 0.5)
    engine.set_optimizer("sgd", None, None)
    if method == "train":
        engine.train(x, y, labels, None, np.arange(5, dtype=np.int64), 5, 0, 1,
                     np.array([0.1]), 0, 0, stats)
    else:
        engine.evaluate(x, y, labels, None, stats)
except ValueError as exc:
    print("ValueError:", exc)
else:
    print("returned normally, stats =", stats.tolist())
"""


@pytest.mark.parametrize("case", ENGINE_MISUSE, ids=list(ENGINE_MISUSE))
def test_engine_refuses_targets_that_do_not_fit_the_loss(case, run_python):
    script = textwrap.dedent(_MISUSE_SCRIPT.format(args=ENGINE_MISUSE[case]))
    proc = run_python(["-c", script], timeout=120)
    outcome = proc.stdout.strip() or "\n".join(proc.stderr.strip().splitlines()[-1:])
    if proc.returncode < 0:
        outcome = f"killed by signal {-proc.returncode} (SIGSEGV is 11)"
    assert proc.returncode == 0 and proc.stdout.startswith("ValueError"), (
        f"Engine.{ENGINE_MISUSE[case][0]} with {case!r} should raise ValueError at its entry; "
        f"got: {outcome}")


# ----------------------------------------------------------------------------- activation layers

@pytest.mark.parametrize("loss, act, target", [("sparse_softmax_xent", "softmax", "labels"),
                                               ("sigmoid_bce", "sigmoid", "binary"),
                                               ("cce", "softmax", "soft"),
                                               ("mse", "tanh", "dense")])
@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_activation_layer_output_trains_as_dense_activation(twin, loss, act, target, dtype,
                                                            rng):
    # [Dense(k), Activation(act)] runs exactly as Dense(k, act), fused loss included
    fused = loss in ("sparse_softmax_xent", "sigmoid_bce")
    results = []
    for layers in ([Dense(5, "relu"), Dense(3, act)],
                   [Dense(5, "relu"), Dense(3), Activation(act)]):
        model = fastnn.Sequential(layers, dtype=dtype)
        model.build(4)
        params = (0.5 * np.random.default_rng(1).standard_normal(model._params.shape)).astype(
            dtype)
        engine = twin(model._specs(), params, np.zeros(1, dtype), LOSSES[loss], fused, [], 0.5)
        engine.set_optimizer("sgd", None, None)
        data = np.random.default_rng(2)
        x = data.standard_normal((9, 4)).astype(dtype)
        y = labels = None
        if target == "labels":
            labels = data.integers(0, 3, 9).astype(np.intc)
        elif target == "soft":
            y = data.dirichlet(np.ones(3), 9).astype(dtype)
        elif target == "binary":
            y = data.integers(0, 2, (9, 3)).astype(dtype)
        else:
            y = data.standard_normal((9, 3)).astype(dtype)
        stats = np.zeros(2)
        engine.train(x, y, labels, None, np.arange(9, dtype=np.int64), 4, 0, 3,
                     np.full(3, 0.1), 0, 0, stats)
        results.append((params, stats, engine.infer(x)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][2], results[1][2])


def test_activation_layer_must_keep_its_width():
    spec = [{"kind": "activation", "n_in": 3, "n_out": 4, "activation": 1}]
    for twin in TWINS:
        with pytest.raises(ValueError):
            twin(spec, np.zeros(1), np.zeros(1), LOSSES["mse"], False, [], 0.5)


# ----------------------------------------------------------------------------- bind once

def _bound_run(case, twin, batch_size, per_batch):
    engine, params, _ = case.engine(twin, "adam")
    n = case.x.shape[0]
    n_batches = -(-n // batch_size)
    lrs, stats, step = np.full(n_batches, 0.01), case.stats(), 0
    engine.bind(case.x, case.y, case.labels, case.sw)
    for order in (np.arange(n, dtype=np.int64), case.shuffled):
        engine.set_order(order)
        if per_batch:
            for b in range(n_batches):
                step = engine.train_batches(batch_size, b, 1, lrs[b:], step, 7, stats)
        else:
            step = engine.train_batches(batch_size, 0, n_batches, lrs, step, 7, stats)
    engine.unbind()
    return engine, params, stats, step


@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_bound_batches_validate_once(twin, rng):
    # bind scans the labels once and set_order the order once per epoch; the per-batch
    # calls add no O(n) pass (before bind existed, every train call re-scanned both)
    case = Case("sparse-fused", np.float64, rng, n=400)
    engine, params, stats, step = _bound_run(case, twin, 4, per_batch=True)
    assert step == 200
    assert engine.data_scans == 3       # labels once + two epochs' orders
    _, params2, stats2, _ = _bound_run(case, twin, 4, per_batch=False)
    np.testing.assert_array_equal(params, params2)
    np.testing.assert_array_equal(stats, stats2)
    assert engine.bound is None


@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_bind_copies_labels_and_order(twin, rng):
    case = Case("sparse-fused", np.float64, rng, n=20)
    want = _bound_run(case, twin, 5, per_batch=False)[1]
    engine, params, _ = case.engine(twin, "adam")
    labels, order = case.labels.copy(), np.arange(20, dtype=np.int64)
    engine.bind(case.x, None, labels, None)
    labels[:] = 10**6          # the caller's buffers change after the checks...
    engine.set_order(order)
    order[:] = -5
    stats = case.stats()       # ...which the engine's own copies do not see
    step = engine.train_batches(5, 0, 4, np.full(4, 0.01), 0, 7, stats)
    engine.set_order(case.shuffled)
    engine.train_batches(5, 0, 4, np.full(4, 0.01), step, 7, stats)
    np.testing.assert_array_equal(params, want)
    assert not np.shares_memory(engine.bound[2], labels)


@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_train_batches_needs_bind_and_order(twin, rng):
    case = Case("regression", np.float64, rng, n=10)
    engine, _, _ = case.engine(twin, "sgd")
    lrs, stats = np.full(3, 0.1), case.stats()
    with pytest.raises(ValueError):
        engine.train_batches(4, 0, 3, lrs, 0, 0, stats)
    with pytest.raises(ValueError):
        engine.set_order(np.arange(10))
    engine.bind(case.x, case.y, None, None)
    with pytest.raises(ValueError):
        engine.train_batches(4, 0, 3, lrs, 0, 0, stats)
    for bad in (np.array([0, 10]), np.array([-1]), np.array([], np.int64)):
        with pytest.raises(ValueError):
            engine.set_order(bad)
    engine.set_order(np.arange(10))
    for first, count in ((0, 4), (3, 1), (-1, 1)):
        with pytest.raises(ValueError):
            engine.train_batches(4, first, count, np.full(4, 0.1), 0, 0, stats)
    assert engine.train_batches(4, 0, 3, lrs, 0, 0, stats) == 3


@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_read_only_inputs_are_accepted(twin, dtype, rng, tol):
    case = Case("sparse-fused", dtype, rng, n=23, weighted=True)
    want = _train_run(case, twin, "adam", batch_size=8)
    for a in (case.x, case.labels, case.sw, case.shuffled):
        a.flags.writeable = False
    got = _train_run(case, twin, "adam", batch_size=8)
    _assert_twins_agree(got, want, tol)
    engine, _, _ = case.engine(twin)
    engine.evaluate(case.x, None, case.labels, case.sw, case.stats())
    assert engine.infer(case.x).shape == (23, case.n_out)
    engine.bind(case.x, None, case.labels, case.sw)
    assert engine.bound[0] is case.x    # bound in place, not copied


def test_infer_casts_other_float_dtype_in_its_check(dtype, rng):
    case = Case("regression", dtype, rng, n=6)
    other = np.float64 if dtype == np.float32 else np.float32
    for twin in TWINS:
        engine, _, _ = case.engine(twin)
        got = engine.infer(case.x.astype(other))
        np.testing.assert_array_equal(got, engine.infer(case.x.astype(other).astype(dtype)))
        assert got.dtype == dtype
        for bad in (np.zeros((2, 5), np.int64), np.zeros((5, 2), dtype).T, [[0.0] * 5]):
            with pytest.raises(TypeError):
                engine.infer(bad)
    if dtype == np.float32:
        big = case.x.astype(np.float64)
        big[1, 2] = 1e39        # finite in float64, inf in the model's float32
        for twin in TWINS:
            with pytest.raises(ValueError, match="NaN or infinity"):
                case.engine(twin)[0].infer(big)



def test_infer_skips_its_finiteness_scan_only_when_told_and_only_in_its_dtype(dtype, rng):
    # Sequential.predict checks x in _features and passes checked=True, so x is read once
    case = Case("regression", dtype, rng, n=6)
    bad = case.x.copy()
    bad[1, 2] = np.nan
    other = np.float64 if dtype == np.float32 else np.float32
    for twin in TWINS:
        engine, _, _ = case.engine(twin)
        with pytest.raises(ValueError, match="NaN or infinity"):
            engine.infer(bad)
        out = engine.infer(bad, checked=True)   # no scan: the NaN row is computed
        want = engine.infer(case.x)
        np.testing.assert_array_equal(np.delete(out, 1, axis=0), np.delete(want, 1, axis=0))
        with pytest.raises(ValueError, match="NaN or infinity"):
            engine.infer(bad.astype(other), checked=True)   # a cast still checks


# ----------------------------------------------------------------------------- unknown kinds

def test_constructor_rejects_unknown_codes():
    layers, params, aux = _simple()
    mse = LOSSES["mse"]
    for twin in TWINS:
        with pytest.raises(ValueError):
            twin([dict(layers[0], kind="lstm"), layers[1]], params, aux, mse, False, [], 0.5)
        with pytest.raises(ValueError):
            twin([dict(layers[0], activation=len(kernels.ACTIVATIONS)), layers[1]], params,
                 aux, mse, False, [], 0.5)
        with pytest.raises(ValueError):
            twin(layers, params, aux, len(LOSSES), False, [], 0.5)
        with pytest.raises(ValueError):
            twin(layers, params, aux, -1, False, [], 0.5)
        with pytest.raises(ValueError):
            twin(layers, params, aux, mse, False, [len(METRICS)], 0.5)
        engine = twin(layers, params, aux, mse, False, [], 0.5)
        with pytest.raises(ValueError):
            engine.set_optimizer("rmsprop-unknown", None, None)


# what -> (index, compiled code, twin code, the calls that reach the switch)
UNKNOWN = {
    "layer": (1, 99, "lstm", ("infer", "evaluate", "train")),
    "activation": (0, 99, 99, ("infer", "evaluate", "train")),
    "loss": (0, 99, 99, ("evaluate", "train")),
    "metric": (0, 99, 99, ("evaluate", "train")),
    "optimizer": (0, 99, "rmsprop-unknown", ("train",)),
}


@pytest.mark.parametrize("what", UNKNOWN)
@pytest.mark.parametrize("twin", TWINS, ids=["compiled", "reference"])
def test_every_dispatch_raises_on_an_unknown_code(twin, what):
    # codes are validated at construction; these force one past the checks to prove that
    # the switches themselves end in an error branch (the twin raises, the compiled loop
    # sets an error code that its entry raises), never a silent default
    index, compiled_code, twin_code, calls = UNKNOWN[what]
    layers, _, aux = _simple()
    rng = np.random.default_rng(0)
    for call in calls:
        params = rng.standard_normal(26)
        engine = twin(layers, params, aux, LOSSES["mse"], False, [METRICS["mae"]], 0.5)
        engine.set_optimizer("sgd", None, None)
        engine._force_code(what, index, compiled_code if twin is kernels.Engine else twin_code)
        x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
        p0 = params.copy()
        with pytest.raises(ValueError, match="unknown"):
            if call == "infer":
                engine.infer(x)
            elif call == "evaluate":
                engine.evaluate(x, y, None, None, np.zeros(4))
            else:
                engine.train(x, y, None, None, np.arange(5), 5, 0, 1, np.array([0.1]), 0, 0,
                             np.zeros(4))
        if what != "optimizer":
            np.testing.assert_array_equal(params, p0)  # nothing was updated


@pytest.mark.parametrize("code", [-1, 6, 99])
def test_every_layer_kind_switch_ends_in_an_error_branch(code):
    # each switch of _kinds.pxd: read raises, needs returns -1, and the engine's forward
    # and backward passes each stop with the unknown-layer error (code 1), backward
    # included, which no public call reaches with an unknown kind (6 is LAYER_COUNT, the
    # first code past the last kind)
    assert _probe_unknown_kind(code) == ("raised", -1, 1, 1)
    with pytest.raises(ValueError, match="known kind"):
        _probe_unknown_kind(0)


def test_unknown_layer_kind_raises_when_sizing_a_workspace():
    # the needs switch runs (with the GIL) whenever a workspace grows: a kind code that
    # slipped past construction raises there, naming the problem, before any compiled loop
    layers, params, aux = _simple()
    engine = kernels.Engine(layers, params, aux, LOSSES["mse"], False, [], 0.5)
    engine._force_code("layer", 1, 99)
    with pytest.raises(ValueError, match="unknown layer kind"):
        engine.reserve(64)
    with pytest.raises(ValueError, match="unknown layer kind"):   # forward: infer's switch
        engine.infer(np.zeros((3, 3)))


# ----------------------------------------------------------------------------- sizes

def test_workspace_layout_beyond_2_31_elements():
    # paper sizes, nothing allocated: 70,000 rows through layers 40,000 wide make blocks of
    # 2.8e9 elements (> 2**31), which 32-bit int offsets would wrap
    rows, n_in, widths = 70_000, 30_000, [40_000, 40_000, 10]
    layout = _workspace_layout(rows, n_in, widths, [True, True, True], [True, False, False], 4)
    block = rows * 40_000            # a multiple of 16 floats: no alignment padding
    assert block > 2**31
    assert layout["z"][0] == 0 and layout["a"][0] == 0          # linear Dense: a is z
    assert layout["g"][0] == block
    assert layout["z"][1] == 2 * block and layout["a"][1] == 3 * block
    assert layout["g"][1] == 4 * block
    small = rows * 10
    assert layout["z"][2] == 5 * block
    assert layout["a"][2] == 5 * block + small
    assert layout["g"][2] == 5 * block + 2 * small
    assert layout["x"] == 5 * block + 3 * small
    assert layout["y"] == layout["x"] + rows * n_in
    assert layout["sw"] == layout["y"] + small
    assert layout["size"] == layout["sw"] + rows
    assert all(isinstance(v, int) for v in (layout["size"], layout["x"]))
    # every block starts on a 64-byte boundary (float64: 8 per line)
    odd = _workspace_layout(3, 5, [7], [True], [False], 8)
    assert [odd["z"][0], odd["a"][0], odd["g"][0], odd["x"], odd["y"], odd["sw"]] == \
        [0, 24, 48, 72, 88, 112]
    with pytest.raises(ValueError):   # beyond Py_ssize_t: refused, never wrapped
        _workspace_layout(2**40, 2**40, [2**40], [True], [False], 4)


def test_blas_dimensions_are_checked():
    # BLAS takes 32-bit ints: a width beyond that is refused at construction
    layers = [{"kind": "dense", "n_in": 2**31, "n_out": 1, "w_off": 0, "b_off": -1}]
    with pytest.raises(ValueError):
        kernels.Engine(layers, np.zeros(4), np.zeros(1), LOSSES["mse"], False, [], 0.5)


def test_twin_update_dispatch_raises_on_unknown_kinds():
    # the compiled update_core returns -1 for these (set_optimizer never lets them in);
    # the twin must not fall back to a default either
    layers, params, aux = _simple()
    x, y = np.zeros((2, 3)), np.zeros((2, 2))
    args = (x, y, None, None, np.arange(2, dtype=np.int64), 2, 0, 1, np.full(1, 0.1), 0, 0,
            np.zeros(2))
    for change in ({"kind": "adagrad"}, {"clip": ("clipsomething", 1.0)}):
        engine = reference.Engine(layers, params.copy(), aux, LOSSES["mse"], False, [], 0.5)
        engine.set_optimizer("sgd", None, None)
        engine.opt.update(change)
        with pytest.raises(ValueError, match="unknown"):
            engine.train(*args)


def test_infer_allocates_the_output_type(dtype, rng):
    """set_output_type: infer returns that ndarray subclass directly (model(x) gives a
    Tensor without a view per call); ndarray until set; other types are refused."""
    from fastnn._tensor import Tensor
    case = Case("regression", dtype, rng, n=6)
    for twin in TWINS:
        engine, _, _ = case.engine(twin)
        plain = engine.infer(case.x)
        assert type(plain) is np.ndarray
        engine.set_output_type(Tensor)
        got = engine.infer(case.x)
        assert type(got) is Tensor and got.dtype == dtype and got.flags.c_contiguous
        assert got.flags.writeable and got.flags.owndata
        np.testing.assert_array_equal(got, plain)
        for bad in (int, list, "ndarray"):
            with pytest.raises(TypeError, match="ndarray subclass"):
                engine.set_output_type(bad)
        assert type(engine.infer(case.x.astype(np.float64))) is Tensor  # the cast path too
