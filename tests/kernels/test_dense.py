"""fastnn._kernels.dense: activation_forward, dense_forward, dense_backward vs the reference."""
import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import ACTIVATIONS, reference

ACTS = sorted(ACTIVATIONS, key=ACTIVATIONS.get)
ALPHA = 0.01  # fastnn's leaky_relu slope (the course's); Keras's 0.2 is tested below too


def _dense_inputs(rng, n, k, m, dtype):
    x = rng.standard_normal((n, k)).astype(dtype)
    w = (rng.standard_normal((k, m)) * (2.0 / np.sqrt(k))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    return x, w, b


def _nan(shape, dtype):
    return np.full(shape, np.nan, dtype)


def _copies(*arrays):
    return [None if a is None else a.copy() for a in arrays]


def _assert_unchanged(arrays, before):
    for a, a0 in zip(arrays, before, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, a0)


# ----------------------------------------------------------------------------- values

@pytest.mark.parametrize("act", ACTS)
def test_activation_forward_matches_reference(act, dtype, shape, rng, tol):
    n, _, m = shape
    z = (3 * rng.standard_normal((n, m))).astype(dtype)
    z0 = z.copy()
    got, want = _nan((n, m), dtype), np.empty((n, m), dtype)

    assert kernels.activation_forward(z, ACTIVATIONS[act], ALPHA, got) is None
    reference.activation_forward(z, ACTIVATIONS[act], ALPHA, want)

    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_array_equal(z, z0)


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("act", ACTS)
def test_dense_forward_matches_reference(act, use_bias, dtype, shape, rng, tol, close_sum):
    n, k, m = shape
    x, w, b = _dense_inputs(rng, n, k, m, dtype)
    b = b if use_bias else None
    before = _copies(x, w, b)
    z_got, a_got = _nan((n, m), dtype), _nan((n, m), dtype)
    z_want, a_want = np.empty((n, m), dtype), np.empty((n, m), dtype)

    kernels.dense_forward(x, w, b, ACTIVATIONS[act], ALPHA, z_got, a_got)
    reference.dense_forward(x, w, b, ACTIVATIONS[act], ALPHA, z_want, a_want)

    # z is a GEMM: a sum over k terms
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w) + (0 if b is None else np.abs(b))
    close_sum(z_got, z_want, magnitude, **tol)
    # a is elementwise in z: compare it with the reference applied to the compiled z,
    # so that a GEMM rounding difference is not counted twice
    a_from_z = np.empty((n, m), dtype)
    reference.activation_forward(z_got, ACTIVATIONS[act], ALPHA, a_from_z)
    np.testing.assert_allclose(a_got, a_from_z, **tol)
    _assert_unchanged((x, w, b), before)


def test_dense_forward_identity_may_share_z_and_a(dtype, rng):
    # Dense._call passes the same buffer as z_out and a_out for "linear"
    x, w, b = _dense_inputs(rng, 5, 4, 3, dtype)
    za = _nan((5, 3), dtype)
    z, a = np.empty((5, 3), dtype), np.empty((5, 3), dtype)
    kernels.dense_forward(x, w, b, ACTIVATIONS["linear"], 0.0, za, za)
    kernels.dense_forward(x, w, b, ACTIVATIONS["linear"], 0.0, z, a)
    np.testing.assert_array_equal(za, z)
    np.testing.assert_array_equal(a, z)


@pytest.mark.parametrize("l2", [0.0, 0.05], ids=["l2=0", "l2=0.05"])
@pytest.mark.parametrize("act", ACTS)
def test_dense_backward_matches_reference(act, l2, dtype, shape, rng, tol, close_sum):
    n, k, m = shape
    x, w, b = _dense_inputs(rng, n, k, m, dtype)
    z, a = np.empty((n, m), dtype), np.empty((n, m), dtype)
    reference.dense_forward(x, w, b, ACTIVATIONS[act], ALPHA, z, a)
    da = rng.standard_normal((n, m)).astype(dtype)
    before = _copies(x, w, z, a, da)
    got = [_nan((n, m), dtype), _nan((k, m), dtype), _nan(m, dtype), _nan((n, k), dtype)]
    want = [np.empty((n, m), dtype), np.empty((k, m), dtype), np.empty(m, dtype),
            np.empty((n, k), dtype)]

    kernels.dense_backward(x, w, z, a, da, ACTIVATIONS[act], ALPHA, l2, *got)
    reference.dense_backward(x, w, z, a, da, ACTIVATIONS[act], ALPHA, l2, *want)

    dz_got, dw_got, db_got, dx_got = got
    dz_want, dw_want, db_want, dx_want = want
    np.testing.assert_allclose(dz_got, dz_want, **tol)
    # the rest are sums over n (dW, db) or m (dx) terms
    adz, ax, aw = (np.abs(v).astype(np.float64) for v in (dz_want, x, w))
    if act == "softmax":
        # dz = a * (da - sum_j da_j a_j): a row sum inside each dz entry
        adz = np.abs(a) * (np.abs(da) + (np.abs(da) * np.abs(a)).sum(axis=1, keepdims=True))
    close_sum(dw_got, dw_want, ax.T @ adz + 2 * l2 * aw, **tol)
    close_sum(db_got, db_want, adz.sum(axis=0), **tol)
    close_sum(dx_got, dx_want, adz @ aw.T, **tol)
    _assert_unchanged((x, w, z, a, da), before)


# (l1, l2, bias_l1, bias_l2): L1 alone, L1 + L2 (L1L2), bias penalties alone, everything
PENALTIES = [(0.03, 0.0, 0.0, 0.0), (0.03, 0.05, 0.0, 0.0), (0.0, 0.0, 0.02, 0.04),
             (0.03, 0.05, 0.02, 0.04)]


@pytest.mark.parametrize("pen", PENALTIES, ids=["l1", "l1l2", "bias", "all"])
@pytest.mark.parametrize("act", ["linear", "relu", "tanh"])
def test_dense_backward_penalties_match_reference(act, pen, dtype, shape, rng, tol, close_sum):
    n, k, m = shape
    l1, l2, bias_l1, bias_l2 = pen
    x, w, b = _dense_inputs(rng, n, k, m, dtype)
    w.flat[::3] = 0  # sign(0) = 0 on a third of the kernel
    b[::2] = 0
    z, a = np.empty((n, m), dtype), np.empty((n, m), dtype)
    reference.dense_forward(x, w, b, ACTIVATIONS[act], ALPHA, z, a)
    da = rng.standard_normal((n, m)).astype(dtype)
    before = _copies(x, w, b, z, a, da)
    got = [_nan((n, m), dtype), _nan((k, m), dtype), _nan(m, dtype), _nan((n, k), dtype)]
    want = [np.empty((n, m), dtype), np.empty((k, m), dtype), np.empty(m, dtype),
            np.empty((n, k), dtype)]
    kw = dict(l1=l1, b=b, bias_l1=bias_l1, bias_l2=bias_l2)

    kernels.dense_backward(x, w, z, a, da, ACTIVATIONS[act], ALPHA, l2, *got, **kw)
    reference.dense_backward(x, w, z, a, da, ACTIVATIONS[act], ALPHA, l2, *want, **kw)

    adz, ax, aw = (np.abs(v).astype(np.float64) for v in (want[0], x, w))
    np.testing.assert_allclose(got[0], want[0], **tol)
    close_sum(got[1], want[1], ax.T @ adz + 2 * l2 * aw + l1, **tol)
    close_sum(got[2], want[2], adz.sum(axis=0) + 2 * bias_l2 * np.abs(b) + bias_l1, **tol)
    close_sum(got[3], want[3], adz @ aw.T, **tol)
    _assert_unchanged((x, w, b, z, a, da), before)


def test_dense_backward_penalty_gradients_exactly(dtype):
    # x = 0 and da = 0 leave only the penalties: dw = 2 l2 w + l1 sign(w) and
    # db = 2 bias_l2 b + bias_l1 sign(b), with sign(0) = 0 (Keras on TF and torch);
    # every number is a binary fraction, so the results are exact
    w = np.array([[0.0, 0.5, -0.5], [2.0, -2.0, 0.0]], dtype)
    b = np.array([0.0, 1.5, -0.25], dtype)
    x, da = np.zeros((4, 2), dtype), np.zeros((4, 3), dtype)
    z = a = np.zeros((4, 3), dtype)
    for twin in (kernels, reference):
        dz, dw, db, dx = (_nan(s, dtype) for s in ((4, 3), (2, 3), 3, (4, 2)))
        twin.dense_backward(x, w, z, a, da, ACTIVATIONS["linear"], 0.0, 0.125, dz, dw, db, dx,
                            l1=0.25, b=b, bias_l1=0.5, bias_l2=0.0625)
        np.testing.assert_array_equal(dw, 0.25 * w + 0.25 * np.sign(w))
        assert dw[0, 0] == 0 and dw[1, 2] == 0
        np.testing.assert_array_equal(db, 0.125 * b + 0.5 * np.sign(b))
        assert db[0] == 0
        np.testing.assert_array_equal(dx, 0)
        # L1 alone: exactly l1 * sign(w); without any penalty: exactly x^T dz = 0
        twin.dense_backward(x, w, z, a, da, ACTIVATIONS["linear"], 0.0, 0.0, dz, dw, db, dx,
                            l1=0.25)
        np.testing.assert_array_equal(dw, 0.25 * np.sign(w))
        np.testing.assert_array_equal(db, 0)


def test_dense_backward_bias_penalty_needs_the_bias(dtype):
    args = _backward_args(dtype)
    for twin in (kernels, reference):
        with pytest.raises(ValueError, match="bias penalty"):
            twin.dense_backward(**args, bias_l2=0.1)
        with pytest.raises(ValueError, match="bias penalty"):
            twin.dense_backward(**dict(args, db_out=None), b=np.zeros(args["w"].shape[1], dtype),
                                bias_l1=0.1)
    with pytest.raises(ValueError):  # a bias of the wrong length
        kernels.dense_backward(**args, b=np.zeros(args["w"].shape[1] + 1, dtype), bias_l1=0.1)


@pytest.mark.parametrize("act", ["relu", "sigmoid", "softmax"])
def test_dense_backward_optional_outputs(act, dtype, rng, tol):
    # db_out=None (no bias) and dx_out=None (first layer) skip those outputs only
    n, k, m = 9, 5, 4
    x, w, b = _dense_inputs(rng, n, k, m, dtype)
    z, a = np.empty((n, m), dtype), np.empty((n, m), dtype)
    reference.dense_forward(x, w, b, ACTIVATIONS[act], ALPHA, z, a)
    da = rng.standard_normal((n, m)).astype(dtype)
    full = [_nan((n, m), dtype), _nan((k, m), dtype), _nan(m, dtype), _nan((n, k), dtype)]
    kernels.dense_backward(x, w, z, a, da, ACTIVATIONS[act], ALPHA, 0.0, *full)
    dz, dw = _nan((n, m), dtype), _nan((k, m), dtype)
    kernels.dense_backward(x, w, z, a, da, ACTIVATIONS[act], ALPHA, 0.0, dz, dw, None, None)
    np.testing.assert_allclose(dz, full[0], **tol)
    np.testing.assert_allclose(dw, full[1], **tol)


# ----------------------------------------------------------------------------- edges

def _backward_dz(act, z, alpha=ALPHA, da=None):
    """dz of one dense_backward call, for both twins (x, w are dummies of width 1)."""
    n, m = z.shape
    dtype = z.dtype
    a = np.empty_like(z)
    reference.activation_forward(z, ACTIVATIONS[act], alpha, a)
    da = np.ones_like(z) if da is None else da
    x, w = np.ones((n, 1), dtype), np.ones((1, m), dtype)
    out = []
    for twin in (kernels, reference):
        dz = _nan((n, m), dtype)
        twin.dense_backward(x, w, z, a, da, ACTIVATIONS[act], alpha, 0.0, dz,
                            _nan((1, m), dtype), _nan(m, dtype), _nan((n, 1), dtype))
        out.append(dz)
    return out


def test_relu_values_and_derivative_at_the_kink(dtype):
    z = np.array([[-1.0, 0.0, 1.0]], dtype)
    a = _nan(z.shape, dtype)
    kernels.activation_forward(z, ACTIVATIONS["relu"], 0.0, a)
    np.testing.assert_array_equal(a, [[0.0, 0.0, 1.0]])
    for dz in _backward_dz("relu", z, da=np.array([[3.0, 3.0, 3.0]], dtype)):
        np.testing.assert_array_equal(dz, [[0.0, 0.0, 3.0]])  # relu'(0) = 0


@pytest.mark.parametrize("alpha", [0.01, 0.2])
def test_leaky_relu_slope_exact(alpha, dtype):
    z = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0, -1e4]], dtype)
    slope = dtype(alpha)  # the kernel takes alpha as a double and rounds it to the dtype
    got = _nan(z.shape, dtype)
    kernels.activation_forward(z, ACTIVATIONS["leaky_relu"], alpha, got)
    np.testing.assert_array_equal(got, np.where(z > 0, z, slope * z))
    for dz in _backward_dz("leaky_relu", z, alpha=alpha):
        # slope alpha for z <= 0, including the kink
        np.testing.assert_array_equal(dz, [[slope, slope, slope, 1, 1, slope]])


def test_linear_is_exact_identity(dtype, rng):
    z = rng.standard_normal((4, 6)).astype(dtype)
    a = _nan(z.shape, dtype)
    kernels.activation_forward(z, ACTIVATIONS["linear"], 0.0, a)
    np.testing.assert_array_equal(a, z)
    for dz in _backward_dz("linear", z, da=z):
        np.testing.assert_array_equal(dz, z)


def test_extreme_preactivations_stay_finite_and_exact(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    out = {}
    for act in ACTS:
        a = _nan(z.shape, dtype)
        kernels.activation_forward(z, ACTIVATIONS[act], ALPHA, a)
        assert np.all(np.isfinite(a)), act
        out[act] = a
        for dz in _backward_dz(act, z):
            assert np.all(np.isfinite(dz)), act
    np.testing.assert_array_equal(out["sigmoid"], [[1, 0, 0.5], [0, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(out["tanh"], [[1, -1, 0], [-1, -1, -1], [1, 1, -1]])
    np.testing.assert_array_equal(out["swish"], [[1e4, 0, 0], [0, 0, 0], [1e4, 1e4, 0]])
    third = dtype(1) / dtype(3)
    np.testing.assert_array_equal(out["softmax"],
                                  [[1, 0, 0], [third, third, third], [0.5, 0.5, 0]])
    # sigmoid' = a(1 - a) and softmax' vanish where the outputs saturate
    sig_dz = _backward_dz("sigmoid", z)[0]
    np.testing.assert_array_equal(sig_dz, [[0, 0, 0.25], [0, 0, 0], [0, 0, 0]])


def test_softmax_rows_sum_to_one_and_are_shift_invariant(dtype, rng, tol):
    z = (5 * rng.standard_normal((7, 11))).astype(dtype)
    a, shifted = _nan(z.shape, dtype), _nan(z.shape, dtype)
    kernels.activation_forward(z, ACTIVATIONS["softmax"], 0.0, a)
    kernels.activation_forward(z + dtype(300), ACTIVATIONS["softmax"], 0.0, shifted)
    np.testing.assert_allclose(a.sum(axis=1), 1, **tol)
    np.testing.assert_allclose(shifted, a, rtol=20 * tol["rtol"], atol=tol["atol"])


def test_dtype_is_preserved_and_mixed_dtypes_are_refused(dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    z = np.zeros((2, 3), dtype)
    with pytest.raises((TypeError, ValueError)):
        kernels.activation_forward(z, 0, 0.0, np.zeros((2, 3), other))
    x, w, b = np.zeros((2, 4), dtype), np.zeros((4, 3), other), np.zeros(3, dtype)
    with pytest.raises((TypeError, ValueError)):
        kernels.dense_forward(x, w, b, 0, 0.0, np.zeros((2, 3), dtype), np.zeros((2, 3), dtype))


# ----------------------------------------------------------------------------- contract

def _forward_args(dtype, n=4, k=3, m=2):
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    return dict(x=z(n, k), w=z(k, m), b=z(m), activation=0, alpha=0.0,
                z_out=z(n, m), a_out=z(n, m))


FORWARD_BAD = {
    "w rows != x cols": dict(w=(4, 2)),
    "w cols != z cols": dict(w=(3, 5)),
    "z_out rows": dict(z_out=(5, 2)),
    "z_out cols": dict(z_out=(4, 3)),
    "a_out shape": dict(a_out=(4, 3)),
    "b length": dict(b=(3,)),
}


@pytest.mark.parametrize("case", FORWARD_BAD, ids=list(FORWARD_BAD))
def test_dense_forward_rejects_mismatched_shapes(case, dtype):
    args = _forward_args(dtype)
    for name, shp in FORWARD_BAD[case].items():
        args[name] = np.zeros(shp, dtype)
    with pytest.raises(ValueError):
        kernels.dense_forward(**args)


def _backward_args(dtype, n=4, k=3, m=2):
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    return dict(x=z(n, k), w=z(k, m), z=z(n, m), a=z(n, m), da=z(n, m), activation=0,
                alpha=0.0, l2=0.0, dz_out=z(n, m), dw_out=z(k, m), db_out=z(m),
                dx_out=z(n, k))


BACKWARD_BAD = {
    "w rows": dict(w=(5, 2)),
    "dw_out shape": dict(dw_out=(3, 3)),
    "z shape": dict(z=(4, 3)),
    "a shape": dict(a=(3, 2)),
    "da shape": dict(da=(4, 1)),
    "dz_out shape": dict(dz_out=(5, 2)),
    "db_out length": dict(db_out=(3,)),
    "dx_out shape": dict(dx_out=(4, 2)),
}


@pytest.mark.parametrize("case", BACKWARD_BAD, ids=list(BACKWARD_BAD))
def test_dense_backward_rejects_mismatched_shapes(case, dtype):
    args = _backward_args(dtype)
    for name, shp in BACKWARD_BAD[case].items():
        args[name] = np.zeros(shp, dtype)
    with pytest.raises(ValueError):
        kernels.dense_backward(**args)


def test_activation_forward_rejects_mismatched_shapes(dtype):
    with pytest.raises(ValueError):
        kernels.activation_forward(np.zeros((3, 4), dtype), 1, 0.0, np.zeros((3, 5), dtype))
    with pytest.raises(ValueError):
        kernels.activation_forward(np.zeros((3, 4), dtype), 1, 0.0, np.zeros((4, 4), dtype))


@pytest.mark.parametrize("code", [-1, len(ACTIVATIONS)])
def test_unknown_activation_code_is_refused(code, dtype):
    with pytest.raises(ValueError):
        kernels.activation_forward(np.zeros((2, 2), dtype), code, 0.0, np.zeros((2, 2), dtype))
    args = _forward_args(dtype)
    args["activation"] = code
    with pytest.raises(ValueError):
        kernels.dense_forward(**args)
    args = _backward_args(dtype)
    args["activation"] = code
    with pytest.raises(ValueError):
        kernels.dense_backward(**args)


def test_empty_dimensions_are_refused(dtype):
    args = _forward_args(dtype, n=0)
    with pytest.raises(ValueError):
        kernels.dense_forward(**args)
    args = _backward_args(dtype, k=0)
    with pytest.raises(ValueError):
        kernels.dense_backward(**args)


def test_non_contiguous_inputs_are_refused(dtype):
    args = _forward_args(dtype)
    args["x"] = np.zeros((3, 4), dtype).T  # (4, 3), Fortran order
    with pytest.raises(ValueError):
        kernels.dense_forward(**args)
