"""Property-based tests (hypothesis): every compiled kernel against its NumPy twin over
random shapes (0 where allowed, 1, primes), both dtypes and extreme values; strided
inputs through the public API; and invariants of fit, predict and saving.

The example counts are small (the module runs in well under a minute); a failure prints
the shrunk example, which reproduces with ``@example`` or ``--hypothesis-seed``.
"""
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastnn  # noqa: E402
import fastnn._kernels as kernels  # noqa: E402
from fastnn._kernels import ACTIVATIONS, LOSSES, METRICS, reference  # noqa: E402
from fastnn.layers import Dense, Dropout, Normalization  # noqa: E402
from fastnn.saving import from_bytes, to_bytes  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(SETTINGS, max_examples=15)

SIZES = st.sampled_from([1, 2, 3, 5, 7, 8, 11, 13, 16, 17, 31])
DTYPES = st.sampled_from([np.float32, np.float64])
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-13}
# magnitudes for "extreme" values: tiny, ordinary, and large enough to saturate every
# activation and every exponential (but not to overflow a float32 product sum)
SCALES = st.sampled_from([1e-30, 1e-3, 1.0, 30.0, 1e4])


def arrays(draw, shape, dtype, scale=None):
    scale = draw(SCALES) if scale is None else scale
    seed = draw(st.integers(0, 2 ** 32 - 1))
    a = np.random.default_rng(seed).standard_normal(shape) * scale
    return a.astype(dtype)


def close(got, want, dtype, magnitude=None):
    """|got - want| <= rtol * (|want| or the terms' magnitude) + a tiny atol, NaN == NaN."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    same_special = (np.isnan(got) & np.isnan(want)) | (np.isinf(got) & (got == want))
    mag = np.abs(want) if magnitude is None else np.asarray(magnitude, np.float64)
    bound = RTOL[dtype] * mag + ATOL[dtype]
    ok = same_special | (np.abs(got - want) <= bound)
    assert ok.all(), (got[~ok][:5], want[~ok][:5])


# ----------------------------------------------------------------------------- kernels

@SETTINGS
@given(st.data())
def test_matmul_against_numpy_twin(data):
    dtype = data.draw(DTYPES)
    m, n, k = data.draw(SIZES), data.draw(SIZES), data.draw(SIZES)
    trans_a, trans_b = data.draw(st.booleans()), data.draw(st.booleans())
    methods = ["auto", "blas"] + (["tiled"] if n >= 8 and n * k <= 4096 else [])
    method, beta = data.draw(st.sampled_from(methods)), data.draw(st.sampled_from([0.0, 1.0]))
    a = arrays(data.draw, (k, m) if trans_a else (m, k), dtype, 1.0)
    b = arrays(data.draw, (n, k) if trans_b else (k, n), dtype, 1.0)
    c0 = arrays(data.draw, (m, n), dtype, 1.0)
    got, want = c0.copy(), c0.copy()
    kernels.matmul(a, b, trans_a, trans_b, got, method, beta)
    reference.matmul(a, b, trans_a, trans_b, want, method, beta)
    opa, opb = (a.T if trans_a else a), (b.T if trans_b else b)
    close(got, want, dtype, np.abs(opa) @ np.abs(opb) + np.abs(c0))


@SETTINGS
@given(st.data())
def test_activation_forward_against_numpy_twin(data):
    dtype = data.draw(DTYPES)
    n, m = data.draw(st.sampled_from([0, 1, 2, 7, 13])), data.draw(SIZES)
    name = data.draw(st.sampled_from(sorted(ACTIVATIONS)))
    z = arrays(data.draw, (n, m), dtype)
    got, want = np.full_like(z, np.nan), np.full_like(z, np.nan)
    with np.errstate(over="ignore", under="ignore"):
        kernels.activation_forward(z, ACTIVATIONS[name], 0.3, got)
        reference.activation_forward(z, ACTIVATIONS[name], 0.3, want)
    close(got, want, dtype)


@SETTINGS
@given(st.data())
def test_dense_forward_and_backward_against_numpy_twin(data):
    dtype = data.draw(DTYPES)
    n, k, m = data.draw(SIZES), data.draw(SIZES), data.draw(SIZES)
    name = data.draw(st.sampled_from([a for a in sorted(ACTIVATIONS) if a != "softmax"]))
    act = ACTIVATIONS[name]
    x, w = arrays(data.draw, (n, k), dtype, 1.0), arrays(data.draw, (k, m), dtype, 1.0)
    b = arrays(data.draw, (m,), dtype, 1.0) if data.draw(st.booleans()) else None
    outs = {}
    for twin in (kernels, reference):
        z, a = np.empty((n, m), dtype), np.empty((n, m), dtype)
        twin.dense_forward(x, w, b, act, 0.3, z, a)
        da = np.ones((n, m), dtype)
        dz, dw = np.empty((n, m), dtype), np.empty((k, m), dtype)
        db, dx = np.empty(m, dtype), np.empty((n, k), dtype)
        with np.errstate(under="ignore"):
            twin.dense_backward(x, w, z, a, da, act, 0.3, 0.01, dz, dw, db, dx)
        outs[twin] = (z, a, dz, dw, db, dx)
    zg, ag, dzg, dwg, dbg, dxg = outs[kernels]
    zw, aw, dzw, dww, dbw, dxw = outs[reference]
    close(zg, zw, dtype, np.abs(x) @ np.abs(w) + (0 if b is None else np.abs(b)))
    close(ag, aw, dtype, np.abs(x) @ np.abs(w) + 1)
    close(dzg, dzw, dtype, np.ones_like(dzw))
    close(dwg, dww, dtype, np.abs(x).T @ np.abs(dzw) + np.abs(w))
    close(dbg, dbw, dtype, np.abs(dzw).sum(0))
    close(dxg, dxw, dtype, np.abs(dzw) @ np.abs(w).T)


LOGIT_LOSSES = ("sparse_softmax_xent", "softmax_xent", "sigmoid_bce")


@SETTINGS
@given(st.data())
def test_losses_against_numpy_twin(data):
    dtype = data.draw(DTYPES)
    name = data.draw(st.sampled_from(sorted(LOSSES)))
    n, m = data.draw(SIZES), data.draw(SIZES)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    if name in LOGIT_LOSSES or name in ("mse", "mae", "huber"):
        pred = rng.standard_normal((n, m)) * data.draw(st.sampled_from([1e-3, 1.0, 30.0, 1e3]))
    else:  # probabilities, including exact 0 and 1 (the kernels clip)
        pred = rng.choice([0.0, 1e-9, 0.3, 0.5, 0.999, 1.0], (n, m))
        if name in ("sparse_cce", "cce"):
            # a categorical output row is a distribution: never all zeros (its rescaling
            # by the row sum is 0/0 there, in Keras as in the twin)
            pred[:, 0] = np.maximum(pred[:, 0], 0.3)
    pred = pred.astype(dtype)
    if name in ("sparse_softmax_xent", "sparse_cce"):
        target = rng.integers(0, m, n).astype(np.intc)
    elif name in ("softmax_xent", "cce"):
        target = rng.dirichlet(np.ones(m), n).astype(dtype)
    elif name in ("sigmoid_bce", "bce"):
        target = rng.integers(0, 2, (n, m)).astype(dtype)
    else:
        target = rng.standard_normal((n, m)).astype(dtype)
    sw = rng.choice([0.0, 0.5, 2.0], n).astype(dtype) if data.draw(st.booleans()) else None
    extra = (data.draw(st.sampled_from([0.5, 1.0, 3.0])),) if name == "huber" else ()
    results = []
    for twin in (kernels, reference):
        grad = np.full((n, m), np.nan, dtype)
        with np.errstate(under="ignore"):
            loss = getattr(twin, name)(pred, target, sw, 1.0 / n, grad, *extra)
        results.append((loss, grad))
    (lg, gg), (lw, gw) = results
    assert np.isfinite(lg) and np.isfinite(gg).all()
    close(gg, gw, dtype, np.abs(gw) + 1e-6)
    close(lg, lw, dtype, abs(lw) + 1e-6 * n)


@SETTINGS
@given(st.data())
def test_metric_sum_against_numpy_twin(data):
    dtype = data.draw(DTYPES)
    name = data.draw(st.sampled_from(sorted(METRICS)))
    n = data.draw(SIZES)
    m = 1 if name == "binary_accuracy" and data.draw(st.booleans()) else data.draw(SIZES)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    pred = rng.uniform(0, 1, (n, m)).astype(dtype)
    labels = rng.integers(0, m, n).astype(np.intc) if name == "sparse_categorical_accuracy" \
        else None
    y = None if labels is not None else rng.integers(0, 2, (n, m)).astype(dtype)
    sw = rng.uniform(0, 2, n).astype(dtype) if data.draw(st.booleans()) else None
    got = kernels.metric_sum(METRICS[name], pred, y, labels, sw, 0.5)
    want = reference.metric_sum(METRICS[name], pred, y, labels, sw, 0.5)
    close(got, want, dtype, n * 2.0)


@SETTINGS
@given(st.data())
def test_optimizer_updates_against_numpy_twin(data):
    dtype = data.draw(DTYPES)
    n = data.draw(st.sampled_from([0, 1, 2, 7, 13, 1009]))
    w, g = arrays(data.draw, (n,), dtype), arrays(data.draw, (n,), dtype)
    if data.draw(st.booleans()):
        m0 = arrays(data.draw, (n,), dtype, 1e-2)
        v0 = np.abs(arrays(data.draw, (n,), dtype, 1e-2))
        step = data.draw(st.integers(1, 10 ** 6))
        state = {}
        for twin in (kernels, reference):
            state[twin] = (w.copy(), m0.copy(), v0.copy())
            with np.errstate(under="ignore", over="ignore"):
                twin.adam_update(state[twin][0], g, state[twin][1], state[twin][2], 1e-3, 0.9,
                                 0.999, 1e-7, step)
        for got, want in zip(state[kernels], state[reference], strict=True):
            close(got, want, dtype, np.abs(want) + np.abs(w) + 1e-3)
    else:
        momentum = data.draw(st.sampled_from([0.0, 0.9]))
        nesterov = data.draw(st.booleans())
        u0 = arrays(data.draw, (n,), dtype, 1e-2)
        state = {}
        for twin in (kernels, reference):
            state[twin] = (w.copy(), u0.copy())
            with np.errstate(under="ignore", over="ignore"):
                twin.sgd_update(state[twin][0], g, state[twin][1], 0.01, momentum, nesterov)
        for got, want in zip(state[kernels], state[reference], strict=True):
            close(got, want, dtype, np.abs(want) + np.abs(w) + np.abs(g) * 0.01 + 1e-3)


# ----------------------------------------------------------------------------- public API

def _model(draw, dtype, n_in, n_out=3, loss="logits", dropout=True):
    """A small random Sequential; loss "logits" is sparse categorical cross-entropy from
    logits (on a linear output the probability form divides by a row sum that can be 0)."""
    if loss == "logits":
        loss = fastnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    fastnn.set_random_seed(draw(st.integers(0, 1000)))
    hidden = draw(SIZES)
    act = draw(st.sampled_from(["relu", "tanh", "sigmoid", "swish", "linear"]))
    layers = [Dense(hidden, activation=act)]
    if draw(st.booleans()):
        layers.insert(0, Normalization(mean=np.zeros(n_in), variance=np.ones(n_in)))
    if dropout and draw(st.booleans()):
        layers.append(Dropout(0.25))
    layers.append(Dense(n_out))
    model = fastnn.Sequential(layers, dtype=np.dtype(dtype).name)
    model.compile(optimizer=draw(st.sampled_from(["adam", "sgd"])), loss=loss)
    return model


@FEW
@given(st.data())
def test_strided_and_fortran_inputs_predict_like_their_contiguous_copies(data):
    dtype = data.draw(DTYPES)
    n_in = data.draw(SIZES)
    model = _model(data.draw, dtype, n_in)
    model.build(n_in)
    source = arrays(data.draw, (2 * data.draw(SIZES), 2 * n_in + 1), data.draw(DTYPES), 1.0)
    view = data.draw(st.sampled_from(["rows", "cols", "fortran", "reversed"]))
    x = {"rows": source[::2, :n_in], "cols": source[:, 1:2 * n_in + 1:2],
         "fortran": np.asfortranarray(source[:, :n_in]),
         "reversed": source[::-1, :n_in]}[view]
    got = model.predict(x, verbose=0)
    want = model.predict(np.ascontiguousarray(x), verbose=0)
    np.testing.assert_array_equal(got, want)


def _batch_and_rows(data):
    dtype = data.draw(DTYPES)
    n_in = data.draw(SIZES)
    model = _model(data.draw, dtype, n_in)
    x = arrays(data.draw, (data.draw(SIZES), n_in), dtype, 1.0)
    batch = model.predict(x, verbose=0)
    rows = np.concatenate([model.predict(x[i:i + 1], verbose=0) for i in range(len(x))])
    return dtype, batch, rows


@FEW
@given(st.data())
def test_predict_of_a_batch_equals_row_by_row_predict_to_rounding(data):
    dtype, batch, rows = _batch_and_rows(data)
    np.testing.assert_allclose(batch, rows, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


# Guaranteed by construction: inference multiplies with the row-exact kernel
# (csrc/fnn_gemm_rows.h), which sums each element in index order whatever the row count,
# and every other inference step is elementwise or row by row.  (With OpenBLAS a 1-, 2-
# or 3-row predict differed from the same rows inside a larger batch in the last bit:
# 516 of 900 outputs of a 100-256-3 float64 net.)
@FEW
@given(st.data())
def test_predict_of_a_batch_equals_row_by_row_predict_bit_for_bit(data):
    _, batch, rows = _batch_and_rows(data)
    np.testing.assert_array_equal(batch, rows)


@FEW
@given(st.data())
def test_one_full_batch_step_does_not_depend_on_row_order(data):
    n_in, n = data.draw(SIZES), data.draw(st.sampled_from([2, 5, 13, 32]))
    model = _model(data.draw, np.float64, n_in, dropout=False)  # masks go by row position
    model.build(n_in)
    start = model.get_weights()
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x, y = rng.standard_normal((n, n_in)), rng.integers(0, 3, n)
    perm = rng.permutation(n)
    results = []
    for xs, ys in ((x, y), (x[perm], y[perm])):
        model.set_weights(start)
        model.compile(optimizer=type(model.optimizer)(), loss=model.loss)  # fresh state
        model.fit(xs, ys, batch_size=n, epochs=1, shuffle=False, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@FEW
@given(st.data())
def test_saved_and_loaded_model_is_bit_identical(data):
    dtype = data.draw(DTYPES)
    n_in = data.draw(SIZES)
    loss = data.draw(st.sampled_from(["logits", "mse"]))
    model = _model(data.draw, dtype, n_in, loss=loss)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.standard_normal((16, n_in))
    y = rng.integers(0, 3, 16) if loss != "mse" else rng.standard_normal((16, 3))
    model.fit(x, y, epochs=data.draw(st.integers(1, 2)), batch_size=8, verbose=0)
    data_bytes = to_bytes(model)
    loaded = from_bytes(data_bytes)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer._slots, loaded.optimizer._slots, strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert to_bytes(loaded) == data_bytes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_in, hidden, n_out, act, out_act", [
    (64, 25, 10, "relu", "softmax"), (7, 13, 3, "tanh", None), (31, 257, 1, "sigmoid", None),
    (100, 256, 3, "swish", "softmax"), (5, 2, 17, "linear", "sigmoid"),
    (1, 1, 1, "relu", None), (11, 37, 5, "leaky_relu", None)])
def test_predict_rows_are_bit_identical_whatever_the_batch(dtype, n_in, hidden, n_out, act,
                                                           out_act):
    """Row i of predict(X) equals predict(X[i:i+1]) and row i of every prefix batch,
    for batch sizes 1..70, 257 and 1000 (several 1024-row chunks when cast from float64)."""
    fastnn.set_random_seed(n_in + hidden)
    model = fastnn.Sequential(
        [Normalization(mean=np.full(n_in, 0.5), variance=np.full(n_in, 2.0)),
         Dense(hidden, activation=act), Dropout(0.3), Dense(hidden, activation=act),
         Dense(n_out, activation=out_act)], dtype=np.dtype(dtype).name)
    model.build(n_in)
    x = np.random.default_rng(n_out).standard_normal((2500, n_in))
    full = model.predict(x.astype(dtype))
    np.testing.assert_array_equal(model.predict(x), full)   # float64 input, cast in chunks
    for n in list(range(1, 71)) + [257, 1000]:
        np.testing.assert_array_equal(model.predict(x[:n].astype(dtype)), full[:n])
        np.testing.assert_array_equal(model(x[n:2 * n].astype(dtype)), full[n:2 * n])
    rows = np.concatenate([model(x[i:i + 1].astype(dtype)) for i in range(300)])
    np.testing.assert_array_equal(rows, full[:300])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act, out_act", [("relu", None), ("swish", "softmax")])
def test_wide_predict_rows_are_bit_identical_whatever_the_batch_and_threads(dtype, threads,
                                                                            act, out_act):
    """The wide layers' products take the packed kernel and fastnn's pool (from 16 rows,
    csrc/fnn_gemm_rows_packed.h), the narrow ones and short batches the unpacked tiles,
    and large batches' bias and activation passes run in row blocks on the pool too:
    a row's bits still do not depend on the batch, its position, the chunking (2100 rows:
    three chunks), or the thread count."""
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        fastnn.set_random_seed(7)
        model = fastnn.Sequential([Dense(600, activation=act), Dense(530, activation=act),
                                   Dense(700, activation=out_act)], dtype=np.dtype(dtype).name)
        model.build(450)
        x = np.random.default_rng(3).standard_normal((2100, 450))
        full = model.predict(x.astype(dtype))
        np.testing.assert_array_equal(model.predict(x), full)   # float64 input, cast
        for n in (1, 2, 15, 16, 17, 31, 64, 257, 1023, 1024, 1025):
            np.testing.assert_array_equal(model.predict(x[:n].astype(dtype)), full[:n])
            np.testing.assert_array_equal(model(x[n:2 * n].astype(dtype)), full[n:2 * n])
        for i in (0, 1, 16, 1023, 1024, 2099):
            np.testing.assert_array_equal(model(x[i:i + 1].astype(dtype)), full[i:i + 1])
    finally:
        fastnn.set_num_threads(before)
    fastnn.set_num_threads(3 - threads)
    try:
        np.testing.assert_array_equal(model.predict(x.astype(dtype)), full)
    finally:
        fastnn.set_num_threads(before)
