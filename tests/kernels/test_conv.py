"""Convolution and max-pooling kernels: compiled vs NumPy twin, and gradients."""
import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import ACTIVATIONS, reference
from fastnn._kernels._shapes import geometry, window_geometry

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
# (n, h, w, c, kh, kw, f, strides, padding): 1-row batches, 1-D (h = kh = 1), primes,
# strides that do not divide, windows as large as the input
CASES = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), "valid"),
    (1, 1, 100, 1, 1, 20, 3, (1, 10), "valid"),      # the course's ECG layer
    (2, 1, 9, 3, 1, 5, 2, (1, 2), "same"),
    (3, 8, 8, 1, 3, 3, 16, (1, 1), "same"),
    (2, 7, 5, 3, 3, 2, 4, (2, 2), "same"),
    (2, 7, 5, 3, 3, 2, 4, (2, 3), "valid"),
    (1, 5, 6, 2, 5, 6, 3, (1, 1), "valid"),
    (4, 13, 11, 5, 4, 3, 7, (3, 2), "same"),
    (2, 6, 6, 2, 2, 2, 3, (2, 2), "same"),
]
ACTS = ["linear", "relu", "sigmoid", "tanh"]


def _arrays(dtype, n, h, w, c, kh, kw, f, strides, padding):
    rng = np.random.default_rng([n, h, w, c, kh, kw, f, *strides, len(padding)])
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = rng.standard_normal((kh, kw, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    g = geometry((h, w, c), (kh, kw), strides, padding, f)
    return rng, x, k, b, g


def _forward(mod, x, k, b, g, strides, padding, act):
    n, oh, ow, f = x.shape[0], g[9], g[10], g[11]
    cols = np.full((n * oh * ow, g[3] * g[4] * g[2]), np.nan, x.dtype)
    z, a = np.full((n, oh, ow, f), np.nan, x.dtype), np.full((n, oh, ow, f), np.nan, x.dtype)
    mod.conv_forward(x, k, b, strides, padding, ACTIVATIONS[act], 0.0, cols, z, a)
    return cols, z, a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act", ACTS)
def test_conv_forward_matches_reference(dtype, case, act):
    *dims, strides, padding = case
    _, x, k, b, g = _arrays(dtype, *dims, strides, padding)
    before = x.copy(), k.copy()
    got = _forward(kernels, x, k, b, g, strides, padding, act)
    want = _forward(reference, x, k, b, g, strides, padding, act)
    for gv, wv in zip(got, want, strict=True):
        np.testing.assert_allclose(gv, wv, **TOL[dtype])
        assert gv.dtype == dtype
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(k, before[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_backward_matches_reference(dtype, case, act, with_bias):
    *dims, strides, padding = case
    rng, x, k, b, g = _arrays(dtype, *dims, strides, padding)
    b = b if with_bias else None
    _, z, a = _forward(reference, x, k, b, g, strides, padding, act)
    da = rng.standard_normal(z.shape).astype(dtype)
    results = []
    for mod in (kernels, reference):
        outs = [np.full(z.shape, np.nan, dtype), np.full(k.shape, np.nan, dtype),
                np.full(k.shape[3], np.nan, dtype) if with_bias else None,
                np.full(x.shape, np.nan, dtype)]
        cols = np.empty((z.shape[0] * g[9] * g[10], g[2] * g[3] * g[4]), dtype)
        mod.conv_backward(x, k, b, z, a, da, strides, padding, ACTIVATIONS[act], 0.0, 0.01,
                          *outs, cols)
        results.append(outs)
    for got, want in zip(*results, strict=True):
        if want is not None:
            np.testing.assert_allclose(got, want, **TOL[dtype])


def _pool(mod, x, pool, strides, padding):
    g = geometry(x.shape[1:], pool, strides, padding, x.shape[3])
    out = np.full((x.shape[0], g[9], g[10], x.shape[3]), np.nan, x.dtype)
    idx = np.full_like(out, np.nan)
    mod.maxpool_forward(x, pool, strides, padding, out, idx)
    return out, idx


POOLS = [((1, 1, 1, 1), (1, 1), (1, 1), "valid"), ((2, 8, 8, 3), (2, 2), (2, 2), "valid"),
         ((3, 7, 5, 2), (2, 2), (2, 2), "same"), ((2, 7, 7, 4), (3, 3), (2, 2), "valid"),
         ((1, 1, 9, 3), (1, 2), (1, 2), "same"), ((2, 5, 6, 1), (3, 2), (1, 1), "same")]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, pool, strides, padding", POOLS)
def test_maxpool_matches_reference(dtype, shape, pool, strides, padding):
    rng = np.random.default_rng(list(shape))
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, 0] = x.flat[-1]             # a tie
    got, want = _pool(kernels, x, pool, strides, padding), _pool(reference, x, pool, strides,
                                                                  padding)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    dout = rng.standard_normal(got[0].shape).astype(dtype)
    dx = [np.full(shape, np.nan, dtype) for _ in range(2)]
    kernels.maxpool_backward(dout, got[1], pool, strides, padding, dx[0])
    reference.maxpool_backward(dout, want[1], pool, strides, padding, dx[1])
    np.testing.assert_allclose(dx[0], dx[1], **TOL[dtype])


def test_maxpool_ties_go_to_the_first_maximum():
    x = np.zeros((1, 2, 2, 1), np.float32)      # e.g. relu outputs: every entry ties
    out, idx = _pool(kernels, x, (2, 2), (2, 2), "valid")
    dx = np.empty_like(x)
    kernels.maxpool_backward(np.ones_like(out), idx, (2, 2), (2, 2), "valid", dx)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0], [0, 0]])


@pytest.mark.parametrize("size, window, stride, padding, want", [
    (100, 20, 10, "valid", (9, 0)), (9, 5, 2, "valid", (3, 0)), (8, 3, 1, "same", (8, 1)),
    (7, 2, 2, "same", (4, 0)), (6, 3, 2, "same", (3, 0)), (6, 4, 2, "same", (3, 1)),
    (5, 5, 1, "valid", (1, 0))])
def test_window_geometry_is_tensorflows(size, window, stride, padding, want):
    assert window_geometry(size, window, stride, padding) == want


def test_window_that_does_not_fit_raises():
    with pytest.raises(ValueError, match="does not fit"):
        window_geometry(3, 5, 1, "valid")
    with pytest.raises(ValueError, match="padding"):
        window_geometry(3, 2, 1, "full")


def test_conv_shape_mismatch_raises():
    x = np.zeros((1, 4, 4, 2), np.float32)
    k = np.zeros((3, 3, 3, 1), np.float32)
    z = np.zeros((1, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="channels"):
        kernels.conv_forward(x, k, None, (1, 1), "valid", 0, 0.0, np.zeros((4, 27), np.float32),
                             z, z.copy())
    k = np.zeros((3, 3, 2, 1), np.float32)
    with pytest.raises(ValueError, match="z_out"):
        kernels.conv_forward(x, k, None, (1, 1), "same", 0, 0.0, np.zeros((16, 18), np.float32),
                             z, z.copy())


@pytest.mark.parametrize("mod", [kernels, reference], ids=["compiled", "reference"])
@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[7], CASES[8]])
def test_conv_gradients_match_central_differences(mod, case):
    *dims, strides, padding = case
    rng, x, k, b, g = _arrays(np.float64, *dims, strides, padding)
    r = rng.standard_normal((x.shape[0], g[9], g[10], g[11]))
    act = ACTIVATIONS["tanh"]

    def loss():
        return float((_forward(mod, x, k, b, g, strides, padding, "tanh")[2] * r).sum())

    _, z, a = _forward(mod, x, k, b, g, strides, padding, "tanh")
    dz, dk, db, dx = np.empty_like(z), np.empty_like(k), np.empty_like(b), np.empty_like(x)
    cols = np.empty((z.shape[0] * g[9] * g[10], g[2] * g[3] * g[4]))
    mod.conv_backward(x, k, b, z, a, r, strides, padding, act, 0.0, 0.0, dz, dk, db, dx, cols)
    for arr, grad in ((x, dx), (k, dk), (b, db)):
        for i in rng.choice(arr.size, min(arr.size, 12), replace=False):
            old, h = arr.flat[i], 1e-5
            arr.flat[i] = old + h
            up = loss()
            arr.flat[i] = old - h
            down = loss()
            arr.flat[i] = old
            np.testing.assert_allclose(grad.flat[i], (up - down) / (2 * h), rtol=1e-6,
                                       atol=1e-8)


@pytest.mark.parametrize("mod", [kernels, reference], ids=["compiled", "reference"])
def test_maxpool_gradient_matches_central_differences(mod):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 5, 3))
    r = rng.standard_normal((2, 4, 3, 3))

    def loss():
        return float((_pool(mod, x, (2, 2), (2, 2), "same")[0] * r).sum())

    _, idx = _pool(mod, x, (2, 2), (2, 2), "same")
    dx = np.empty_like(x)
    mod.maxpool_backward(r, idx, (2, 2), (2, 2), "same", dx)
    for i in range(x.size):
        old, h = x.flat[i], 1e-6
        x.flat[i] = old + h
        up = loss()
        x.flat[i] = old - h
        down = loss()
        x.flat[i] = old
        np.testing.assert_allclose(dx.flat[i], (up - down) / (2 * h), rtol=1e-6, atol=1e-8)
