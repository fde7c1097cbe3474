"""The course's handwritten-digit classifier (0-9) on scikit-learn's digits data.

ReLU 25 -> ReLU 15 -> linear 10, trained with Adam on softmax cross-entropy from
logits; the probabilities come from fastnn.activations.softmax.
Prints per-epoch progress and a final ``test accuracy: <value>`` line, and saves the
learning curves (loss and accuracy per epoch) as a PNG when matplotlib is installed.
"""
import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import Sequential
from fastnn.layers import Dense
from fastnn.losses import SparseCategoricalCrossentropy
from fastnn.optimizers import Adam
from fastnn.utils import plot_history


def main(epochs=100, seed=0, verbose=1, plot="digits_multiclass.png"):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)

    fastnn.set_random_seed(seed)
    model = Sequential([
        Dense(25, activation="relu"),
        Dense(15, activation="relu"),
        Dense(10, activation="linear"),
    ])
    model.compile(optimizer=Adam(learning_rate=1e-3),
                  loss=SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)
    seconds = time.perf_counter() - start

    probs = fastnn.activations.softmax(model(X_test))
    accuracy = float(np.mean(probs.argmax(axis=1) == y_test))
    print(f"fit time: {seconds:.3f} s for {epochs} epochs")
    print(f"test accuracy: {accuracy:.4f}")
    if plot:
        save_curves(history, plot)
    return accuracy


def save_curves(history, path):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    matplotlib.use("Agg")  # file output only: no display needed
    plot_history(history).savefig(path, dpi=100)
    print(f"learning curves saved to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--plot", default="digits_multiclass.png",
                        help="PNG path for the learning curves ('' for none)")
    args = parser.parse_args()
    main(args.epochs, args.seed, args.verbose, args.plot)
