"""csrc/fnn_small.h: the float32 FMA kernels of a training step against NumPy, at every
instruction-set level this CPU has (AVX-512, AVX2, none), and bit-equal across levels."""
import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import dense, losses, reference

LEVELS = [level for level in (2, 1, 0) if level <= dense.small_isa(-1)] or [0]


@pytest.fixture(params=LEVELS, ids=lambda level: {2: "avx512", 1: "avx2", 0: "none"}[level])
def isa(request):
    """Run the test with the kernels capped at one level, then restore detection."""
    for module in (dense, losses):
        assert module.small_isa(request.param) == request.param
    yield request.param
    for module in (dense, losses):
        module.small_isa(-1)


def operands(rng, trans_a, trans_b, m, n, k, dtype):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


# 1-row and 1-column products, primes, n at and around the 8/16/32-lane edges, the digits
# network's products (forward, dW = x^T dz, dx = dz W^T) and a B^T too large for the stack
MNK = [(1, 1, 1), (1, 25, 64), (2, 3, 5), (5, 16, 3), (7, 17, 13), (13, 31, 29), (3, 32, 7),
       (11, 33, 2), (4, 47, 9), (32, 25, 64), (32, 15, 25), (32, 10, 15), (64, 25, 32),
       (25, 15, 32), (15, 10, 32), (9, 70, 61), (3, 100, 50)]


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("m, n, k", MNK)
def test_small_matmul_against_numpy(isa, dtype, tol, beta, trans_a, trans_b, m, n, k):
    rng = np.random.default_rng([m, n, k, trans_a, trans_b, int(beta)])
    a, b = operands(rng, trans_a, trans_b, m, n, k, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    got, want = c0.copy(), c0.copy()
    if beta == 0:
        got[...] = np.nan  # beta = 0 must not read c_out
    a0, b0 = a.copy(), b.copy()
    kernels.matmul(a, b, trans_a, trans_b, got, "small", beta)
    reference.matmul(a, b, trans_a, trans_b, want, "small", beta)
    opa, opb = (a.T if trans_a else a), (b.T if trans_b else b)
    scale = np.abs(opa) @ np.abs(opb) + beta * np.abs(c0)
    assert np.all(np.abs(got - want) <= tol["rtol"] * scale + tol["atol"])
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("method", ["auto", "small"])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("m, n, k", MNK)
def test_small_matmul_same_bits_at_every_vector_width(method, trans_a, trans_b, m, n, k):
    """Each element is one FMA chain over p ascending, whatever the vector width."""
    if dense.small_isa(-1) < 2:
        pytest.skip("needs an AVX-512 CPU to compare with AVX2")
    rng = np.random.default_rng([m, n, k, 7])
    a, b = operands(rng, trans_a, trans_b, m, n, k, np.float32)
    wide, narrow = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
    try:
        kernels.matmul(a, b, trans_a, trans_b, wide, method)
        dense.small_isa(1)
        kernels.matmul(a, b, trans_a, trans_b, narrow, method)
    finally:
        dense.small_isa(-1)
    np.testing.assert_array_equal(wide, narrow)


def test_small_matmul_is_deterministic():
    rng = np.random.default_rng(3)
    a, b = operands(rng, True, False, 64, 25, 32, np.float32)
    first = np.empty((64, 25), np.float32)
    kernels.matmul(a, b, True, False, first, "small")
    for _ in range(5):
        again = np.empty_like(first)
        kernels.matmul(a, b, True, False, again, "small")
        np.testing.assert_array_equal(again, first)


def test_small_matmul_rejects_other_beta():
    a = np.ones((4, 6), np.float32)
    with pytest.raises(ValueError, match="beta 0 or 1"):
        kernels.matmul(a, a.T.copy(), False, False, np.zeros((4, 4), np.float32), "small", 0.5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("act", ["relu", "linear"])
@pytest.mark.parametrize("n, k, m", [(1, 1, 1), (1, 64, 25), (3, 7, 17), (32, 64, 25),
                                     (32, 25, 15), (32, 15, 10), (31, 13, 33), (5, 3, 40)])
def test_fused_dense_forward_against_numpy(isa, dtype, tol, bias, act, n, k, m):
    rng = np.random.default_rng([n, k, m, bias])
    x = rng.standard_normal((n, k)).astype(dtype)
    w = rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype) if bias else None
    code = kernels.ACTIVATIONS[act]
    z, a = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
    zr, ar = np.empty((n, m), dtype), np.empty((n, m), dtype)
    kernels.dense_forward(x, w, b, code, 0.0, z, a)
    reference.dense_forward(x, w, b, code, 0.0, zr, ar)
    scale = np.abs(x) @ np.abs(w) + (np.abs(b) if bias else 0)
    assert np.all(np.abs(z - zr) <= tol["rtol"] * scale + tol["atol"])
    # the activation is applied to the very z that was stored
    np.testing.assert_array_equal(a, np.maximum(z, 0) if act == "relu" else z)
    # a aliasing z: z becomes act(z)
    same = np.full((n, m), np.nan, dtype)
    kernels.dense_forward(x, w, b, code, 0.0, same, same)
    np.testing.assert_array_equal(same, a)


def test_fused_relu_maps_nan_and_negative_zero_as_the_separate_pass():
    x = np.array([[np.nan, 0.0], [1.0, 0.0], [-0.0, 0.0]], np.float32)
    w = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 1.0]], np.float32)
    z, a = np.empty((3, 3), np.float32), np.empty((3, 3), np.float32)
    kernels.dense_forward(x, w, None, kernels.ACTIVATIONS["relu"], 0.0, z, a)
    want = np.where(z > 0, z, np.float32(0))   # relu(NaN) = 0 and relu(-0) = +0
    np.testing.assert_array_equal(a, want)
    assert not np.signbit(a).any()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, m", [(1, 1), (1, 10), (3, 2), (32, 10), (33, 16), (130, 7),
                                  (5, 17), (200, 3)])
def test_sparse_softmax_xent_against_numpy(isa, dtype, tol, weighted, n, m):
    rng = np.random.default_rng([n, m, weighted])
    z = (rng.standard_normal((n, m)) * 4).astype(dtype)
    z[0, 0] = -200  # an exponential that underflows to 0
    labels = rng.integers(0, m, n).astype(np.int32)
    sw = rng.random(n).astype(dtype) if weighted else None
    got, want = np.full((n, m), np.nan, dtype), np.empty((n, m), dtype)
    loss = kernels.sparse_softmax_xent(z, labels, sw, 1.0 / n, got)
    loss_ref = reference.sparse_softmax_xent(z, labels, sw, 1.0 / n, want)
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"])
    assert loss == pytest.approx(loss_ref, rel=tol["rtol"] * 10, abs=tol["atol"] * n)


@pytest.mark.parametrize("n, m", [(1, 1), (2, 25), (32, 15), (32, 10), (7, 33), (3, 64)])
def test_dense_backward_bias_gradient_is_the_ordered_column_sum(isa, dtype, n, m):
    rng = np.random.default_rng([n, m])
    k = 3
    x = rng.standard_normal((n, k)).astype(dtype)
    w = rng.standard_normal((k, m)).astype(dtype)
    z = rng.standard_normal((n, m)).astype(dtype)
    da = rng.standard_normal((n, m)).astype(dtype)
    dz, dw, db = np.empty_like(da), np.empty_like(w), np.full(m, np.nan, dtype)
    kernels.dense_backward(x, w, z, z, da, kernels.ACTIVATIONS["linear"], 0.0, 0.0, dz, dw,
                           db, None)
    want = da[0].copy()
    for i in range(1, n):
        want = want + da[i]   # rows added in order, in the block's dtype
    np.testing.assert_array_equal(db, want)


@pytest.mark.parametrize("n, m", [(1, 1), (32, 10), (33, 16), (7, 17), (9, 3)])
def test_sparse_accuracy_matches_the_scalar_loop_with_ties_and_nan(isa, dtype, n, m):
    """The vector path against the compiled loop (level 0); NumPy's argmax would take the
    first NaN as the maximum, the compiled _argmax never does."""
    rng = np.random.default_rng([n, m, 5])
    z = rng.integers(-2, 3, (n, m)).astype(dtype)   # many ties: the first maximum counts
    if m > 2:
        z[0, 0] = np.nan          # a NaN first entry: argmax 0
        z[-1, 1] = np.nan         # a NaN later on: never the maximum
        z[n // 2, :] = -np.inf
    labels = rng.integers(0, m, n).astype(np.int32)
    code = kernels.METRICS["sparse_categorical_accuracy"]
    got = kernels.metric_sum(code, z, None, labels, None, 0.5)
    losses.small_isa(0)
    scalar = kernels.metric_sum(code, z, None, labels, None, 0.5)
    assert got == scalar
    clean = np.nan_to_num(z, nan=-5.0)
    assert (kernels.metric_sum(code, clean, None, labels, None, 0.5)
            == reference.metric_sum(code, clean, None, labels, None, 0.5))
