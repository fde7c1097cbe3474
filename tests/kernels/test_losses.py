"""fastnn._kernels.losses: the fused loss-and-gradient kernels and metric_sum vs the reference."""
import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import LOSSES, METRICS, reference

LOSS_NAMES = sorted(LOSSES, key=LOSSES.get)
SPARSE = {"sparse_softmax_xent", "sparse_cce"}
LOGIT_LOSSES = ("sparse_softmax_xent", "softmax_xent", "sigmoid_bce")
METRIC_NAMES = sorted(METRICS, key=METRICS.get)
EPS = 1e-7  # Keras's backend.epsilon(), the probability clip
REGRESSION = ("mse", "mae", "huber")
# Huber's delta in the shared tests: the 3 * N(0, 1) errors fall on both sides of it
EXTRA = {"huber": (1.5,)}


def _inputs(name, n, m, dtype, rng):
    """(pred, target) typical for the loss: logits, probabilities or values."""
    if name in LOGIT_LOSSES or name in REGRESSION:
        pred = 3 * rng.standard_normal((n, m))
    elif name in ("sparse_cce", "cce"):
        pred = rng.uniform(0.01, 1.0, (n, m))  # not normalised: the kernel rescales rows
    else:
        pred = rng.uniform(0.001, 0.999, (n, m))
    if name in SPARSE:
        target = rng.integers(0, m, n).astype(np.intc)
    elif name in ("softmax_xent", "cce"):
        target = rng.dirichlet(np.ones(m), n).astype(dtype)  # soft targets
    elif name in ("sigmoid_bce", "bce"):
        target = rng.integers(0, 2, (n, m)).astype(dtype)
    else:
        target = rng.standard_normal((n, m)).astype(dtype)
    return pred.astype(dtype), target


def _call(twin, name, pred, target, sw, scale, *extra):
    grad = np.full(pred.shape, np.nan, pred.dtype)
    loss = getattr(twin, name)(pred, target, sw, scale, grad, *(extra or EXTRA.get(name, ())))
    return loss, grad


def _one_hot(labels, m, dtype):
    return np.eye(m, dtype=dtype)[labels]


# ----------------------------------------------------------------------------- values

@pytest.mark.parametrize("weighted", [False, True], ids=["sw=None", "sw"])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_matches_reference(name, weighted, dtype, shape, rng, tol):
    n, _, m = shape
    pred, target = _inputs(name, n, m, dtype, rng)
    sw = rng.uniform(0.0, 2.0, n).astype(dtype) if weighted else None
    before = [pred.copy(), target.copy(), None if sw is None else sw.copy()]

    loss_got, grad_got = _call(kernels, name, pred, target, sw, 1.0 / n)
    loss_want, grad_want = _call(reference, name, pred, target, sw, 1.0 / n)

    assert isinstance(loss_got, float)
    assert grad_got.dtype == dtype
    np.testing.assert_allclose(grad_got, grad_want, **tol)
    # the loss is a weighted sum of n row losses: relative to the sum of magnitudes
    np.testing.assert_allclose(loss_got, loss_want, rtol=tol["rtol"], atol=tol["atol"] * n)
    for a, a0 in zip((pred, target, sw), before, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_sample_weight_none_means_weight_one(name, dtype, rng, tol):
    n, m = 17, 5
    pred, target = _inputs(name, n, m, dtype, rng)
    for twin in (kernels, reference):
        loss_none, grad_none = _call(twin, name, pred, target, None, 1.0 / n)
        loss_ones, grad_ones = _call(twin, name, pred, target, np.ones(n, dtype), 1.0 / n)
        np.testing.assert_allclose(grad_ones, grad_none, **tol)
        np.testing.assert_allclose(loss_ones, loss_none, **tol)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_sample_weight_scales_each_row(name, dtype, rng, tol):
    # loss = sum_i w_i loss_i and grad row i = w_i * (unweighted grad row i), including w_i = 0
    n, m = 9, 4
    pred, target = _inputs(name, n, m, dtype, rng)
    sw = rng.uniform(0.0, 3.0, n).astype(dtype)
    sw[2] = 0
    loss_w, grad_w = _call(kernels, name, pred, target, sw, 0.5)
    _, grad_1 = _call(kernels, name, pred, target, None, 0.5)
    row_losses = []
    for i in range(n):  # a unit weight vector picks out one row's loss
        unit = np.zeros(n, dtype)
        unit[i] = 1
        row_losses.append(_call(kernels, name, pred, target, unit, 0.5)[0])
    np.testing.assert_allclose(grad_w, grad_1 * sw[:, None], **tol)
    np.testing.assert_array_equal(grad_w[2], 0)
    np.testing.assert_allclose(loss_w, np.dot(sw.astype(np.float64), row_losses),
                               rtol=tol["rtol"], atol=tol["atol"] * n)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_scale_multiplies_the_gradient_only(name, dtype, rng, tol):
    n, m = 6, 3
    pred, target = _inputs(name, n, m, dtype, rng)
    loss_1, grad_1 = _call(kernels, name, pred, target, None, 1.0)
    loss_s, grad_s = _call(kernels, name, pred, target, None, 0.125)  # a power of two: exact
    np.testing.assert_allclose(grad_s, grad_1 * dtype(0.125), **tol)
    np.testing.assert_allclose(loss_s, loss_1, **tol)


@pytest.mark.parametrize("pair", [("sparse_softmax_xent", "softmax_xent"), ("sparse_cce", "cce")],
                         ids=["logits", "probabilities"])
def test_labels_and_one_hot_targets_agree(pair, dtype, rng, tol):
    # labels 0 and k-1 included on purpose
    n, m = 12, 5
    sparse, dense = pair
    pred, _ = _inputs(sparse, n, m, dtype, rng)
    labels = rng.integers(0, m, n).astype(np.intc)
    labels[:3], labels[3:6] = 0, m - 1
    sw = rng.uniform(0.5, 2.0, n).astype(dtype)
    for twin in (kernels, reference):
        loss_s, grad_s = _call(twin, sparse, pred, labels, sw, 1.0 / n)
        loss_d, grad_d = _call(twin, dense, pred, _one_hot(labels, m, dtype), sw, 1.0 / n)
        np.testing.assert_allclose(grad_s, grad_d, **tol)
        np.testing.assert_allclose(loss_s, loss_d, rtol=tol["rtol"], atol=tol["atol"] * n)


@pytest.mark.parametrize("name", sorted(SPARSE))
@pytest.mark.parametrize("label", ["first", "last"])
def test_labels_at_both_ends(name, label, dtype, rng, tol):
    n, m = 5, 7
    pred, _ = _inputs(name, n, m, dtype, rng)
    labels = np.full(n, 0 if label == "first" else m - 1, np.intc)
    got_loss, got = _call(kernels, name, pred, labels, None, 1.0)
    want_loss, want = _call(reference, name, pred, labels, None, 1.0)
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(got_loss, want_loss, **tol)
    column = 0 if label == "first" else m - 1
    assert np.all(got[:, column] < 0)  # the true class is pushed up
    others = np.delete(got, column, axis=1)
    assert np.all(others >= 0)


# ----------------------------------------------------------------------------- logit edges

@pytest.mark.parametrize("name", ["sparse_softmax_xent", "softmax_xent"])
def test_softmax_xent_extreme_and_equal_logits(name, dtype, tol):
    z = np.array([[1e4, -1e4, 0.0],      # label 0: certain and right
                  [1e4, -1e4, 0.0],      # label 1: certain and wrong by 2e4
                  [-1e4, -1e4, -1e4],    # all equal, very negative
                  [7.0, 7.0, 7.0],       # all equal
                  [1e4, 1e4, -1e4]], dtype)  # tie at the top
    labels = np.array([0, 1, 2, 0, 1], np.intc)
    target = labels if name in SPARSE else _one_hot(labels, 3, dtype)
    for twin in (kernels, reference):
        loss, grad = _call(twin, name, z, target, None, 1.0)
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        third = dtype(1) / dtype(3)
        np.testing.assert_array_equal(grad[0], [0, 0, 0])
        np.testing.assert_array_equal(grad[1], [1, -1, 0])
        np.testing.assert_allclose(grad[2], [third, third, -2 * third], **tol)
        np.testing.assert_allclose(grad[3], [-2 * third, third, third], **tol)
        np.testing.assert_allclose(grad[4], [0.5, -0.5, 0], **tol)
        # row losses: 0, 2e4, log 3, log 3, log 2
        np.testing.assert_allclose(loss, 2e4 + 2 * np.log(3) + np.log(2), rtol=tol["rtol"])
        loss_0, _ = _call(twin, name, z[:1], target[:1], None, 1.0)
        assert loss_0 == 0.0  # exact: log(1 + 0) - 0
        loss_1, _ = _call(twin, name, z[1:2], target[1:2], None, 1.0)
        assert loss_1 == 2e4  # exact: log(1) - (-1e4 - 1e4)


def test_sigmoid_bce_extreme_logits(dtype, tol):
    z = np.array([[1e4, -1e4, 1e4, -1e4, 0.0]], dtype)
    y = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]], dtype)
    for twin in (kernels, reference):
        loss, grad = _call(twin, "sigmoid_bce", z, y, None, 1.0)
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        # per entry: 0, 0, 1e4, 1e4, log 2; mean over the 5 columns
        np.testing.assert_allclose(loss, (2e4 + np.log(2)) / 5, rtol=tol["rtol"])
        np.testing.assert_array_equal(grad[0, :4], np.array([0, 0, 1, -1], dtype) / dtype(5))
        np.testing.assert_allclose(grad[0, 4], -0.5 / 5, **tol)


def test_sigmoid_bce_equal_logits_rows(dtype, tol):
    z = np.zeros((3, 4), dtype)
    y = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1]], dtype)
    loss, grad = _call(kernels, "sigmoid_bce", z, y, None, 1.0)
    np.testing.assert_allclose(loss, 3 * np.log(2), **tol)
    np.testing.assert_allclose(grad, (0.5 - y) / 4, **tol)


# ----------------------------------------------------------------------------- probability edges

def _clip_bounds(dtype):
    lo = dtype(EPS)          # Keras: epsilon as a value of the block's dtype
    hi = dtype(1) - lo       # and 1 - epsilon computed in that dtype
    return lo, hi


@pytest.mark.parametrize("y_value", [0.0, 1.0])
def test_bce_clip_is_inclusive_and_flat_outside(y_value, dtype):
    lo, hi = _clip_bounds(dtype)
    just_below_lo = np.nextafter(lo, dtype(0))
    just_above_hi = np.nextafter(hi, dtype(1))
    p = np.array([[0.0, just_below_lo, lo, 0.5, hi, just_above_hi, 1.0]], dtype)
    y = np.full_like(p, y_value)
    outside = np.array([True, True, False, False, False, True, True])
    for twin in (kernels, reference):
        loss, grad = _call(twin, "bce", p, y, None, 1.0)
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad[0, outside], 0)  # zero gradient where clipped
        assert np.all(grad[0, ~outside] != 0)               # the bounds themselves are inside
        # the gradient at the bounds is the analytic one at the clipped value
        c = p[0, ~outside]
        want = ((1 - y_value) / (1 - c) - y_value / c) / dtype(p.shape[1])
        np.testing.assert_allclose(grad[0, ~outside], want, rtol=1e-6)
    # the loss is that of the clipped values c (clipped in the dtype), evaluated exactly
    want_loss = np.mean([_bce_at(y_value, np.clip(v, lo, hi)) for v in p[0]])
    loss, _ = _call(kernels, "bce", p, y, None, 1.0)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)


def _bce_at(y, c):
    """-(y log c + (1 - y) log(1 - c)) at a clipped probability c, in float64.

    log1p(-c) is exact where 1 - c would round: at c = 1e-7 in float32, 1 - c rounds to
    1 - 1.19e-7, and log(1 - c) would be 1.19e-7 instead of 1.0e-7.
    """
    c = np.float64(c)
    return -(y * np.log(c) + (1 - y) * np.log1p(-c))


def test_bce_probabilities_exactly_zero_and_one(dtype):
    lo, hi = _clip_bounds(dtype)
    cases = {  # (y, p): loss at the clipped probability
        (1.0, 1.0): _bce_at(1, hi), (0.0, 0.0): _bce_at(0, lo),
        (1.0, 0.0): _bce_at(1, lo), (0.0, 1.0): _bce_at(0, hi),
    }
    for (y, p), want in cases.items():
        for twin in (kernels, reference):
            loss, grad = _call(twin, "bce", np.array([[p]], dtype), np.array([[y]], dtype),
                               None, 1.0)
            np.testing.assert_allclose(loss, want, rtol=1e-6)
            np.testing.assert_array_equal(grad, 0)


@pytest.mark.parametrize("name", ["sparse_cce", "cce"])
def test_cce_probability_edges(name, dtype, tol):
    lo, hi = _clip_bounds(dtype)
    rows = np.array([[1.0, 0.0, 0.0], [lo, hi, 0.0], [0.5, 0.25, 0.25]], dtype)
    assert np.all(rows.sum(axis=1) == 1)  # so q = p / sum(p) = p exactly
    for label in range(3):
        labels = np.full(3, label, np.intc)
        target = labels if name in SPARSE else _one_hot(labels, 3, dtype)
        for twin in (kernels, reference):
            loss, grad = _call(twin, name, rows, target, None, 1.0)
            assert np.isfinite(loss) and np.all(np.isfinite(grad))
            # row 0: every q is outside [lo, hi] (0 and 1), so nothing flows back
            np.testing.assert_array_equal(grad[0], 0)
            row_loss = [-np.log(np.clip(rows[i, label], lo, hi)) for i in range(3)]
            np.testing.assert_allclose(loss, sum(row_loss), rtol=1e-6)
        _, g_ref = _call(reference, name, rows, target, None, 1.0)
        _, g_got = _call(kernels, name, rows, target, None, 1.0)
        np.testing.assert_allclose(g_got, g_ref, **tol)
    # row 1, label 0: q = lo is on the bound, so it is inside and has gradient
    labels = np.zeros(1, np.intc)
    target = labels if name in SPARSE else _one_hot(labels, 3, dtype)
    _, grad = _call(kernels, name, rows[1:2], target, None, 1.0)
    assert grad[0, 0] < -1e6
    # row 1, label 2: q = 0 is clipped, u = 0 everywhere, so the gradient is zero
    labels = np.full(1, 2, np.intc)
    target = labels if name in SPARSE else _one_hot(labels, 3, dtype)
    loss, grad = _call(kernels, name, rows[1:2], target, None, 1.0)
    np.testing.assert_array_equal(grad, 0)
    np.testing.assert_allclose(loss, -np.log(lo), rtol=1e-6)


def test_cce_rescales_rows(dtype, rng, tol):
    # unnormalised probabilities: the loss is that of p / sum(p), and the gradient
    # is orthogonal to p (scaling a row does not change the loss)
    n, m = 6, 4
    p = rng.uniform(0.1, 2.0, (n, m)).astype(dtype)
    y = rng.dirichlet(np.ones(m), n).astype(dtype)
    loss, grad = _call(kernels, "cce", p, y, None, 1.0)
    q = (p / p.sum(axis=1, keepdims=True)).astype(np.float64)
    np.testing.assert_allclose(loss, -(y * np.log(q)).sum(), rtol=10 * tol["rtol"])
    np.testing.assert_allclose((grad * p).sum(axis=1), 0, atol=100 * tol["atol"])


# ----------------------------------------------------------------------------- regression edges

def test_mae_exact_values_and_zero_subgradient(dtype):
    # errors p - y of -2, -0.5, 0, 0.25 (binary fractions: exact in float32): the subgradient
    # of |e| at e = 0 is 0, as torch's and TensorFlow's abs gradients give (Keras on either)
    p = np.array([[0.0, 1.0, 2.0, 2.25]], dtype)
    y = np.array([[2.0, 1.5, 2.0, 2.0]], dtype)
    for twin in (kernels, reference):
        loss, grad = _call(twin, "mae", p, y, None, 1.0)
        assert loss == (2 + 0.5 + 0 + 0.25) / 4
        np.testing.assert_array_equal(grad, np.array([[-1, -1, 0, 1]], dtype) / dtype(4))
    # all rows exact: the gradient is zero everywhere and so is the loss
    for twin in (kernels, reference):
        loss, grad = _call(twin, "mae", y, y.copy(), np.array([2.0], dtype), 0.5)
        assert loss == 0.0
        np.testing.assert_array_equal(grad, 0)


@pytest.mark.parametrize("delta", [1.0, 0.5, 2.0])
def test_huber_exact_values_on_both_sides_of_delta(delta, dtype):
    # e = p - y at 0, +-delta/2, +-delta (the quadratic branch owns the boundary), +-3 delta
    # and 2 delta; every value is a binary fraction, so the results are exact
    e = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 2.0]) * delta
    y = np.full((1, e.size), 0.25, dtype)
    p = (y + e).astype(dtype)
    quad = np.abs(e) <= delta
    row = np.where(quad, 0.5 * e * e, delta * np.abs(e) - 0.5 * delta * delta)
    slope = np.where(quad, e, delta * np.sign(e))
    for twin in (kernels, reference):
        loss, grad = _call(twin, "huber", p, y, None, 1.0, delta)
        assert loss == row.mean()
        np.testing.assert_array_equal(grad[0], (slope / e.size).astype(dtype))
    # continuity at |e| = delta: value and slope agree with the linear branch there
    assert 0.5 * delta * delta == delta * delta - 0.5 * delta * delta


def test_huber_large_delta_is_half_mse_and_small_delta_is_scaled_mae(dtype, rng, tol):
    n, m = 7, 3
    p = rng.standard_normal((n, m)).astype(dtype)
    y = rng.standard_normal((n, m)).astype(dtype)
    loss_h, grad_h = _call(kernels, "huber", p, y, None, 1.0, 1e3)
    loss_s, grad_s = _call(kernels, "mse", p, y, None, 1.0)
    np.testing.assert_allclose(loss_h, loss_s / 2, **tol)
    np.testing.assert_allclose(grad_h, grad_s / 2, **tol)
    delta = 1e-3  # below every |e| here: loss = delta * (|e| - delta / 2)
    assert np.abs(p - y).min() > delta
    loss_h, grad_h = _call(kernels, "huber", p, y, None, 1.0, delta)
    loss_a, grad_a = _call(kernels, "mae", p, y, None, 1.0)
    np.testing.assert_allclose(loss_h, delta * (loss_a - n * delta / 2), rtol=10 * tol["rtol"])
    np.testing.assert_allclose(grad_h, delta * grad_a, **tol)


@pytest.mark.parametrize("delta", [0.0, -1.0, np.nan, np.inf])
def test_huber_refuses_a_bad_delta(delta, dtype):
    p, y = np.zeros((2, 3), dtype), np.ones((2, 3), dtype)
    for twin in (kernels, reference):
        with pytest.raises(ValueError, match="delta"):
            twin.huber(p, y, None, 1.0, np.zeros_like(p), delta)


def test_huber_needs_delta():
    p = np.zeros((2, 3))
    for twin in (kernels, reference):
        with pytest.raises(TypeError):
            twin.huber(p, p, None, 1.0, np.zeros_like(p))


# ----------------------------------------------------------------------------- metrics

def _metric_inputs(metric, n, m, dtype, rng):
    pred = rng.standard_normal((n, m)).astype(dtype)
    y = labels = None
    if metric == "binary_accuracy":
        y = rng.integers(0, 2, (n, m)).astype(dtype)
    elif metric == "sparse_categorical_accuracy":
        labels = rng.integers(0, m, n).astype(np.intc)
    elif metric == "categorical_accuracy":
        y = _one_hot(rng.integers(0, m, n), m, dtype)
    else:
        y = rng.standard_normal((n, m)).astype(dtype)
    return pred, y, labels


@pytest.mark.parametrize("weighted", [False, True], ids=["sw=None", "sw"])
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_metric_sum_matches_reference(metric, weighted, dtype, shape, rng, tol):
    n, _, m = shape
    pred, y, labels = _metric_inputs(metric, n, m, dtype, rng)
    sw = rng.uniform(0, 2, n).astype(dtype) if weighted else None
    before = [a.copy() for a in (pred, y, labels, sw) if a is not None]
    for threshold in (0.5, 0.0):
        got = kernels.metric_sum(METRICS[metric], pred, y, labels, sw, threshold)
        want = reference.metric_sum(METRICS[metric], pred, y, labels, sw, threshold)
        assert isinstance(got, float)
        np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * n)
    after = [a for a in (pred, y, labels, sw) if a is not None]
    for a, a0 in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, a0)


def test_metric_values_by_hand(dtype):
    pred = np.array([[0.2, 0.7, 0.1], [0.5, 0.5, 0.0], [0.0, 0.1, 0.9]], dtype)
    y = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype)
    labels = np.array([1, 1, 2], np.intc)
    sw = np.array([1.0, 2.0, 0.5], dtype)
    code = METRICS
    for twin in (kernels, reference):
        # argmax ties go to the first index: row 1 predicts class 0
        assert twin.metric_sum(code["sparse_categorical_accuracy"], pred, None, labels, None,
                               0.5) == 2.0
        assert twin.metric_sum(code["categorical_accuracy"], pred, y, None, sw, 0.5) == 1.5
        # binary accuracy: strictly greater than the threshold counts as 1 (0.5 -> 0)
        got = twin.metric_sum(code["binary_accuracy"], pred, y, None, None, 0.5)
        np.testing.assert_allclose(got, 3 / 3 + 2 / 3 + 3 / 3, rtol=1e-6)
        got = twin.metric_sum(code["mae"], pred, y, None, None, 0.5)
        want = np.abs(pred.astype(np.float64) - y).mean(axis=1).sum()
        np.testing.assert_allclose(got, want, rtol=1e-6)


# ----------------------------------------------------------------------------- contract

@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_rejects_mismatched_shapes(name, dtype, rng):
    n, m = 4, 3
    pred, target = _inputs(name, n, m, dtype, rng)
    grad = np.zeros((n, m), dtype)
    kernel = getattr(kernels, name)

    def fn(*args):
        return kernel(*args, *EXTRA.get(name, ()))

    with pytest.raises(ValueError):
        fn(pred, target, None, 1.0, np.zeros((n, m + 1), dtype))
    with pytest.raises(ValueError):
        fn(pred, target, None, 1.0, np.zeros((n + 1, m), dtype))
    with pytest.raises(ValueError):
        fn(pred, target, np.ones(n + 1, dtype), 1.0, grad)
    with pytest.raises(ValueError):
        fn(pred, target[:-1], None, 1.0, grad)
    if name not in SPARSE:
        with pytest.raises(ValueError):
            fn(pred, np.zeros((n, m + 1), dtype), None, 1.0, grad)
    with pytest.raises(ValueError):
        fn(pred[:0], target[:0], None, 1.0, grad[:0])
    with pytest.raises(ValueError):  # no targets at all
        fn(pred, None, None, 1.0, grad)


@pytest.mark.parametrize("name", sorted(SPARSE))
@pytest.mark.parametrize("bad", [-1, 3])
def test_labels_out_of_range_are_refused(name, bad, dtype):
    pred = np.full((2, 3), 0.5, dtype)
    labels = np.array([0, bad], np.intc)
    with pytest.raises(ValueError):
        getattr(kernels, name)(pred, labels, None, 1.0, np.zeros((2, 3), dtype))


def test_metric_sum_rejects_bad_arguments(dtype):
    pred, y = np.zeros((3, 2), dtype), np.zeros((3, 2), dtype)
    labels = np.zeros(3, np.intc)
    with pytest.raises(ValueError):
        kernels.metric_sum(len(METRICS), pred, y, None, None, 0.5)
    with pytest.raises(ValueError):
        kernels.metric_sum(METRICS["sparse_categorical_accuracy"], pred, y, None, None, 0.5)
    with pytest.raises(ValueError):
        kernels.metric_sum(METRICS["mse"], pred, None, labels, None, 0.5)
    with pytest.raises(ValueError):
        kernels.metric_sum(METRICS["mse"], pred, np.zeros((3, 3), dtype), None, None, 0.5)
    with pytest.raises(ValueError):
        kernels.metric_sum(METRICS["sparse_categorical_accuracy"], pred, None, labels[:2],
                           None, 0.5)
    with pytest.raises(ValueError):
        kernels.metric_sum(METRICS["mae"], pred, y, None, np.ones(2, dtype), 0.5)
