"""Backpropagation checked against finite differences, and the course's worked examples.

Analytic gradients come from the public API: a float64 model compiled with
SGD(learning_rate=1.0) and fitted for one full-batch step moves its parameters by
exactly minus the gradient of the loss that ``evaluate`` reports (Keras's mean over
the batch, plus the weight penalties), so ``gradient = p0 - model._params``.  The numerical
gradient is a fourth-order central difference of ``evaluate`` over the flat parameter
buffer that every layer views (truncation error O(h^4), about 1e-12 for h = 1e-3).

The NumPy reference engine is checked the same way, so a mistake made by both twins
(which the parity tests in tests/kernels cannot see) is caught here.
"""
import numpy as np
import pytest

import fastnn
from fastnn import activations, losses
from fastnn._kernels import LOSSES, reference
from fastnn.layers import Dense, Normalization
from fastnn.regularizers import L1, L1L2, L2

H = 1e-3                    # finite-difference step
FD_TOL = dict(rtol=1e-7, atol=1e-9)  # measured worst |analytic - numeric|: 5e-11
KINK_MARGIN = 0.1           # no relu / leaky_relu pre-activation this close to 0, no
                            # MAE error or L1-penalised weight this close to 0, no Huber
                            # |error| this close to delta

HIDDEN = ["linear", "relu", "sigmoid", "tanh", "leaky_relu", "swish", "softmax"]

# (id, output activation, loss factory, target kind, output width)
HEADS = [
    ("sigmoid+bce", "sigmoid", losses.BinaryCrossentropy, "binary", 2),
    ("linear+bce-logits", "linear", lambda: losses.BinaryCrossentropy(from_logits=True),
     "binary", 2),
    ("softmax+bce", "softmax", losses.BinaryCrossentropy, "binary", 3),
    ("softmax+cce", "softmax", losses.CategoricalCrossentropy, "soft", 3),
    ("linear+cce-logits", "linear",
     lambda: losses.CategoricalCrossentropy(from_logits=True), "soft", 3),
    ("sigmoid+cce", "sigmoid", losses.CategoricalCrossentropy, "onehot", 3),
    ("softmax+sparse", "softmax", losses.SparseCategoricalCrossentropy, "labels", 3),
    ("linear+sparse-logits", "linear",
     lambda: losses.SparseCategoricalCrossentropy(from_logits=True), "labels", 3),
    ("sigmoid+sparse", "sigmoid", losses.SparseCategoricalCrossentropy, "labels", 3),
    ("linear+mse", "linear", losses.MeanSquaredError, "dense", 2),
    ("relu+mse", "relu", losses.MeanSquaredError, "dense", 2),
    ("tanh+mse", "tanh", losses.MeanSquaredError, "dense", 2),
    ("sigmoid+mse", "sigmoid", losses.MeanSquaredError, "dense", 2),
    ("leaky_relu+mse", "leaky_relu", losses.MeanSquaredError, "dense", 2),
    ("swish+mse", "swish", losses.MeanSquaredError, "dense", 2),
    ("softmax+mse", "softmax", losses.MeanSquaredError, "dense", 3),
    ("linear+mae", "linear", losses.MeanAbsoluteError, "dense", 2),
    ("tanh+mae", "tanh", losses.MeanAbsoluteError, "dense", 3),
    ("linear+huber", "linear", losses.Huber, "dense", 2),
    ("sigmoid+huber-0.25", "sigmoid", lambda: losses.Huber(0.25), "dense", 3),
]
HEAD_IDS = [h[0] for h in HEADS]
KINKED = {"relu", "leaky_relu"}


def central_difference(f, p, h=H):
    """Fourth-order central difference of f at p, one coordinate at a time."""
    grad = np.empty_like(p)
    q = p.copy()
    for i in range(p.size):
        values = []
        for step in (-2, -1, 1, 2):
            q[i] = p[i] + step * h
            values.append(f(q))
        q[i] = p[i]
        grad[i] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)
    return grad


class Problem:
    """A small float64 network (optionally behind a Normalization layer) and its data."""

    def __init__(self, hidden, head, l2=0.0, weighted=False, normalize=True, seed=0,
                 kernel_reg=None, bias_reg=None):
        _, out_act, make_loss, target, width = head
        self.loss = make_loss()
        kernel_reg = kernel_reg or (L2(l2) if l2 else None)
        n, n_in = 6, 3
        # draw until no kinked unit sits within KINK_MARGIN of its kink, so that no
        # finite-difference step crosses it (deterministic: the seeds are fixed)
        for attempt in range(200):
            rng = np.random.default_rng([seed, attempt])
            x = 1.5 + 2.0 * rng.standard_normal((n, n_in))
            layers = [Normalization()] if normalize else []
            layers += [Dense(4, activation=hidden, kernel_regularizer=kernel_reg,
                             bias_regularizer=bias_reg),
                       Dense(width, activation=out_act, kernel_regularizer=kernel_reg,
                             bias_regularizer=bias_reg)]
            if normalize:
                layers[0].adapt(x)
            model = fastnn.Sequential(layers, dtype="float64")
            model.build(n_in)
            model._params[:] = 0.8 * rng.standard_normal(model._params.shape)
            y = self._targets(rng, target, n, width)
            if (self._clear_of_kinks(model, x, hidden, out_act)
                    and self._loss_clear_of_kinks(model, x, y)
                    and self._weights_clear_of_zero(model)):
                break
        else:  # pragma: no cover
            raise AssertionError("no draw kept every kink out of the finite differences")
        self.model, self.x, self.y, self.p0 = model, x, y, model._params.copy()
        self.sw = rng.uniform(0.2, 2.0, n) if weighted else None

    @staticmethod
    def _targets(rng, target, n, width):
        if target == "labels":
            return rng.integers(0, width, n)
        if target == "onehot":
            return np.eye(width)[rng.integers(0, width, n)]
        if target == "soft":
            return rng.dirichlet(np.ones(width), n)
        if target == "binary":
            return rng.integers(0, 2, (n, width)).astype(float)
        return rng.standard_normal((n, width))

    def _loss_clear_of_kinks(self, model, x, y):
        """|e| (MAE) and ||e| - delta| (Huber) at least KINK_MARGIN from 0."""
        if isinstance(self.loss, losses.MeanAbsoluteError):
            return np.min(np.abs(model.predict(x) - y)) >= KINK_MARGIN
        if isinstance(self.loss, losses.Huber):
            e = np.abs(model.predict(x) - y)
            return np.min(np.abs(e - self.loss.delta)) >= KINK_MARGIN
        return True

    @staticmethod
    def _weights_clear_of_zero(model):
        """Every L1-penalised weight at least KINK_MARGIN from 0 (|w| has its kink there)."""
        for layer in model.layers:
            if not isinstance(layer, Dense):
                continue
            for reg, w in ((layer.kernel_regularizer, layer.kernel),
                           (layer.bias_regularizer, layer.bias)):
                if reg is not None and reg._factors()[0] and np.min(np.abs(w)) < KINK_MARGIN:
                    return False
        return True

    @staticmethod
    def _clear_of_kinks(model, x, hidden, out_act):
        """Pre-activations of the Dense layers, recomputed in NumPy from get_weights."""
        a = x
        for layer in model.layers:
            if isinstance(layer, Normalization):
                std = np.maximum(np.sqrt(layer.variance), 1e-7)
                a = (a - layer.mean) / std
                continue
            z = a @ layer.kernel + layer.bias
            kinked = activations.serialize(layer.activation) in KINKED
            if kinked and np.min(np.abs(z)) < KINK_MARGIN:
                return False
            a = layer.activation(z).numpy()
        return True

    # --- the compiled engine, through the public API ---------------------------------
    def public_loss(self, p):
        self.model._params[:] = p
        return self.model.evaluate(self.x, self.y, sample_weight=self.sw)

    def public_gradient(self):
        model = self.model
        model._params[:] = self.p0
        model.compile(optimizer=fastnn.optimizers.SGD(learning_rate=1.0), loss=self.loss)
        model.fit(self.x, self.y, batch_size=len(self.x), epochs=1, shuffle=False, verbose=0,
                  sample_weight=self.sw)
        grad = self.p0 - model._params
        model._params[:] = self.p0
        return grad

    # --- the NumPy reference engine, on the same layer description -----------------------
    def _reference_engine(self, params):
        model = self.model
        kernel, fused = self.loss.kernel_for(activations.serialize(model.layers[-1].activation))
        aux = model._aux if model._aux.shape[0] else np.zeros(1)
        engine = reference.Engine(model._specs(), params, aux.copy(), LOSSES[kernel], fused,
                                  [], 0.5, *self.loss._kernel_params())
        engine.set_optimizer("sgd", None, None)
        if self.loss.sparse:
            y, labels = None, np.asarray(self.y, np.intc)
        else:
            y, labels = np.asarray(self.y, np.float64).reshape(len(self.x), -1), None
        return engine, y, labels

    def reference_loss(self, p):
        engine, y, labels = self._reference_engine(p.copy())
        stats = np.zeros(2)
        engine.evaluate(self.x, y, labels, self.sw, stats)
        return stats[0] / stats[1] + engine.penalty()

    def reference_gradient(self):
        params = self.p0.copy()
        engine, y, labels = self._reference_engine(params)
        n = len(self.x)
        engine.train(self.x, y, labels, self.sw, np.arange(n, dtype=np.int64), n, 0, 1,
                     np.array([1.0]), 0, 0, np.zeros(2))
        return self.p0 - params


def _check(problem, twin):
    if twin == "compiled":
        analytic, loss = problem.public_gradient(), problem.public_loss
    else:
        analytic, loss = problem.reference_gradient(), problem.reference_loss
    numeric = central_difference(loss, problem.p0)
    assert np.all(np.isfinite(analytic))
    assert np.any(np.abs(numeric) > 1e-3)  # the check is not vacuous
    np.testing.assert_allclose(analytic, numeric, **FD_TOL)


TWINS = ["compiled", "reference"]


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradient_matches_finite_differences(hidden, head, twin):
    _check(Problem(hidden, head, seed=HIDDEN.index(hidden)), twin)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("l2, weighted", [(0.05, False), (0.0, True), (0.02, True)],
                         ids=["l2", "sample-weight", "l2+sample-weight"])
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_gradient_with_l2_and_sample_weights(head, l2, weighted, twin):
    hidden = HIDDEN[HEAD_IDS.index(head[0]) % len(HIDDEN)]  # vary the hidden layer too
    _check(Problem(hidden, head, l2=l2, weighted=weighted, seed=7), twin)


# (id, kernel regularizer, bias regularizer)
PENALTIES = [("l1", L1(0.05), None), ("l1l2", L1L2(0.03, 0.04), None),
             ("bias-l2", None, L2(0.1)), ("bias-l1", None, L1(0.05)),
             ("all", L1L2(0.02, 0.05), L1L2(0.04, 0.03))]


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "sample-weight"])
@pytest.mark.parametrize("pen", PENALTIES, ids=[p[0] for p in PENALTIES])
@pytest.mark.parametrize("head", HEADS[::2], ids=HEAD_IDS[::2])
def test_gradient_with_every_penalty(head, pen, weighted, twin):
    _, kernel_reg, bias_reg = pen
    hidden = HIDDEN[HEAD_IDS.index(head[0]) % len(HIDDEN)]
    _check(Problem(hidden, head, weighted=weighted, seed=13, kernel_reg=kernel_reg,
                   bias_reg=bias_reg), twin)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("head", HEADS[::3], ids=HEAD_IDS[::3])
def test_gradient_without_normalization(head, twin):
    _check(Problem("tanh", head, l2=0.01, weighted=True, normalize=False, seed=3), twin)


@pytest.mark.parametrize("kernel_reg, bias_reg", [(L2(0.1), None), (L1(0.1), L1L2(0.2, 0.3))],
                         ids=["l2", "l1+bias"])
def test_public_loss_includes_the_penalties(kernel_reg, bias_reg):
    head = HEADS[HEAD_IDS.index("linear+mse")]
    reg = Problem("tanh", head, seed=11, kernel_reg=kernel_reg, bias_reg=bias_reg)
    penalty = 0.0
    for layer in reg.model.layers:
        if isinstance(layer, Dense):
            w, b = layer.kernel, layer.bias
            penalty += kernel_reg._factors()[0] * np.abs(w).sum()
            penalty += kernel_reg._factors()[1] * (w ** 2).sum()
            if bias_reg is not None:
                penalty += bias_reg._factors()[0] * np.abs(b).sum()
                penalty += bias_reg._factors()[1] * (b ** 2).sum()
    assert penalty > 0.1
    reg.model.compile(loss="mse")
    data_loss = reg.loss(reg.y, reg.model.predict(reg.x))  # the loss object: no penalty
    np.testing.assert_allclose(reg.public_loss(reg.p0) - data_loss, penalty, rtol=1e-12)


# ----------------------------------------------------------------------------- course examples

def _two_relu_units():
    """x = 1 -> ReLU(w1 = 2, b1 = 0) -> ReLU(w2 = 3, b2 = 1); y = 5."""
    model = fastnn.Sequential([Dense(1, activation="relu", input_dim=1),
                               Dense(1, activation="relu")], dtype="float64")
    model.set_weights([np.array([[2.0]]), np.array([0.0]), np.array([[3.0]]), np.array([1.0])])
    return model, np.array([[1.0]]), np.array([5.0])


# Every number in the two-unit example is a small integer, and every operation on it is
# exact in binary floating point, so these tests compare with == on purpose.

def test_course_two_unit_network_forward_and_cost():
    model, x, y = _two_relu_units()
    # a1 = relu(2 * 1 + 0) = 2, a2 = relu(3 * 2 + 1) = 7
    assert model.predict(x)[0, 0] == 7.0
    model.compile(optimizer=fastnn.optimizers.SGD(learning_rate=1.0), loss="mse")
    # Keras's MSE = (7 - 5)^2 = 4; the course's cost J = 1/2 (7 - 5)^2 = 2 = MSE / 2
    mse = model.evaluate(x, y)
    assert mse == 4.0
    assert mse / 2 == 2.0


def test_course_two_unit_network_backprop():
    # dJ/dw2 = (a2 - y) a1 = 4, dJ/db2 = a2 - y = 2,
    # dJ/dw1 = (a2 - y) w2 x = 6, dJ/db1 = (a2 - y) w2 = 6  (both units active)
    want_dj = {"w1": 6.0, "b1": 6.0, "w2": 4.0, "b2": 2.0}
    # MSE = 2 J, so one SGD step of learning rate 1 on MSE moves each weight by 2 dJ
    model, x, y = _two_relu_units()
    model.compile(optimizer=fastnn.optimizers.SGD(learning_rate=1.0), loss="mse")
    p0 = model._params.copy()
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    w1, b1, w2, b2 = (p0 - model._params)  # layout: kernel then bias, layer by layer
    assert dict(w1=w1, b1=b1, w2=w2, b2=b2) == {k: 2 * v for k, v in want_dj.items()}
    # ... and a learning rate of 1/2 moves them by exactly dJ
    model, x, y = _two_relu_units()
    model.compile(optimizer=fastnn.optimizers.SGD(learning_rate=0.5), loss="mse")
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)
    w1n, b1n, w2n, b2n = (w[0] if w.ndim == 1 else w[0, 0] for w in model.get_weights())
    assert (2.0 - w1n, 0.0 - b1n, 3.0 - w2n, 1.0 - b2n) == (6.0, 6.0, 4.0, 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_course_softmax_example(dtype):
    z = np.array([5.0, 2.0, -1.0, 3.0], dtype)
    a = activations.softmax(z)
    assert a.dtype == dtype and a.shape == (4,)
    np.testing.assert_allclose(a, [0.842, 0.042, 0.002, 0.114], atol=5e-4)  # as printed
    e = np.exp(z.astype(np.float64) - 5.0)
    np.testing.assert_allclose(a, e / e.sum(), rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(a.sum(), 1.0, rtol=1e-6)


def test_extreme_logits_through_public_activations():
    for dtype in (np.float32, np.float64):
        z = np.array([[1000.0, -1000.0]], dtype)
        np.testing.assert_array_equal(activations.softmax(z), [[1.0, 0.0]])
        np.testing.assert_array_equal(activations.softmax(np.array([[-1000.0, -1000.0]], dtype)),
                                      [[0.5, 0.5]])
        np.testing.assert_array_equal(activations.sigmoid(np.array([1000.0, -1000.0, 0.0],
                                                                   dtype)), [1.0, 0.0, 0.5])
        np.testing.assert_array_equal(activations.tanh(np.array([1000.0, -1000.0], dtype)),
                                      [1.0, -1.0])
        np.testing.assert_array_equal(activations.swish(np.array([1000.0, -1000.0], dtype)),
                                      [1000.0, 0.0])
        np.testing.assert_array_equal(activations.relu(np.array([1000.0, -1000.0], dtype)),
                                      [1000.0, 0.0])


def test_extreme_logits_through_public_losses():
    sparse = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert sparse([0], [[1000.0, -1000.0]]) == 0.0
    assert sparse([1], [[1000.0, -1000.0]]) == 2000.0
    assert sparse([1], np.array([[1000.0, -1000.0]], np.float32)) == 2000.0
    cce = losses.CategoricalCrossentropy(from_logits=True)
    assert cce([[1.0, 0.0]], [[1000.0, -1000.0]]) == 0.0
    assert cce([[0.0, 1.0]], [[1000.0, -1000.0]]) == 2000.0
    bce = losses.BinaryCrossentropy(from_logits=True)
    assert bce([1.0], [1000.0]) == 0.0
    assert bce([0.0], [-1000.0]) == 0.0
    assert bce([0.0], [1000.0]) == 1000.0
    assert bce([1.0], [-1000.0]) == 1000.0
    # a batch mixes them as Keras's mean over rows
    assert sparse([0, 1], [[1000.0, -1000.0], [1000.0, -1000.0]]) == 1000.0


def test_probabilities_exactly_zero_and_one_through_public_losses():
    # Keras clips to [eps, 1 - eps] in the input's dtype; the expected values are the
    # losses at those clipped probabilities, evaluated exactly (log1p for log(1 - c))
    def at(c):
        c = np.float64(c)
        return -np.log(c), -np.log1p(-c)  # (loss if y = 1, loss if y = 0)

    for dtype in (np.float32, np.float64):
        lo = dtype(1e-7)
        hi = dtype(1) - lo
        bce = losses.BinaryCrossentropy()
        cases = [(1.0, 1.0, at(hi)[0]), (0.0, 0.0, at(lo)[1]),
                 (1.0, 0.0, at(lo)[0]), (0.0, 1.0, at(hi)[1])]
        for y, p, want in cases:
            got = bce(np.array([y], dtype), np.array([p], dtype))
            assert np.isfinite(got)
            np.testing.assert_allclose(got, want, rtol=1e-6)
        cce = losses.CategoricalCrossentropy()
        sparse = losses.SparseCategoricalCrossentropy()
        pred = np.array([[1.0, 0.0]], dtype)
        np.testing.assert_allclose(cce([[1.0, 0.0]], pred), at(hi)[0], rtol=1e-6)
        np.testing.assert_allclose(cce([[0.0, 1.0]], pred), at(lo)[0], rtol=1e-6)
        np.testing.assert_allclose(sparse([0], pred), at(hi)[0], rtol=1e-6)
        np.testing.assert_allclose(sparse([1], pred), at(lo)[0], rtol=1e-6)
    # Keras's numbers in float64: -log(1e-7) = 16.118095650958...; -log(1 - 1e-7) = 1.00000005e-7
    bce = losses.BinaryCrossentropy()
    np.testing.assert_allclose(bce([1.0], [0.0]), 16.11809565095832, rtol=1e-12)
    np.testing.assert_allclose(bce([0.0], [0.0]), 1.0000000500000003e-07, rtol=1e-9)
