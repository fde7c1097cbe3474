"""The digits example's fit, compiled engine against the package's own NumPy twin.

fastnn._kernels.reference.Engine is the specification the compiled Engine is tested
against; this times the same 100-epoch fit of the course's digits network (64-25-15-10,
Adam 1e-3, batch 32) through each, interleaved, in one process.

    python benchmarks/bench_reference_engine.py [--rounds 5]
"""
import argparse
import time
from unittest import mock

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import models
from fastnn._kernels import Engine, reference
from fastnn.layers import Dense
from fastnn.losses import SparseCategoricalCrossentropy
from fastnn.optimizers import Adam


def fit_seconds(engine_class, X, y):
    fastnn.set_random_seed(0)
    model = fastnn.Sequential([Dense(25, activation="relu"), Dense(15, activation="relu"),
                               Dense(10)])
    model.compile(optimizer=Adam(1e-3), loss=SparseCategoricalCrossentropy(from_logits=True))
    with mock.patch.object(models, "Engine", engine_class):
        start = time.perf_counter()
        model.fit(X, y, epochs=100, batch_size=32, verbose=0)
        return time.perf_counter() - start


def main(rounds):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    fit_seconds(Engine, X_train, y_train)  # warm-up
    times = np.array([(fit_seconds(Engine, X_train, y_train),
                       fit_seconds(reference.Engine, X_train, y_train)) for _ in range(rounds)])
    compiled, ref = np.median(times, axis=0)
    ratio = np.median(times[:, 1] / times[:, 0])
    print(f"compiled Engine {compiled * 1e3:.1f} ms, reference.Engine {ref * 1e3:.1f} ms, "
          f"median ratio {ratio:.1f}x ({rounds} interleaved rounds)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    main(parser.parse_args().rounds)
