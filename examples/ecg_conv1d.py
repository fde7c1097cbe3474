"""The course's convolutional ECG classifier, on synthetic heartbeats.

Architecture (the course's, exactly): 100 samples of one beat -> Conv1D with one filter
of 20 samples, stride 10 (9 units, each looking at 20 consecutive samples) -> Conv1D with
one filter of 5, stride 2 (3 units, each looking at 5 of those 9) -> one sigmoid unit
(heart disease yes/no).  31 parameters.

Data (generated here, fixed seed): a beat is a P wave, a QRS complex and a T wave (sums of
Gaussian bumps) at a random offset of up to +-15 samples, with random amplitudes, a
baseline wander and white noise.  The documented abnormality is an *inverted T wave with
ST-segment depression* (a classic sign of myocardial ischaemia): label 1.  Half the beats
are abnormal.

For comparison a Dense network with the smallest hidden layer (100 -> 1 -> 1, 103
parameters) is trained on the same data.  Prints fit times and ``test accuracy: X`` of
the convolutional network (and of the Dense one).
"""
import argparse
import time

import numpy as np

import fastnn
from fastnn import Input, Sequential
from fastnn.layers import Conv1D, Dense, Flatten

STEPS = 100


def _bump(t, centre, width, height):
    return height * np.exp(-0.5 * ((t - centre) / width) ** 2)


def make_beats(n, rng):
    """(x of shape (n, 100, 1), y of shape (n,)): synthetic beats, half abnormal."""
    t = np.arange(STEPS, dtype=np.float64)
    y = rng.permutation(np.arange(n) % 2)
    shift = rng.integers(-15, 16, n)[:, None]
    amp = rng.uniform(0.8, 1.2, (n, 1))
    p = _bump(t, 22 + shift, 3.0, 0.15 * amp)
    qrs = (_bump(t, 38 + shift, 1.5, -0.15 * amp) + _bump(t, 42 + shift, 2.0, 1.0 * amp)
           + _bump(t, 46 + shift, 1.5, -0.25 * amp))
    t_sign = np.where(y[:, None] == 1, -1.0, 1.0)           # inverted T wave
    st = np.where(y[:, None] == 1, -0.1, 0.0) * ((t > 50 + shift) & (t < 62 + shift))
    t_wave = _bump(t, 68 + shift, 5.0, 0.2 * amp * t_sign)
    wander = 0.1 * np.sin(2 * np.pi * (t / STEPS * rng.uniform(0.3, 1.0, (n, 1))
                                       + rng.uniform(0, 1, (n, 1))))
    noise = 0.1 * rng.standard_normal((n, STEPS))
    x = p + qrs + st + t_wave + wander + noise
    return x[:, :, None].astype(np.float32), y.astype(np.float32)


def course_cnn():
    return Sequential([Input(shape=(STEPS, 1)),
                       Conv1D(1, 20, strides=10, activation="relu"),   # 9 units
                       Conv1D(1, 5, strides=2, activation="relu"),     # 3 units
                       Flatten(),
                       Dense(1, activation="sigmoid")])


def small_dense():
    return Sequential([Input(shape=(STEPS,)), Dense(1, activation="relu"),
                       Dense(1, activation="sigmoid")])


def train(model, x_train, y_train, x_test, y_test, epochs, verbose):
    model.compile(optimizer=fastnn.optimizers.Adam(learning_rate=3e-3),
                  loss="binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)
    seconds = time.perf_counter() - start
    return model.evaluate(x_test, y_test)[1], seconds


def main(epochs=60, seed=0, verbose=0):
    rng = np.random.default_rng(seed)
    x, y = make_beats(3000, rng)
    x_train, x_test, y_train, y_test = x[:2400], x[2400:], y[:2400], y[2400:]
    fastnn.set_random_seed(seed)
    cnn = course_cnn()
    cnn_acc, cnn_s = train(cnn, x_train, y_train, x_test, y_test, epochs, verbose)
    fastnn.set_random_seed(seed)
    dense = small_dense()
    dense_acc, dense_s = train(dense, x_train.reshape(-1, STEPS), y_train,
                               x_test.reshape(-1, STEPS), y_test, epochs, verbose)
    print(f"Dense 100 -> 1 -> 1 ({dense.count_params()} parameters): fit time "
          f"{dense_s:.3f} s, test accuracy {dense_acc:.4f}")
    print(f"course CNN ({cnn.count_params()} parameters): fit time {cnn_s:.3f} s for "
          f"{epochs} epochs")
    print(f"test accuracy: {cnn_acc:.4f}")
    return cnn_acc, dense_acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.seed, args.verbose)
