"""Kernel microbenchmarks: each compiled kernel against its NumPy twin, across sizes.

``fastnn._kernels`` and ``fastnn._kernels.reference`` share names, signatures and the
caller-owned ``*_out`` buffer contract, so both are called here with the very same
arguments, in float32, interleaved call batch by call batch.  The size is a parameter
count P from 1e3 to 1e7:

- ``dense_forward`` / ``dense_backward`` (ReLU): a square layer of about P weights,
  k = m = round(sqrt(P)), on a training batch of 32 rows;
- ``sparse_softmax_xent``: P logits as P / 10 rows of 10 classes, mean over the batch;
- ``adam_update``: one step over P parameters.  Next to the reference (written for
  clarity, with temporaries) the table shows the in-place NumPy Adam of
  ``numpy_mlp.adam_inplace``, the best NumPy can do, so the speed-up is not flattered.
"""
import math

import numpy as np

from numpy_mlp import adam_inplace
from report import paired_ratios, table
from timing import Summary, per_call_seconds

BATCH = 32
CLASSES = 10
F32 = np.float32


def _dense_args(size, rng, act):
    """Forward and backward argument tuples for a square ReLU layer of about ``size`` weights."""
    k = m = max(1, round(math.sqrt(size)))
    x = rng.standard_normal((BATCH, k), dtype=F32)
    w = rng.standard_normal((k, m), dtype=F32) / F32(math.sqrt(k))
    b = rng.standard_normal(m, dtype=F32)
    z = x @ w + b  # the backward pass reads a real forward pass's z and a = relu(z)
    a = np.maximum(z, 0)
    forward = (x, w, b, act, 0.0, np.empty_like(z), np.empty_like(a))
    da = rng.standard_normal((BATCH, m), dtype=F32)
    backward = (x, w, z, a, da, act, 0.0, 0.0, np.empty_like(da), np.empty_like(w),
                np.empty_like(b), np.empty_like(x))
    return f"{BATCH}x{k} @ {k}x{m}", forward, backward


def _xent_args(size, rng):
    rows = max(1, size // CLASSES)
    z = rng.standard_normal((rows, CLASSES), dtype=F32) * F32(3)
    labels = rng.integers(0, CLASSES, rows).astype(np.int32)
    return f"{rows}x{CLASSES} logits", (z, labels, None, 1.0 / rows, np.empty_like(z))


def _adam_args(size, rng):
    w = rng.standard_normal(size, dtype=F32)
    g = rng.standard_normal(size, dtype=F32) * F32(1e-3)
    m, v = np.zeros(size, F32), np.zeros(size, F32)
    return f"{size} parameters", (w, g, m, v, 1e-3, 0.9, 0.999, 1e-7, 10)


def _cases(size, rng, kernels):
    """``[(kernel name, shape label, args)]`` for one size; each call gets private buffers."""
    relu = kernels.ACTIVATIONS["relu"]
    shape, forward, backward = _dense_args(size, rng, relu)
    return [("dense_forward", shape, forward), ("dense_backward", shape, backward),
            ("sparse_softmax_xent", *_xent_args(size, rng)),
            ("adam_update", *_adam_args(size, rng))]


def _copy_args(args):
    """The same arguments with every array copied, so the two twins never share buffers."""
    return tuple(arg.copy() if isinstance(arg, np.ndarray) else arg for arg in args)


def _max_difference(name, compiled, reference, args):
    """Largest |compiled - reference| over the outputs of one call from identical inputs."""
    ours, theirs = _copy_args(args), _copy_args(args)
    value_ours, value_theirs = compiled(*ours), reference(*theirs)
    # positions of the *_out arguments (and in-place state) in each kernel's signature
    outputs = {"dense_forward": (5, 6), "dense_backward": (8, 9, 10, 11),
               "sparse_softmax_xent": (4,), "adam_update": (0, 2, 3)}[name]
    worst = max(float(np.max(np.abs(ours[i] - theirs[i]))) for i in outputs)
    if value_ours is not None and value_theirs is not None:
        worst = max(worst, abs(value_ours - value_theirs) / max(1.0, abs(value_theirs)))
    return worst


def bench_kernels(sizes, repeats, budget_s, progress=None, settle_s=0.0):
    """Time every kernel at every size.

    Returns
    -------
    lines : list of str
    data : dict
        ``data[kernel][size]`` holds the per-call ``Summary`` of each implementation
        and ``"speedup"``, the Summary of reference time / compiled time per batch.
    """
    from fastnn import _kernels as kernels
    from fastnn._kernels import reference

    rng = np.random.default_rng(0)
    data, rows = {}, []
    for size in sizes:
        for name, shape, args in _cases(size, rng, kernels):
            compiled, twin = getattr(kernels, name), getattr(reference, name)
            ours, theirs = _copy_args(args), _copy_args(args)
            fns = {"fastnn": lambda c=compiled, a=ours: c(*a),
                   "reference": lambda t=twin, a=theirs: t(*a)}
            if name == "adam_update":
                fns["in-place NumPy"] = _inplace_adam_call(args)
            times = per_call_seconds(fns, repeats, budget_s, settle_s)
            speedup = paired_ratios(times, "reference", "fastnn")
            entry = {label: Summary.of(values) for label, values in times.items()}
            entry["speedup"] = speedup
            data.setdefault(name, {})[size] = entry
            rows.append(_row(name, size, shape, entry,
                             _max_difference(name, compiled, twin, args)))
            if progress is not None:
                progress(f"{name} at P={_power_of_ten(size)}: "
                         f"reference / fastnn = {speedup.median:.3g}")
    lines = [f"float32, per-call µs as median (min-max) of {repeats} interleaved batches of "
             f"calls; speed-up = reference time / fastnn time within each batch pair. "
             "'max diff' is the largest absolute difference between the two twins' outputs "
             "(relative for the returned loss) after one call on identical inputs.", ""]
    lines += table(["kernel", "P", "shape", "fastnn µs", "reference µs", "speed-up",
                    "in-place NumPy µs", "max diff"], rows)
    return lines, data


def _inplace_adam_call(args):
    """A zero-argument call of ``adam_inplace`` on private copies of Adam's arguments."""
    w, g, m, v = (arg.copy() for arg in args[:4])
    scratch = np.empty_like(w)
    return lambda: adam_inplace(w, g, m, v, scratch, *args[4:])


def _power_of_ten(size):
    """``1e6`` for 10**6, else the plain number."""
    exponent = round(math.log10(size))
    return f"1e{exponent}" if 10**exponent == size else str(size)


def _row(name, size, shape, entry, difference):
    inplace = entry.get("in-place NumPy")
    speedup = entry["speedup"]
    return [name, _power_of_ten(size), shape, entry["fastnn"].scaled(1e6).format(3),
            entry["reference"].scaled(1e6).format(3),
            f"{speedup.median:.3g}× ({speedup.low:.3g}-{speedup.high:.3g})",
            inplace.scaled(1e6).format(3) if inplace else "", f"{difference:.2g}"]
