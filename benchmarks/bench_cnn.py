"""The issue-9 CNN workloads: fastnn against PyTorch (CPU) and Keras, each in its own process.

- ``digits``: the 8x8 digits as (n, 8, 8, 1) images (examples/digits_cnn.py's training
  rows, without augmentation), Conv2D 16 3x3 relu same -> MaxPooling2D -> Conv2D 32 3x3
  relu -> Flatten -> Dense 10, Adam(1e-3), softmax cross-entropy from logits, batch 32,
  30 epochs.
- ``mnist``: 10,000 random 28x28x1 images, Conv2D 32 3x3 relu -> MaxPooling2D -> Conv2D 64
  3x3 relu -> MaxPooling2D -> Flatten -> Dense 10, batch 64, one epoch.

Every system trains the same architecture from its own initialisation with a fresh
shuffle per epoch; the timed call includes building the model, as a user pays it.  Keras
runs on its torch backend (tf.keras is used when TensorFlow is installed).  The median of
``--rounds`` runs is reported with the ratio to fastnn measured in the same run.

    python benchmarks/bench_cnn.py [--rounds 3] [--threads N] [--workloads digits,mnist]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

WORKLOADS = {
    # name: (input shape, [(filters, same padding)], pools after each conv, epochs, batch)
    "digits": ((8, 8, 1), [(16, True), (32, False)], [True, False], 30, 32),
    "mnist": ((28, 28, 1), [(32, False), (64, False)], [True, True], 1, 64),
}
SYSTEMS = ["fastnn", "torch", "keras"]


def _data(name):
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
        x, _, y, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
        return x, y.astype(np.int64)
    rng = np.random.default_rng(0)
    return (rng.random((10_000, 28, 28, 1), dtype=np.float32),
            rng.integers(0, 10, 10_000).astype(np.int64))


def _fit_fastnn(name, x, y, threads):
    import fastnn
    from fastnn.layers import Conv2D, Dense, Flatten, MaxPooling2D

    fastnn.set_num_threads(threads)
    shape, convs, pools, epochs, batch = WORKLOADS[name]
    start = time.perf_counter()
    layers = [fastnn.Input(shape=shape)]
    for (filters, same), pool in zip(convs, pools, strict=True):
        layers.append(Conv2D(filters, 3, activation="relu", padding="same" if same else "valid"))
        if pool:
            layers.append(MaxPooling2D())
    model = fastnn.Sequential([*layers, Flatten(), Dense(10)])
    model.compile(optimizer=fastnn.optimizers.Adam(1e-3),
                  loss=fastnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
    return time.perf_counter() - start


def _fit_torch(name, x, y, threads):
    import torch

    torch.set_num_threads(threads)
    shape, convs, pools, epochs, batch = WORKLOADS[name]
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)
    start = time.perf_counter()
    layers, c, h, w = [], shape[2], shape[0], shape[1]
    for (filters, same), pool in zip(convs, pools, strict=True):
        layers += [torch.nn.Conv2d(c, filters, 3, padding="same" if same else 0),
                   torch.nn.ReLU()]
        c, h, w = filters, (h if same else h - 2), (w if same else w - 2)
        if pool:
            layers.append(torch.nn.MaxPool2d(2))
            h, w = h // 2, w // 2
    model = torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(c * h * w, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            rows = order[i:i + batch]
            opt.zero_grad()
            loss_fn(model(xt[rows]), yt[rows]).backward()
            opt.step()
    return time.perf_counter() - start


def _fit_keras(name, x, y, threads):
    try:
        from tensorflow import keras
    except ImportError:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras
        import torch

        torch.set_num_threads(threads)
    shape, convs, pools, epochs, batch = WORKLOADS[name]
    start = time.perf_counter()
    layers = [keras.Input(shape)]
    for (filters, same), pool in zip(convs, pools, strict=True):
        layers.append(keras.layers.Conv2D(filters, 3, activation="relu",
                                          padding="same" if same else "valid"))
        if pool:
            layers.append(keras.layers.MaxPooling2D())
    model = keras.Sequential([*layers, keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
    return time.perf_counter() - start


def worker(system, name, threads):
    x, y = _data(name)
    fit = {"fastnn": _fit_fastnn, "torch": _fit_torch, "keras": _fit_keras}[system]
    print(json.dumps({"seconds": fit(name, x, y, threads)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--workloads", default="digits,mnist")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--worker", nargs=2, metavar=("SYSTEM", "WORKLOAD"))
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.threads)
        return
    for name in args.workloads.split(","):
        times = {}
        for _ in range(args.rounds):      # systems interleaved, so load drifts hit all
            for system in args.systems.split(","):
                out = subprocess.run([sys.executable, __file__, "--worker", system, name,
                                      "--threads", str(args.threads)],
                                     capture_output=True, text=True)
                if out.returncode:
                    times.setdefault(system, []).append(float("nan"))
                    print(f"{system} failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
                times.setdefault(system, []).append(seconds)
        base = float(np.median(times.get("fastnn", [np.nan])))
        print(f"{name} ({args.threads} threads, median of {args.rounds}):")
        for system, values in times.items():
            med = float(np.median(values))
            print(f"  {system:8s} {med:8.3f} s   {med / base:6.2f}x fastnn's time")


if __name__ == "__main__":
    main()
