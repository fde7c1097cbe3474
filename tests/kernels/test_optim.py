"""fastnn._kernels.optim: the update and clipping kernels vs the reference and Keras's formulas."""
import platform

import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import reference

# Buffers of at least PARALLEL_MIN elements are cut into one piece per thread, each a
# whole number of CHUNKs, run on fastnn's pool.  Sizes: 1, odd, prime, just above one
# chunk (serial), and above the threshold with a partial last chunk (threaded when 2+
# threads are set).
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


# ----------------------------------------------------------------------------- AdamW

@pytest.mark.parametrize("step", [1, 2, 57])
@pytest.mark.parametrize("size", SIZES)
def test_adamw_matches_reference(size, step, dtype, rng, tol):
    w, g, m, v = _state(rng, size, dtype)
    g0 = g.copy()
    got = [a.copy() for a in (w, m, v)]
    want = [a.copy() for a in (w, m, v)]
    args = (0.01, 0.25, 0.9, 0.999, 1e-7, step)

    assert kernels.adamw_update(got[0], g, got[1], got[2], *args) is None
    reference.adamw_update(want[0], g, want[1], want[2], *args)

    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_array_equal(g, g0)


def test_adamw_two_steps_by_hand(dtype):
    # Keras AdamW: w <- w - w * wd * lr, then the Adam step with the same lr
    lr, wd, b1, b2, eps = 0.1, 0.5, 0.8, 0.99, 1e-7
    w0 = np.array([1.0, -2.0, 0.5], dtype)
    grads = [np.array([0.3, -0.1, 2.0], dtype), np.array([-0.2, -0.4, 1.0], dtype)]
    for twin in (kernels, reference):
        w, m, v = w0.copy(), np.zeros(3, dtype), np.zeros(3, dtype)
        hw, hm, hv = w0.astype(np.float64), np.zeros(3), np.zeros(3)
        for t, g in enumerate(grads, start=1):
            twin.adamw_update(w, g, m, v, lr, wd, b1, b2, eps, t)
            gg = g.astype(np.float64)
            hw = hw - hw * wd * lr
            hm = b1 * hm + (1 - b1) * gg
            hv = b2 * hv + (1 - b2) * gg * gg
            hw = hw - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * hm / (np.sqrt(hv) + eps)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(w, hw, rtol=rtol)
        np.testing.assert_allclose(m, hm, rtol=rtol)


def test_adamw_without_decay_is_adam_bit_for_bit(dtype, rng):
    w, g, m, v = _state(rng, 1009, dtype)
    a = [x.copy() for x in (w, m, v)]
    b = [x.copy() for x in (w, m, v)]
    kernels.adam_update(a[0], g, a[1], a[2], 0.01, 0.9, 0.999, 1e-7, 3)
    kernels.adamw_update(b[0], g, b[1], b[2], 0.01, 0.0, 0.9, 0.999, 1e-7, 3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_adamw_decays_weights_with_zero_gradient(dtype):
    # g = 0 leaves m = v = 0, so only the decay acts: w * (1 - wd lr) exactly as rounded
    w = np.array([2.0, -4.0, 0.0], dtype)
    for twin in (kernels, reference):
        ws = w.copy()
        z = np.zeros(3, dtype)
        twin.adamw_update(ws, z, z.copy(), z.copy(), 0.5, 0.25, 0.9, 0.999, 1e-7, 1)
        np.testing.assert_array_equal(ws, w * dtype(1 - 0.25 * 0.5))


# ----------------------------------------------------------------------------- RMSprop

RMS_CASES = [(0.0, False), (0.75, False), (0.0, True), (0.5, True)]
RMS_IDS = ["plain", "momentum", "centered", "centered-momentum"]


def _rms_state(rng, size, dtype):
    w, g, u, v = _state(rng, size, dtype)
    a = (0.01 * rng.standard_normal(size)).astype(dtype)
    # a reachable state: the mean square is at least the squared mean (v >= a^2)
    return w, g, (v + a * a).astype(dtype), u, a


@pytest.mark.parametrize("momentum, centered", RMS_CASES, ids=RMS_IDS)
@pytest.mark.parametrize("size", SIZES)
def test_rmsprop_matches_reference(size, momentum, centered, dtype, rng, tol):
    w, g, v, u, a = _rms_state(rng, size, dtype)
    g0 = g.copy()
    got = [x.copy() for x in (w, v, u, a)]
    want = [x.copy() for x in (w, v, u, a)]
    for _ in range(3):
        kernels.rmsprop_update(got[0], g, got[1], got[2], got[3], 0.01, 0.9, momentum, 1e-7,
                               centered)
        reference.rmsprop_update(want[0], g, want[1], want[2], want[3], 0.01, 0.9, momentum,
                                 1e-7, centered)
    for x, y in zip(got, want, strict=True):
        assert x.dtype == dtype
        np.testing.assert_allclose(x, y, **tol)
    np.testing.assert_array_equal(g, g0)
    if not momentum:
        np.testing.assert_array_equal(got[2], u)   # unused buffers are not touched
    if not centered:
        np.testing.assert_array_equal(got[3], a)


@pytest.mark.parametrize("momentum, centered", RMS_CASES, ids=RMS_IDS)
def test_rmsprop_three_steps_by_hand(momentum, centered, dtype):
    # Keras: v = rho v + (1 - rho) g^2; a = rho a + (1 - rho) g (centered);
    # step = lr g / sqrt(v + eps - a^2 or v + eps); u = momentum u + step; w -= u (or step)
    lr, rho, eps = 0.1, 0.8, 1e-3
    w0 = np.array([1.0, -1.0, 0.25], dtype)
    grads = [np.array(g, dtype) for g in ([1.0, 2.0, -1.0], [0.5, -1.0, 0.0], [2.0, 0.0, 4.0])]
    for twin in (kernels, reference):
        w, v, u, a = w0.copy(), np.zeros(3, dtype), np.zeros(3, dtype), np.zeros(3, dtype)
        hw, hv, hu, ha = w0.astype(np.float64), np.zeros(3), np.zeros(3), np.zeros(3)
        for g in grads:
            twin.rmsprop_update(w, g, v, u, a, lr, rho, momentum, eps, centered)
            gg = g.astype(np.float64)
            hv = rho * hv + (1 - rho) * gg * gg
            den = hv + eps
            if centered:
                ha = rho * ha + (1 - rho) * gg
                den = den - ha * ha
            step = lr * gg / np.sqrt(den)
            if momentum:
                hu = momentum * hu + step
                hw = hw - hu
            else:
                hw = hw - step
        rtol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(w, hw, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(v, hv, rtol=rtol, atol=rtol)


def test_rmsprop_unused_buffers_may_be_short(dtype, rng):
    w, g, v, _, _ = _rms_state(rng, 10, dtype)
    nan1 = np.full(1, np.nan, dtype)
    kernels.rmsprop_update(w, g, v, nan1, nan1.copy(), 0.01, 0.9, 0.0, 1e-7, False)
    assert np.isfinite(w).all() and np.isnan(nan1).all()


def test_rmsprop_rejects_bad_arguments(dtype):
    z = lambda n: np.zeros(n, dtype)  # noqa: E731
    with pytest.raises(ValueError, match="velocity"):
        kernels.rmsprop_update(z(3), z(3), z(2), z(3), z(3), 0.1, 0.9, 0.0, 1e-7, False)
    with pytest.raises(ValueError, match="momentum_buf"):
        kernels.rmsprop_update(z(3), z(3), z(3), z(2), z(3), 0.1, 0.9, 0.5, 1e-7, False)
    with pytest.raises(ValueError, match="average_grad"):
        kernels.rmsprop_update(z(3), z(3), z(3), z(3), z(2), 0.1, 0.9, 0.0, 1e-7, True)
    with pytest.raises(ValueError, match="same length"):
        kernels.rmsprop_update(z(3), z(4), z(3), z(3), z(3), 0.1, 0.9, 0.0, 1e-7, False)


def test_adamw_rejects_bad_arguments(dtype):
    z = lambda n: np.zeros(n, dtype)  # noqa: E731
    with pytest.raises(ValueError):
        kernels.adamw_update(z(3), z(4), z(3), z(3), 0.1, 0.1, 0.9, 0.999, 1e-7, 1)
    with pytest.raises(ValueError):
        kernels.adamw_update(z(3), z(3), z(3), z(3), 0.1, 0.1, 0.9, 0.999, 1e-7, 0)


@pytest.mark.parametrize("kind", ["adamw", "rmsprop-centered-momentum"])
def test_new_optimizers_threads_give_identical_results(kind, dtype, rng, two_threads):
    w, g, v, u, a = _rms_state(rng, BIG, dtype)
    out = {}
    for threads in (1, 2):
        kernels.set_num_threads(threads)
        bufs = [x.copy() for x in (w, v, u, a)]
        for step in (1, 2, 3):
            if kind == "adamw":
                kernels.adamw_update(bufs[0], g, bufs[1], bufs[2], 0.01, 0.1, 0.9, 0.999,
                                     1e-7, step)
            else:
                kernels.rmsprop_update(bufs[0], g, bufs[1], bufs[2], bufs[3], 0.01, 0.9, 0.5,
                                       1e-7, True)
        out[threads] = bufs
    for x, y in zip(out[1], out[2], strict=True):
        np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------------------- clipping

def _segments(rng, size):
    """A random partition of [0, size) into (offset, length) rows (some of length 1)."""
    cuts = np.unique(np.concatenate([[0, size], rng.integers(0, size + 1, 5), [min(1, size)]]))
    return np.stack([cuts[:-1], np.diff(cuts)], axis=1).astype(np.int64)


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0], ids=["small", "unit", "large"])
@pytest.mark.parametrize("size", SIZES)
def test_clip_by_norm_matches_reference(size, scale, dtype, rng, tol):
    g = (scale * rng.standard_normal(size)).astype(dtype)
    segments = _segments(rng, size)
    got, want = g.copy(), g.copy()
    kernels.clip_by_norm(got, segments, 1.5)
    reference.clip_by_norm(want, segments, 1.5)
    np.testing.assert_allclose(got, want, **tol)
    for off, length in segments:
        norm = np.linalg.norm(got[off:off + length].astype(np.float64))
        assert norm <= 1.5 * (1 + 1e-5)
        if np.linalg.norm(g[off:off + length].astype(np.float64)) < 1.4:
            np.testing.assert_allclose(got[off:off + length], g[off:off + length], rtol=1e-6)


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0], ids=["small", "unit", "large"])
@pytest.mark.parametrize("size", SIZES)
def test_clip_by_global_norm_matches_reference(size, scale, dtype, rng, tol):
    g = (scale * rng.standard_normal(size)).astype(dtype)
    got, want = g.copy(), g.copy()
    kernels.clip_by_global_norm(got, 2.0)
    reference.clip_by_global_norm(want, 2.0)
    np.testing.assert_allclose(got, want, **tol)
    norm0 = np.linalg.norm(g.astype(np.float64))
    norm = np.linalg.norm(got.astype(np.float64))
    np.testing.assert_allclose(norm, min(norm0, 2.0), rtol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_clip_by_value_matches_reference(size, dtype, rng):
    g = (3 * rng.standard_normal(size)).astype(dtype)
    got, want = g.copy(), g.copy()
    kernels.clip_by_value(got, 0.5)
    reference.clip_by_value(want, 0.5)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.clip(g, dtype(-0.5), dtype(0.5)))


def test_clipping_by_hand(dtype):
    # (3, 4) has norm 5: clipnorm 1 gives (0.6, 0.8); a zero variable stays zero;
    # global norm of (3, 4, 0, 0) is 5 as well
    for twin in (kernels, reference):
        g = np.array([3.0, 4.0, 0.0, 0.0], dtype)
        twin.clip_by_norm(g, np.array([[0, 2], [2, 2]], np.int64), 1.0)
        np.testing.assert_allclose(g, [0.6, 0.8, 0, 0], rtol=1e-6)
        g = np.array([3.0, 4.0, 0.0, 0.0], dtype)
        twin.clip_by_global_norm(g, 2.5)
        np.testing.assert_allclose(g, [1.5, 2.0, 0, 0], rtol=1e-6)
        g = np.zeros(4, dtype)              # zero norm: scale 1, no NaN
        twin.clip_by_global_norm(g, 2.5)
        np.testing.assert_array_equal(g, 0)
        g = np.array([-2.0, -0.25, 0.25, 2.0, np.nan], dtype)
        twin.clip_by_value(g, 1.0)
        np.testing.assert_array_equal(g[:4], [-1.0, -0.25, 0.25, 1.0])
        assert np.isnan(g[4])


def test_clipping_propagates_nan(dtype):
    # Keras: a NaN norm makes the whole clipped variable (global: every gradient) NaN
    for twin in (kernels, reference):
        g = np.array([1.0, np.nan, 2.0, 3.0], dtype)
        twin.clip_by_norm(g, np.array([[0, 2], [2, 2]], np.int64), 1.0)
        assert np.isnan(g[:2]).all() and np.isfinite(g[2:]).all()
        g = np.array([1.0, np.nan, 2.0, 3.0], dtype)
        twin.clip_by_global_norm(g, 1.0)
        assert np.isnan(g).all()


def test_clipping_rejects_bad_arguments(dtype):
    g = np.ones(4, dtype)
    with pytest.raises(ValueError, match="segment outside"):
        kernels.clip_by_norm(g, np.array([[2, 3]], np.int64), 1.0)
    with pytest.raises(ValueError, match="segment outside"):
        kernels.clip_by_norm(g, np.array([[-1, 2]], np.int64), 1.0)
    with pytest.raises(ValueError, match="shape"):
        kernels.clip_by_norm(g, np.zeros((1, 3), np.int64), 1.0)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="clipnorm"):
            kernels.clip_by_norm(g, np.array([[0, 4]], np.int64), bad)
        with pytest.raises(ValueError, match="clipnorm"):
            kernels.clip_by_global_norm(g, bad)
        with pytest.raises(ValueError, match="clipvalue"):
            kernels.clip_by_value(g, bad)
    np.testing.assert_array_equal(g, 1)


# ----------------------------------------------------------------------------- FP mode
# Flush-to-zero (FTZ) and denormals-are-zero (DAZ) are per-thread bits of MXCSR.  The
# engine sets them on the calling thread; each pool worker must take the caller's mode
# explicitly, or its pieces run in whatever mode the thread was created with.

FTZ_DAZ = 0x8040


@pytest.mark.skipif(not kernels.openmp_available(), reason="built without OpenMP")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="MXCSR is x86")
def test_every_worker_runs_in_the_callers_fp_mode(two_threads):
    from fastnn._kernels.optim import _thread_fp_modes

    from fastnn._kernels import _pool

    if not _pool.pool_available():
        pytest.skip("built without pthreads: no pool workers")
    for flush in (False, True, False, True):
        _pool.reset_backoff()  # a loaded machine may have made the pool run jobs alone
        modes, tids = _thread_fp_modes(flush)
        assert set(tids) == {0, 1}                      # caller and a worker ran pieces
        assert (modes == (FTZ_DAZ if flush else 0)).all(), (flush, modes, tids)


# A fresh interpreter: the OpenMP pool is first started from a thread *without* FTZ (a
# plain kernel call), then the engine (which sets FTZ on its own thread) trains one Dense
# layer of more than PARALLEL_MIN parameters on inputs whose squared gradients are
# denormal.  1 and 2 threads must give the same bits for w, m and v.
_ENGINE_FTZ_SCRIPT = r"""
import sys
import numpy as np
import fastnn._kernels as k

dtype = np.dtype(sys.argv[1])
# the kernel gradient is about 4e-3 * tiny; its square times (1 - beta_2) is denormal
tiny = 1e-17 if dtype == np.float32 else 1e-153
n_in, n_out = 600, 500
n_params = n_in * n_out + n_out
assert n_params > k.PARALLEL_MIN

k.set_num_threads(2)
z = np.zeros(k.PARALLEL_MIN + 1, dtype)
k.adam_update(z.copy(), z, z.copy(), z.copy(), 0.1, 0.9, 0.999, 1e-7, 1)  # start the pool

rng = np.random.default_rng(0)
params0 = (0.01 * rng.standard_normal(n_params)).astype(dtype)
x = np.full((2, n_in), tiny, dtype)
y = np.ones((2, n_out), dtype)
spec = [{"kind": "dense", "n_in": n_in, "n_out": n_out, "activation": 0,
         "w_off": 0, "b_off": n_in * n_out}]
out = {}
for threads in (1, 2):
    k.set_num_threads(threads)
    params = params0.copy()
    engine = k.Engine(spec, params, np.zeros(0, dtype), k.LOSSES["mse"], False, [], 0.5)
    m, v = np.zeros_like(params), np.zeros_like(params)
    engine.set_optimizer("adam", m, v)
    engine.train(x, y, None, None, np.arange(2, dtype=np.int64), 2, 0, 1,
                 np.full(1, 0.001), 0, 0, np.zeros(2))
    out[threads] = (params, m, v)
v2 = out[2][2][: n_in * n_out]
subnormal = (v2 != 0) & (np.abs(v2) < np.finfo(dtype).tiny)
print("denormal-or-flushed", int(np.sum(v2 == 0)), int(np.sum(subnormal)))
for a, b in zip(out[1], out[2]):
    np.testing.assert_array_equal(a, b)
print("identical")
"""


@pytest.mark.skipif(not kernels.openmp_available(), reason="built without OpenMP")
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="MXCSR is x86")
def test_engine_adam_is_bit_identical_over_threads_with_denormals(dtype, run_python):
    result = run_python(["-c", _ENGINE_FTZ_SCRIPT, np.dtype(dtype).name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout
    # the kernel gradients really are flushed (FTZ on every thread): no denormal v left
    flushed, denormal = map(int, result.stdout.split("denormal-or-flushed")[1].split()[:2])
    assert denormal == 0 and flushed > 0


@pytest.mark.parametrize("kind", ["adam", "sgd", "rmsprop"])
def test_denormal_inputs_threads_bit_identical(kind, dtype, two_threads):
    # the plain kernels run in the caller's mode on every thread (here: no flushing)
    tiny = 1e-20 if dtype == np.float32 else 1e-156
    rng = np.random.default_rng(5)
    w = rng.standard_normal(BIG).astype(dtype)
    g = (tiny * rng.standard_normal(BIG)).astype(dtype)
    out = {}
    for threads in (1, 2):
        kernels.set_num_threads(threads)
        bufs = [w.copy(), np.zeros(BIG, dtype), np.zeros(BIG, dtype), np.zeros(BIG, dtype)]
        for step in (1, 2):
            if kind == "adam":
                kernels.adam_update(bufs[0], g, bufs[1], bufs[2], 0.01, 0.9, 0.999, 1e-7, step)
            elif kind == "sgd":
                kernels.sgd_update(bufs[0], g * dtype(tiny), bufs[1], 0.01, 0.9, False)
            else:
                kernels.rmsprop_update(bufs[0], g, bufs[1], bufs[2], bufs[3], 0.01, 0.9, 0.5,
                                       1e-7, True)
        out[threads] = bufs
    assert (np.abs(out[1][2 if kind == "adam" else 1]) < np.finfo(dtype).tiny).any()
    for a, b in zip(out[1], out[2], strict=True):
        np.testing.assert_array_equal(a, b)
