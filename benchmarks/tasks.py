"""The jobs a worker runs (``worker.py``): each ``task(system, **kwargs)`` returns plain data.

Every timed job measures itself inside the worker (``time.perf_counter`` around the
work, after ``gc.collect`` and a ``settle_s`` pause, see ``timing.py``) and returns the
seconds together with the background load during the job (``load.JobLoad``): the
parent's only role is to say who runs when.
"""
import gc
import os
import platform
import time

import load as loadmod

_DATA = {}  # datasets loaded in this worker, by key


def load(system=None, threads=None):
    """Import and configure one system; return it and what the report says about it."""
    import competitors

    if threads is not None:
        try:
            from threadpoolctl import threadpool_limits

            globals()["_limits"] = threadpool_limits(limits=threads)
        except ImportError:
            pass
    adapter = competitors.SYSTEMS[system](threads) if system is not None else None
    return adapter, {"pid": os.getpid(), "config": getattr(adapter, "config", "helper"),
                     "version": getattr(adapter, "version", None),
                     "python": platform.python_version(), "numpy": _numpy_version()}


def _numpy_version():
    import numpy

    return numpy.__version__


def libraries(system):
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded in this worker."""
    import machine

    return machine.blas_info(load_scipy=False)


# ---------------------------------------------------------------- data

def prepare_digits(system, path):
    """Write the digits split to ``path`` (.npz) so workers need not import scikit-learn."""
    import numpy as np

    from bench_data import digits_split

    X_train, X_test, y_train, y_test = digits_split()
    np.savez(path, X_train=X_train, X_test=X_test, y_train=y_train, y_test=y_test)
    return {"train": len(X_train), "test": len(X_test)}


def dataset(spec):
    """``(X_train, y_train, X_test, y_test)`` for ``spec``, cached in this worker.

    ``("digits", path)`` reads the split the helper wrote; ``("random", rows, width,
    classes, seed)`` draws standard-normal float32 rows and uniform labels.
    """
    spec = tuple(spec)
    if spec not in _DATA:
        import numpy as np

        if spec[0] == "digits":
            with np.load(spec[1]) as saved:
                _DATA[spec] = (saved["X_train"], saved["y_train"], saved["X_test"],
                               saved["y_test"])
        elif spec[0] == "random":
            _, rows, width, classes, seed = spec
            rng = np.random.default_rng(seed)
            X = rng.standard_normal((rows, width), dtype=np.float32)
            _DATA[spec] = (X, rng.integers(0, classes, rows), None, None)
        else:
            raise ValueError(f"unknown dataset {spec[0]!r}")
    return _DATA[spec]


def drop_data(system):
    import cnn_models

    _DATA.clear()
    cnn_models.drop_images()
    gc.collect()


# ---------------------------------------------------------------- timed jobs

def fit(system, data, sizes, epochs, batch_size, seed, settle_s=0.0, threads_detail=False):
    """Time one ``system.fit`` (a fresh model, every epoch); return seconds and context."""
    X, y, X_test, y_test = dataset(data)
    gc.collect()
    time.sleep(settle_s)
    before = loadmod.thread_cpu() if threads_detail else None
    with loadmod.JobLoad() as job:
        start = time.perf_counter()
        system.fit(X, y, tuple(sizes), epochs, batch_size, seed)
        seconds = time.perf_counter() - start
    result = {"seconds": seconds, "load": job.as_dict(),
              "extra": dict(getattr(system, "extra", {}) or {})}
    if threads_detail:
        result["threads"] = loadmod.thread_delta(before, loadmod.thread_cpu())
    if X_test is not None:
        from competitors import accuracy

        result["accuracy"] = accuracy(system, X_test, y_test)
    return result


def cnn_fit(system, images, input_shape, layers, epochs, batch_size, seed, settle_s=0.0):
    """Time one fit of the ``cnn_models`` network (a fresh model); return seconds and context.

    The images are prepared (and, for a channels-first system, transposed) before the
    clock starts; the test accuracy is measured after it stops, when there is a test set.
    """
    import cnn_models

    layout = "NCHW" if system.name in cnn_models.CHANNELS_FIRST else "NHWC"
    X, y, X_test, y_test = cnn_models.images(images, layout)
    gc.collect()
    time.sleep(settle_s)
    with loadmod.JobLoad() as job:
        start = time.perf_counter()
        predict = cnn_models.fit(system, X, y, input_shape, layers, epochs, batch_size, seed)
        seconds = time.perf_counter() - start
    result = {"seconds": seconds, "load": job.as_dict()}
    if X_test is not None:
        import numpy as np

        result["accuracy"] = float(np.mean(np.argmax(predict(X_test), axis=1) == y_test))
    return result


def _call_labels(system, rows, x):
    """``{label: fn()}``: the ways a user of this system runs a forward pass on ``x``."""
    name = system.name
    if name == "fastnn":
        model = system.model
        return {"fastnn predict(x)": lambda: model.predict(x, verbose=0),
                "fastnn model(x)": lambda: model(x)}
    if name == "NumPy":
        return {"NumPy forward": lambda: system.model.predict(x)}
    if name == "PyTorch":
        return {"PyTorch no_grad": lambda: system.forward(x)}
    if name.startswith("JAX"):
        return {f"{name} jit forward": lambda: system.predict(x)}
    raise ValueError(f"no latency calls for system {name!r}")


def latency_setup(system, data, sizes, rows, dtypes=("float32",), budget_s=0.05):
    """Train one epoch (latency does not depend on the weights), then size call batches.

    Returns ``{label: calls per batch}`` for every call and row dtype.
    """
    import numpy as np

    from timing import calls_per_batch

    X, y, X_test, _ = dataset(data)
    system.fit(X, y, tuple(sizes), 1, 32, 0)
    source = X_test if X_test is not None else X
    calls = {}
    for dtype in dtypes:
        x = np.ascontiguousarray(source[:rows], dtype=dtype)
        for label, fn in _call_labels(system, rows, x).items():
            if dtype != "float32" and not label.startswith("fastnn model"):
                continue  # the float64 row is fastnn's own target only
            key = label if dtype == "float32" else f"{label} float64"
            calls[key] = (fn, calls_per_batch(fn, budget_s))
    _DATA[("latency", rows)] = calls
    return {key: count for key, (_fn, count) in calls.items()}


def latency_batch(system, rows, settle_s=0.0):
    """One timed batch of back-to-back calls per label: ``{label: seconds per call}``."""
    calls = _DATA[("latency", rows)]
    out = {}
    for label, (fn, count) in calls.items():
        gc.collect()
        time.sleep(settle_s)
        start = time.perf_counter()
        for _ in range(count):
            fn()
        out[label] = (time.perf_counter() - start) / count
    return out


def inference_setup(system, sizes, rows, seed=0):
    """Build a trained-for-one-small-epoch model of ``sizes`` and a ``rows``-row float32 batch."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], 512)
    system.fit(X[:512], y, tuple(sizes), 1, 256, seed)
    name = system.name
    if name == "fastnn":
        fn = lambda: system.model.predict(X, batch_size=rows, verbose=0)  # noqa: E731
    elif name == "PyTorch":
        fn = lambda: system.infer(X)  # noqa: E731
    else:
        fn = lambda: system.predict(X)  # noqa: E731
    fn()
    _DATA[("inference", rows)] = fn
    return True


def inference_time(system, rows, settle_s=0.0):
    fn = _DATA[("inference", rows)]
    gc.collect()
    time.sleep(settle_s)
    with loadmod.JobLoad() as job:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "load": job.as_dict()}


# ---------------------------------------------------------------- whole parts run in one worker

def kernels(system, sizes, repeats, budget_s, settle_s):
    """Part 3 (fastnn worker): every compiled kernel against its NumPy twin."""
    import bench_kernels

    return bench_kernels.bench_kernels(sizes, repeats, budget_s, None, settle_s)


def gemm(system, rounds):
    """Part 6 (helper): the C-timed small-GEMM table."""
    import subprocess

    import bench_gemm

    try:
        rows = bench_gemm.run(rounds)
    except (OSError, SystemExit, subprocess.CalledProcessError) as exc:
        return [f"Skipped: could not build or run bench_gemm.c ({exc})."], None
    return ["One thread, best of interleaved rounds; fastnn sends a float32 product to the "
            "FMA kernel (csrc/fnn_small.h) up to 16k multiply-adds (64k for C = A B^T and for "
            "the training forward pass, which also adds the bias and applies ReLU there), and "
            "a small float64 C = A B^T to the tiled kernel.", "",
            bench_gemm.table(rows)], rows


def machine_limits(system, threads=None):
    """The float32 matmul rate and the copy bandwidth, measured in the helper (NumPy only)."""
    import machine

    return {"ceiling_gflops": machine.matmul_ceiling(), "copy_gbps": machine.copy_bandwidth()}


def describe(system, removed_env, libraries_by_system):
    import machine

    return machine.describe(removed_env, libraries_by_system)


def plot(system, kind, data, path):
    """Draw one of the report's figures (helper worker: matplotlib stays out of the parent)."""
    import plots

    return getattr(plots, kind)(data, path)


def threads_fit(system, data, sizes, batch_size, seed, settle_s=0.0, busy_pid=None):
    """``fit`` with per-thread CPU detail (part 7)."""
    return fit(system, data, sizes, 1, batch_size, seed, settle_s, threads_detail=True)


def scale_point(system, path, rows, width, classes, memmap, repeats, batch_size, sizes):
    """One point of part 8, run in a fresh fastnn worker: epoch times and peak RSS.

    ``path`` holds ``rows`` float32 rows of ``width`` features (``<path>.x``) and int64
    labels (``<path>.y``), written by ``make_scale_data``.  With ``memmap`` the rows are an
    ``np.memmap`` (fastnn must not copy it); else they are read into memory first.
    """
    import resource

    import numpy as np

    def rss_kib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def status():
        out = {}
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0])
        return out

    # warm up on a few rows of the same width so that the code is loaded
    system.fit(np.zeros((batch_size, width), np.float32), np.zeros(batch_size, np.int64),
               tuple(sizes), 1, batch_size, 0)
    gc.collect()
    base = {"maxrss_kib": rss_kib(), **status()}
    y = np.fromfile(f"{path}.y", dtype=np.int64, count=rows)
    mode, refused = None, None
    if memmap:
        mode = "r"  # read-only: what a user opening a data file does
        X = np.memmap(f"{path}.x", dtype=np.float32, mode=mode, shape=(rows, width))
        try:  # probe on one batch, so that a refusal maps no second copy of the pages
            system.fit(X[:batch_size], y[:batch_size], tuple(sizes), 1, batch_size, 0)
        except ValueError as exc:
            # fastnn refused a read-only map: record it and use a copy-on-write map of
            # the same file (mode "c"), which is writable without copying anything
            refused, mode = str(exc), "c"
            del X
            gc.collect()
            X = np.memmap(f"{path}.x", dtype=np.float32, mode=mode, shape=(rows, width))
    else:
        X = np.fromfile(f"{path}.x", dtype=np.float32, count=rows * width).reshape(rows, width)
    seconds = []
    for seed in range(repeats):
        with loadmod.JobLoad() as job:
            start = time.perf_counter()
            system.fit(X, y, tuple(sizes), 1, batch_size, seed)
            seconds.append(time.perf_counter() - start)
    return {"rows": rows, "memmap": memmap, "memmap_mode": mode, "refused": refused,
            "seconds": seconds, "base": base,
            "peak_kib": rss_kib(), "end": status(), "data_bytes": X.nbytes + y.nbytes,
            "load": job.as_dict()}


def make_scale_data(system, path, rows, width, classes, seed=0, chunk=50_000):
    """Write ``rows`` standard-normal float32 rows and labels next to ``path`` (once)."""
    import numpy as np

    x_path, y_path = f"{path}.x", f"{path}.y"
    if (os.path.exists(x_path) and os.path.getsize(x_path) >= rows * width * 4
            and os.path.exists(y_path) and os.path.getsize(y_path) >= rows * 8):
        return "reused"
    rng = np.random.default_rng(seed)
    with open(x_path + ".tmp", "wb") as handle:
        for start in range(0, rows, chunk):
            count = min(chunk, rows - start)
            rng.standard_normal((count, width), dtype=np.float32).tofile(handle)
    rng.integers(0, classes, rows).astype(np.int64).tofile(y_path)
    os.replace(x_path + ".tmp", x_path)
    return "written"


def digits_breakdown(system, sizes, batch, repeats=7, budget_s=0.02):
    """Per-step cost of each fastnn kernel of the digits step, called one by one (µs).

    Runs in the fastnn worker: forward and backward of each Dense layer at ``batch``
    rows (ReLU on hidden layers, the first layer without dx), the fused softmax
    cross-entropy and one Adam update over every parameter.  Each is a separate call
    from Python here, so each carries a call overhead (~0.2-0.5 µs) that the compiled
    engine, which runs the whole step in C, does not pay; ``"call overhead"`` (an
    ``adam_update`` of one parameter) estimates it.
    """
    import numpy as np

    from fastnn import _kernels as kernels
    from timing import per_call_seconds

    rng = np.random.default_rng(0)
    relu, linear = kernels.ACTIVATIONS["relu"], kernels.ACTIVATIONS["linear"]
    calls, n_params = {}, 0
    x = rng.random((batch, sizes[0]), dtype=np.float32)
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    for i, (k, m) in enumerate(layers):
        act = linear if i == len(layers) - 1 else relu
        w = (rng.standard_normal((k, m), dtype=np.float32) / np.float32(np.sqrt(k)))
        b = np.zeros(m, np.float32)
        z, a = np.empty((batch, m), np.float32), np.empty((batch, m), np.float32)
        kernels.dense_forward(x, w, b, act, 0.0, z, a)
        da = rng.standard_normal((batch, m), dtype=np.float32)
        dz, dw, db = np.empty_like(da), np.empty_like(w), np.empty_like(b)
        dx = np.empty_like(x) if i > 0 else None
        calls[f"forward {k}x{m}"] = (lambda x=x, w=w, b=b, act=act, z=z, a=a:
                                     kernels.dense_forward(x, w, b, act, 0.0, z, a))
        calls[f"backward {k}x{m}"] = (lambda x=x, w=w, z=z, a=a, da=da, act=act, dz=dz, dw=dw,
                                      db=db, dx=dx: kernels.dense_backward(
                                          x, w, z, a, da, act, 0.0, 0.0, dz, dw, db, dx))
        n_params += k * m + m
        x = a
    logits = rng.standard_normal((batch, sizes[-1]), dtype=np.float32)
    labels = rng.integers(0, sizes[-1], batch).astype(np.int32)
    grad = np.empty_like(logits)
    calls["softmax cross-entropy"] = lambda: kernels.sparse_softmax_xent(
        logits, labels, None, 1.0 / batch, grad)
    w, g = rng.standard_normal(n_params, dtype=np.float32), np.full(n_params, 1e-3, np.float32)
    m1, v1 = np.zeros(n_params, np.float32), np.zeros(n_params, np.float32)
    calls[f"Adam, {n_params} parameters"] = lambda: kernels.adam_update(
        w, g, m1, v1, 1e-3, 0.9, 0.999, 1e-7, 10)
    one = [np.zeros(1, np.float32) for _ in range(4)]
    calls["call overhead"] = lambda: kernels.adam_update(*one, 1e-3, 0.9, 0.999, 1e-7, 10)
    times = per_call_seconds(calls, repeats, budget_s)
    return {label: sorted(values)[len(values) // 2] for label, values in times.items()}
