"""The ``cnn`` part, parent side: issue 9's two convolutional workloads, every system once a round.

- **digits CNN**: examples/digits_cnn.py's network on the digits split every other part
  uses (8x8x1 images; the example's one-pixel shifted copies are left out, so a fit is
  1/5 of the example's rows and the whole part stays within minutes: the work per
  mini-batch step, which is what this overhead-bound workload measures, is the same):
  Conv2D 16 3x3 relu "same" -> MaxPooling2D 2 -> Conv2D 32 3x3 relu -> Flatten -> Dense
  10, batch 32.
- **MNIST-sized CNN**: random 28x28x1 images, Conv2D 32 3x3 relu -> MaxPooling2D 2 ->
  Conv2D 64 3x3 relu -> MaxPooling2D 2 -> Flatten -> Dense 10, batch 64, one epoch.

The workers build and train the networks (``cnn_models.py``, task ``cnn_fit``); this
module schedules the interleaved rounds and writes the Markdown.  Standard library only.
"""
import statistics

from bench_training import background, times_by_system
from report import paired_ratios, ratio, seconds, table
from timing import Summary
from workers import WorkerError, interleave

BASELINE = "fastnn"
DIGITS_CNN = ((8, 8, 1), (("conv2d", 16, 3, "same"), ("maxpool2d", 2),
                          ("conv2d", 32, 3, "valid"), ("flatten",), ("dense", 10)))
MNIST_CNN = ((28, 28, 1), (("conv2d", 32, 3, "valid"), ("maxpool2d", 2),
                           ("conv2d", 64, 3, "valid"), ("maxpool2d", 2), ("flatten",),
                           ("dense", 10)))
DIGITS_BATCH, MNIST_BATCH = 32, 64


def describe(input_shape, layers):
    """``8x8x1 -> conv 16 3x3 same -> pool 2 -> ...`` for the report."""
    words = {"conv2d": lambda layer: f"Conv2D {layer[1]} {layer[2]}x{layer[2]} relu {layer[3]}",
             "maxpool2d": lambda layer: f"MaxPooling2D {layer[1]}",
             "flatten": lambda layer: "Flatten",
             "dense": lambda layer: f"Dense {layer[1]}"}
    return " -> ".join(["x".join(map(str, input_shape)), *(words[layer[0]](layer)
                                                           for layer in layers)])


def training_flops(input_shape, layers, rows, epochs):
    """Floating-point operations of the convolutions and the dense product in training.

    Per row, a layer's forward pass costs 2 x its multiply-adds; training adds the weight
    gradient and the input gradient at the same cost each, except for the first layer,
    which needs no input gradient.  Pooling, activations, the loss and Adam are left out
    (a few percent here).
    """
    height, width, channels = input_shape
    per_row, first = 0, True
    for layer in layers:
        kind = layer[0]
        if kind == "conv2d":
            _, filters, kernel, padding = layer
            if padding == "valid":
                height, width = height - kernel + 1, width - kernel + 1
            elif padding != "same":
                raise ValueError(f"unknown padding {padding!r}")
            macs = height * width * filters * kernel * kernel * channels
            channels = filters
        elif kind == "maxpool2d":
            height, width, macs = height // layer[1], width // layer[1], 0
        elif kind == "flatten":
            height, width, channels, macs = 1, 1, height * width * channels, 0
        elif kind == "dense":
            macs, channels = channels * layer[1], layer[1]
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        if macs:
            per_row += 2 * macs * (2 if first else 3)
            first = False
    return float(per_row) * rows * epochs


def _duration(value):
    """``460 µs``, ``12.5 ms`` or ``1.2 s``."""
    if value >= 1.0:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def _own_cpu(replies):
    """Median CPU seconds the worker itself used per fit (all its threads), or ``n/a``.

    Beside the wall time it tells a fit slowed by a busy machine (threads waiting for a
    core: wall up, CPU not) from one that did more work.
    """
    values = [reply["seconds"] * reply["load"]["own_cores"] for reply in replies
              if reply.get("load", {}).get("own_cores") is not None]
    return _duration(statistics.median(values)) if values else "n/a"


def _table(replies, flops, steps, with_accuracy):
    times = times_by_system(replies)
    rows = []
    for name, values in times.items():
        summary = Summary.of(values)
        relative = paired_ratios(times, name, BASELINE) if BASELINE in times else None
        row = [name, seconds(summary), ratio(relative) if relative else "n/a",
               _duration(summary.median / steps), f"{flops / summary.median / 1e9:.3g}"]
        if with_accuracy:
            row.append(f"{statistics.median(r['accuracy'] for r in replies[name]):.4f}")
        row += [_own_cpu(replies[name]), background(replies[name])]
        rows.append(row)
    header = ["system", "time, median (min-max)", "time / fastnn time",
              "per step (median fit / steps)", "GFLOP/s (conv + dense)"]
    if with_accuracy:
        header.append("test accuracy (median)")
    header += ["CPU time of the worker (median)", "other processes' cores during the job"]
    return table(header, rows)


def _workload(workers, images, network, epochs, batch_size, repeats, settle_s, progress,
              warmup_images, warmup_epochs):
    """Interleaved timed fits after one short untimed fit per system.

    The warm-up fit (``warmup_epochs`` on ``warmup_images``) loads the libraries' code and
    first-call state (oneDNN primitives, TensorFlow's kernels) at a fraction of a whole
    round's cost; every timed fit still builds, and for tf.keras traces, a fresh model.
    """
    failed = {}
    input_shape, layers = network
    active = {}
    for name, worker in workers.items():
        try:
            worker.call("cnn_fit", images=warmup_images, input_shape=input_shape,
                        layers=layers, epochs=warmup_epochs, batch_size=batch_size, seed=0)
            active[name] = worker
        except WorkerError as exc:
            failed[name] = str(exc)
            progress(f"{name} failed: {str(exc).splitlines()[-1][:200]}")

    def kwargs_for(name, seed):
        return dict(images=images, input_shape=input_shape, layers=layers, epochs=epochs,
                    batch_size=batch_size, seed=seed, settle_s=settle_s)
    replies = interleave(active, "cnn_fit", kwargs_for, repeats, warmup=0, progress=progress,
                         failed=failed)
    notes = [f"- {name} failed: `{error.splitlines()[-1][:200]}`"
             for name, error in failed.items()]
    return replies, notes


def bench_cnn(workers, digits_spec, n_train, n_test, digits_epochs, digits_rounds, mnist_rows,
              mnist_rounds, progress, settle_s):
    """Both CNN workloads on ``workers`` (fastnn, PyTorch, tf.keras): ``(lines, data)``."""
    lines, data = [], {}
    progress(f"digits CNN, {digits_epochs} epochs")
    replies, notes = _workload(workers, digits_spec, DIGITS_CNN, digits_epochs, DIGITS_BATCH,
                               digits_rounds, settle_s, progress, digits_spec, 1)
    steps = digits_epochs * -(-n_train // DIGITS_BATCH)
    flops = training_flops(*DIGITS_CNN, n_train, digits_epochs)
    lines += ["### Digits CNN (examples/digits_cnn.py's network)", "",
              f"{describe(*DIGITS_CNN)}; {n_train} training rows (the digits split of "
              f"part 1 as 8x8x1 images, without the example's shifted copies), {n_test} test "
              f"rows, batch {DIGITS_BATCH}, {digits_epochs} epochs ({steps} steps), Adam(1e-3), "
              f"{digits_rounds} interleaved rounds after a one-epoch warm-up fit per system; "
              f"{flops / 1e9:.3g} GFLOP per fit. A fit is timed whole, building the model "
              "included.", ""]
    lines += _table(replies, flops, steps, with_accuracy=True) + notes
    data["digits"] = {"times": times_by_system(replies), "replies": replies,
                      "epochs": digits_epochs}

    progress(f"MNIST-sized CNN, {mnist_rows} rows")
    images = ("random", mnist_rows, 28, 28, 1, 10, 0)
    warmup = ("random", 4 * MNIST_BATCH, 28, 28, 1, 10, 1)
    replies, notes = _workload(workers, images, MNIST_CNN, 1, MNIST_BATCH, mnist_rounds,
                               settle_s, progress, warmup, 1)
    for worker in workers.values():  # free the images before the next part
        try:
            worker.call("drop_data")
        except WorkerError:
            pass
    steps = -(-mnist_rows // MNIST_BATCH)
    flops = training_flops(*MNIST_CNN, mnist_rows, 1)
    lines += ["", "### MNIST-sized CNN", "",
              f"{describe(*MNIST_CNN)}; {mnist_rows} random images (uniform pixels, uniform "
              f"labels), batch {MNIST_BATCH}, one epoch ({steps} steps), Adam(1e-3), "
              f"{mnist_rounds} interleaved rounds after a warm-up fit of {4 * MNIST_BATCH} "
              f"rows per system; {flops / 1e9:.3g} GFLOP per fit. PyTorch trains on "
              "channels-first copies of the same images (made before the clock starts), as "
              "its users store them.", ""]
    lines += _table(replies, flops, steps, with_accuracy=False) + notes
    data["mnist"] = {"times": times_by_system(replies), "rows": mnist_rows}
    return lines, data
