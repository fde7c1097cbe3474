"""fastnn's threading policy: large GEMMs split over fastnn's own sleeping pool, BLAS kept
single-threaded inside fastnn and restored after, results fixed by the thread count."""
import os
import threading

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn._kernels import _blas_import, _pool, load_blas, matmul, reference

# m, k, n above the split threshold (4 194 304 multiply-adds), some prime, some thin
BIG_SHAPES = [(256, 784, 512), (784, 256, 512), (256, 512, 784), (331, 307, 293),
              (1, 4099, 2053), (4099, 1031, 7)]


@pytest.fixture
def threads():
    """Set fastnn's thread count for one test and restore it after."""
    old = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(old)


def _operands(m, k, n, trans_a, trans_b, dtype):
    rng = np.random.default_rng([m, k, n, trans_a, trans_b])
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("m, k, n", BIG_SHAPES)
def test_split_matmul_matches_reference_and_is_fixed_by_thread_count(threads, dtype, trans_a,
                                                                     trans_b, m, k, n):
    load_blas()
    a, b = _operands(m, k, n, trans_a, trans_b, dtype)
    results = {}
    for count in (1, 2, 3, 2):
        threads(count)
        got = np.full((m, n), np.nan, dtype)
        matmul(a, b, trans_a, trans_b, got)
        if count in results:  # the same thread count again: the same bits
            np.testing.assert_array_equal(got, results[count])
        results[count] = got
    want = np.empty((m, n), dtype)
    reference.matmul(a, b, trans_a, trans_b, want)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for got in results.values():
        np.testing.assert_allclose(got, want, **tol)
    # row and column blocks are each one BLAS call over the whole k: 1 and 2 threads agree
    # to rounding (mostly bit for bit; BLAS may pick another kernel for a thin block)
    np.testing.assert_allclose(results[2], results[1], **tol)


def test_split_matmul_accumulates_beta(threads):
    # dW = x^T dz + 2 l2 W enters as beta = 1 on every block
    load_blas()
    a, b = _operands(300, 257, 600, True, False, np.float64)
    c0 = np.random.default_rng(1).standard_normal((300, 600))
    threads(2)
    got = c0.copy()
    matmul(a, b, True, False, got, beta=1.0)
    np.testing.assert_allclose(got, a.T @ b + c0, rtol=1e-12, atol=1e-12)


def _wide_fit(seed, rows=512, width=300):
    fastnn.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 200)).astype(np.float32)
    y = rng.integers(0, 10, rows)
    model = fastnn.Sequential([layers.Input((200,)), layers.Dense(width, activation="relu"),
                               layers.Dense(width, activation="relu"), layers.Dense(10)])
    model.compile(optimizer="adam",
                  loss=fastnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=256, verbose=0)
    return [w.copy() for w in model.get_weights()]


def test_fit_is_bit_identical_for_a_thread_count_and_close_across_counts(threads):
    # batch 256 x 300 x 300: every hidden GEMM is above the split threshold
    threads(2)
    first, second = _wide_fit(3), _wide_fit(3)
    assert _pool.pool_workers() >= 1  # the split path really ran
    for w1, w2 in zip(first, second, strict=True):
        np.testing.assert_array_equal(w1, w2)
    threads(1)
    serial = _wide_fit(3)
    for w1, ws in zip(first, serial, strict=True):
        np.testing.assert_allclose(w1, ws, rtol=1e-4, atol=1e-5)


def _scipy_blas_threads():
    """(get, set) of the OpenBLAS under scipy.linalg.cython_blas, or None."""
    import ctypes

    load_blas()
    getter, setter = _blas_import.blas_thread_functions()[::-1]
    if not getter:
        return None
    return (ctypes.CFUNCTYPE(ctypes.c_int)(getter),
            ctypes.CFUNCTYPE(None, ctypes.c_int)(setter))


class _Boom(Exception):
    pass


@pytest.mark.parametrize("error", [None, _Boom, KeyboardInterrupt])
def test_blas_threads_restored_after_fit(threads, error):
    funcs = _scipy_blas_threads()
    if funcs is None:
        pytest.skip("the BLAS under scipy is not an OpenBLAS fastnn can switch")
    get, set_ = funcs
    threads(2)
    old = get()
    seen = []

    class Probe(fastnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(get())  # Python code between batches sees the user's setting
            if error is not None and batch == 1:
                raise error("stop")

    set_(3)
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1024, 200)).astype(np.float32)
        y = rng.integers(0, 10, 1024)
        model = fastnn.Sequential([layers.Input((200,)), layers.Dense(300, activation="relu"),
                                   layers.Dense(10)])
        model.compile(optimizer="sgd",
                      loss=fastnn.losses.SparseCategoricalCrossentropy(from_logits=True))
        if error is None:
            model.fit(x, y, epochs=1, batch_size=256, verbose=0, callbacks=[Probe()])
            model.predict(x, verbose=0)
            model.evaluate(x, y, verbose=0)
        else:
            with pytest.raises(error):
                model.fit(x, y, epochs=1, batch_size=256, verbose=0, callbacks=[Probe()])
        assert get() == 3
        assert seen and set(seen) == {3}
    finally:
        set_(old)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads Linux thread stats")
def test_no_thread_spins_after_fit(run_python):
    # After a fit that used the pool, no thread of the process may burn CPU while the
    # process sleeps (spinning pools were what made threads hurt on a loaded machine).
    code = (
        "import os, time, numpy, fastnn\n"
        "from fastnn import layers\n"
        "from fastnn._kernels import _pool\n"
        "def cpu():\n"
        "    total = 0\n"
        "    for t in os.listdir('/proc/self/task'):\n"
        "        try:\n"
        "            fields = open(f'/proc/self/task/{t}/stat').read().rsplit(')', 1)[1].split()\n"
        "        except OSError:\n"
        "            continue\n"
        "        total += int(fields[11]) + int(fields[12])  # utime + stime, clock ticks\n"
        "    return total / os.sysconf('SC_CLK_TCK')\n"
        "fastnn.set_num_threads(2)\n"
        "x = numpy.random.default_rng(0).standard_normal((1024, 300)).astype('float32')\n"
        "m = fastnn.Sequential([layers.Input((300,)), layers.Dense(400, activation='relu'),\n"
        "                       layers.Dense(10)])\n"
        "m.compile(optimizer='adam', loss='mse')\n"
        "m.fit(x, numpy.zeros((1024, 10), 'float32'), epochs=2, batch_size=256, verbose=0)\n"
        "assert _pool.pool_workers() >= 1\n"
        "time.sleep(0.3)  # let any pool that spins for a while after work settle into it\n"
        "before = cpu()\n"
        "time.sleep(0.2)\n"
        "print(cpu() - before)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    grown = float(run_python(["-c", code], env=env, check=True, timeout=120).stdout)
    assert grown < 0.05  # a spinning thread would add ~0.2 s


def test_concurrent_callers_get_their_serial_results(threads):
    # a second thread that finds the pool busy runs its GEMM itself
    load_blas()
    threads(2)
    a, b = _operands(512, 512, 512, False, False, np.float32)
    want = np.empty((512, 512), np.float32)
    matmul(a, b, False, False, want)
    outs = [np.full((512, 512), np.nan, np.float32) for _ in range(4)]

    def work(out):
        for _ in range(5):
            matmul(a, b, False, False, out)

    pool = [threading.Thread(target=work, args=(out,)) for out in outs]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for out in outs:
        np.testing.assert_array_equal(out, want)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_works_in_a_forked_child(run_python):
    code = ("import os, numpy, fastnn\n"
            "from fastnn._kernels import matmul, _pool\n"
            "fastnn.set_num_threads(2)\n"
            "a = numpy.random.default_rng(0).standard_normal((400, 400)).astype('float32')\n"
            "c = numpy.empty_like(a); matmul(a, a, False, False, c)\n"
            "assert _pool.pool_workers() >= 1\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    d = numpy.empty_like(a); matmul(a, a, False, False, d)\n"
            "    os._exit(0 if (d == c).all() and _pool.pool_workers() >= 1 else 3)\n"
            "_, status = os.waitpid(pid, 0)\n"
            "print(os.waitstatus_to_exitcode(status))\n")
    assert run_python(["-c", code], check=True, timeout=120).stdout.strip() == "0"


def test_pool_and_blas_control_report():
    load_blas()
    assert isinstance(_pool.pool_available(), bool)
    assert isinstance(_pool.blas_thread_control(), bool)
    with pytest.raises(ValueError, match="both"):
        _pool.set_blas_thread_functions(1, 0)


def test_pool_tasks_run_in_the_callers_floating_point_mode(run_python):
    # The workers start in the mode of the call that started them (here: an inference-like
    # call, denormals kept); a later training-like call flushing denormals must still see
    # its tasks flush on every thread, or which thread ran a block would change its bits.
    code = (
        "from fastnn._kernels import _pool\n"
        "if not _pool.pool_available():\n"
        "    print('skip'); raise SystemExit\n"
        "assert (_pool._pool_fp_modes(2, 8, False) == 0).all()\n"
        "assert _pool.pool_workers() >= 1\n"
        "bad = 0\n"
        "for _ in range(5):\n"
        "    bad += int((_pool._pool_fp_modes(2, 8, True) != 0x8040).sum())\n"
        "    bad += int((_pool._pool_fp_modes(2, 8, False) != 0).sum())\n"
        "print(bad)\n")
    out = run_python(["-c", code], check=True, timeout=120).stdout.strip()
    if out == "skip":
        pytest.skip("no pthreads")
    assert out == "0"
