"""fastnn._kernels.optim: adam_update and sgd_update vs the reference and Keras's formulas."""
import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import reference

# The OpenMP loops split buffers of at least PARALLEL_MIN elements into CHUNK-element
# pieces.  Sizes: 1, odd, prime, just above one chunk (serial), and above the threshold
# with a partial last chunk (threaded when 2+ threads are set).
CHUNK, PARALLEL_MIN = kernels.CHUNK, kernels.PARALLEL_MIN
BIG = PARALLEL_MIN + CHUNK + 11
SIZES = [1, 7, 1009, CHUNK + 3, BIG]


@pytest.fixture
def two_threads():
    """Two OpenMP threads for fastnn's loops, restored afterwards."""
    old = kernels.get_num_threads()
    kernels.set_num_threads(2)
    yield
    kernels.set_num_threads(old)


def _state(rng, size, dtype):
    w = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal(size).astype(dtype)
    m = (0.1 * rng.standard_normal(size)).astype(dtype)
    v = (0.01 * rng.uniform(0, 1, size)).astype(dtype)
    return w, g, m, v


# ----------------------------------------------------------------------------- Adam

@pytest.mark.parametrize("step", [1, 2, 57])
@pytest.mark.parametrize("size", SIZES)
def test_adam_matches_reference(size, step, dtype, rng, tol):
    w, g, m, v = _state(rng, size, dtype)
    g0 = g.copy()
    got = [a.copy() for a in (w, m, v)]
    want = [a.copy() for a in (w, m, v)]
    args = (0.01, 0.9, 0.999, 1e-7, step)

    assert kernels.adam_update(got[0], g, got[1], got[2], *args) is None
    reference.adam_update(want[0], g, want[1], want[2], *args)

    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_array_equal(g, g0)


def test_adam_step_one_is_bias_corrected(dtype):
    # From m = v = 0, Keras's step 1 is
    #   m1 = (1 - b1) g,  v1 = (1 - b2) g^2,
    #   w1 = w0 - lr sqrt(1 - b2) / (1 - b1) * m1 / (sqrt(v1) + eps)
    # which with eps = 0 is w0 - lr sign(g) whatever |g| is.  Without the bias
    # correction the step would be lr (1 - b1) / sqrt(1 - b2) ~ 3.16 lr.
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    g64 = np.array([3.0, -0.5, 1e-3, -2e-4, 0.0, 40.0])
    w0 = np.linspace(-1, 1, g64.size).astype(dtype)
    g = g64.astype(dtype)
    for twin in (kernels, reference):
        w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        twin.adam_update(w, g, m, v, lr, b1, b2, eps, 1)
        gg = g.astype(np.float64)
        want_m, want_v = (1 - b1) * gg, (1 - b2) * gg * gg
        want_w = w0 - lr * np.sqrt(1 - b2) / (1 - b1) * want_m / (np.sqrt(want_v) + eps)
        rtol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(m, want_m, rtol=rtol)
        np.testing.assert_allclose(v, want_v, rtol=rtol)
        np.testing.assert_allclose(w, want_w, rtol=rtol, atol=1e-7 if dtype == np.float32 else 0)
        # where |g| >> eps the step is lr in the direction of -g; where g = 0, nothing moves
        big = np.abs(g64) >= 0.5
        np.testing.assert_allclose((w0 - w)[big], lr * np.sign(g64[big]), rtol=1e-5)
        assert w[4] == w0[4]
        # eps = 0: exactly the sign step (up to rounding) for every nonzero g
        nz = g64 != 0
        w, m, v = w0[nz].copy(), np.zeros(nz.sum(), dtype), np.zeros(nz.sum(), dtype)
        twin.adam_update(w, g[nz], m, v, lr, b1, b2, 0.0, 1)
        np.testing.assert_allclose(w0[nz] - w, lr * np.sign(g64[nz]),
                                   rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_adam_two_steps_by_hand(dtype):
    lr, b1, b2, eps = 0.1, 0.8, 0.99, 1e-7
    w0 = np.array([1.0, -2.0, 0.5], dtype)
    grads = [np.array([0.3, -0.1, 2.0], dtype), np.array([-0.2, -0.4, 1.0], dtype)]
    for twin in (kernels, reference):
        w, m, v = w0.copy(), np.zeros(3, dtype), np.zeros(3, dtype)
        hw, hm, hv = w0.astype(np.float64), np.zeros(3), np.zeros(3)
        for t, g in enumerate(grads, start=1):
            twin.adam_update(w, g, m, v, lr, b1, b2, eps, t)
            gg = g.astype(np.float64)
            hm = b1 * hm + (1 - b1) * gg
            hv = b2 * hv + (1 - b2) * gg * gg
            hw = hw - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * hm / (np.sqrt(hv) + eps)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(w, hw, rtol=rtol)
        np.testing.assert_allclose(m, hm, rtol=rtol)
        np.testing.assert_allclose(v, hv, rtol=rtol)


def test_adam_threads_give_identical_results(dtype, rng, two_threads):
    # elementwise: the chunked OpenMP loop must not change a single bit
    size = BIG
    w, g, m, v = _state(rng, size, dtype)
    out = {}
    for threads in (1, 2):
        kernels.set_num_threads(threads)
        ws, ms, vs = w.copy(), m.copy(), v.copy()
        for step in (1, 2, 3):
            kernels.adam_update(ws, g, ms, vs, 0.01, 0.9, 0.999, 1e-7, step)
        out[threads] = (ws, ms, vs)
    for a, b in zip(out[1], out[2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_adam_rejects_bad_arguments(dtype):
    z = lambda n: np.zeros(n, dtype)  # noqa: E731
    with pytest.raises(ValueError):
        kernels.adam_update(z(3), z(4), z(3), z(3), 0.1, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(ValueError):
        kernels.adam_update(z(3), z(3), z(2), z(3), 0.1, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(ValueError):
        kernels.adam_update(z(3), z(3), z(3), z(4), 0.1, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(ValueError):
        kernels.adam_update(z(3), z(3), z(3), z(3), 0.1, 0.9, 0.999, 1e-7, 0)


# ----------------------------------------------------------------------------- SGD

@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                                (0.5, True)],
                         ids=["plain", "momentum", "nesterov", "nesterov-0.5"])
@pytest.mark.parametrize("size", SIZES)
def test_sgd_matches_reference(size, momentum, nesterov, dtype, rng, tol):
    w, g, u, _ = _state(rng, size, dtype)
    g0 = g.copy()
    got, want = [w.copy(), u.copy()], [w.copy(), u.copy()]
    for _ in range(3):
        kernels.sgd_update(got[0], g, got[1], 0.05, momentum, nesterov)
        reference.sgd_update(want[0], g, want[1], 0.05, momentum, nesterov)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)],
                         ids=["plain", "momentum", "nesterov"])
def test_sgd_three_steps_by_hand(momentum, nesterov, dtype):
    # Keras: u = momentum u - lr g; w += u, or with Nesterov w += momentum u - lr g
    lr = 0.1
    w0 = np.array([1.0, -1.0, 0.25], dtype)
    grads = [np.array(g, dtype) for g in ([1.0, 2.0, -1.0], [0.5, -1.0, 0.0], [2.0, 0.0, 4.0])]
    for twin in (kernels, reference):
        w, u = w0.copy(), np.zeros(3, dtype)
        hw, hu = w0.astype(np.float64), np.zeros(3)
        for g in grads:
            twin.sgd_update(w, g, u, lr, momentum, nesterov)
            gg = g.astype(np.float64)
            if momentum == 0:
                hw = hw - lr * gg
            else:
                hu = momentum * hu - lr * gg
                hw = hw + (momentum * hu - lr * gg if nesterov else hu)
        rtol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(w, hw, rtol=rtol, atol=rtol)
        if momentum:
            np.testing.assert_allclose(u, hu, rtol=rtol, atol=rtol)


def test_sgd_first_nesterov_step_by_hand(dtype):
    # from u = 0: u1 = -lr g, w1 = w0 - lr g (1 + momentum)
    w0, g = np.array([0.5], dtype), np.array([2.0], dtype)
    for twin in (kernels, reference):
        w, u = w0.copy(), np.zeros(1, dtype)
        twin.sgd_update(w, g, u, 0.25, 0.5, True)
        np.testing.assert_array_equal(u, [-0.5])
        np.testing.assert_array_equal(w, [0.5 - 0.5 * 1.5])  # all exact in binary


def test_plain_sgd_leaves_velocity_alone(dtype, rng):
    w, g, _, _ = _state(rng, 10, dtype)
    for twin in (kernels, reference):
        velocity = np.full(10, np.nan, dtype)
        ws = w.copy()
        twin.sgd_update(ws, g, velocity, 0.1, 0.0, False)
        assert np.all(np.isnan(velocity))
        np.testing.assert_allclose(ws, w - dtype(0.1) * g, rtol=1e-6)
    # momentum 0 does not need a velocity buffer of the right length
    kernels.sgd_update(w.copy(), g, np.zeros(1, dtype), 0.1, 0.0, False)


def test_sgd_threads_give_identical_results(dtype, rng, two_threads):
    size = BIG
    w, g, u, _ = _state(rng, size, dtype)
    out = {}
    for threads in (1, 2):
        kernels.set_num_threads(threads)
        ws, us = w.copy(), u.copy()
        for _ in range(3):
            kernels.sgd_update(ws, g, us, 0.05, 0.9, True)
        out[threads] = (ws, us)
    for a, b in zip(out[1], out[2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_sgd_rejects_bad_arguments(dtype):
    z = lambda n: np.zeros(n, dtype)  # noqa: E731
    with pytest.raises(ValueError):
        kernels.sgd_update(z(3), z(4), z(3), 0.1, 0.0, False)
    with pytest.raises(ValueError):
        kernels.sgd_update(z(3), z(3), z(2), 0.1, 0.9, False)
