"""Regularisation on the digits data: a large network with and without L2 + Dropout +
EarlyStopping.

Both runs train 64 -> 256 -> 256 -> 10 on the same 80% training split, holding out its last
20% for validation.  The plain network overfits (its validation loss turns up after a
few dozen epochs); the regularised one adds L2(1e-4) on every kernel, Dropout(0.3) after
each hidden layer and EarlyStopping(patience=15, restore_best_weights=True).  Prints the
best validation values of each curve and the test accuracy, and saves the training and
validation loss curves of both runs as a PNG when matplotlib is installed.
"""
import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import Sequential
from fastnn.callbacks import EarlyStopping
from fastnn.layers import Dense, Dropout
from fastnn.losses import SparseCategoricalCrossentropy
from fastnn.optimizers import Adam
from fastnn.regularizers import L2
from fastnn.utils import plot_history


def build(regularized):
    reg = L2(1e-4) if regularized else None
    layers = [Dense(256, activation="relu", kernel_regularizer=reg)]
    if regularized:
        layers.append(Dropout(0.3))
    layers.append(Dense(256, activation="relu", kernel_regularizer=reg))
    if regularized:
        layers.append(Dropout(0.3))
    layers.append(Dense(10, kernel_regularizer=reg))
    model = Sequential(layers)
    model.compile(optimizer=Adam(learning_rate=1e-3),
                  loss=SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def save_curves(curves, path):
    """Training vs validation loss of each run side by side: the course's bias/variance
    picture (a validation curve that turns up away from the training curve is variance)."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    matplotlib.use("Agg")  # file output only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), sharey=True)
    for ax, (name, h) in zip(axes, curves.items(), strict=True):
        plot_history(h, metrics="loss", ax=ax)
        ax.set_yscale("log")
        ax.set_title(name)
    fig.suptitle("digits, 64-256-256-10: training vs validation loss")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"learning curves saved to {path}")


def main(epochs=150, seed=0, plot="digits_regularized.png"):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)

    curves = {}
    for regularized in (False, True):
        fastnn.set_random_seed(seed)
        model = build(regularized)
        callbacks = [EarlyStopping(monitor="val_loss", patience=15,
                                   restore_best_weights=True)] if regularized else []
        history = model.fit(X_train, y_train, epochs=epochs, batch_size=32,
                            validation_split=0.2, callbacks=callbacks, verbose=0)
        name = "L2 + Dropout + EarlyStopping" if regularized else "plain"
        h = history.history
        _, test_acc = model.evaluate(X_test, y_test)
        best = int(np.argmin(h["val_loss"]))
        print(f"{name:>30}: {len(h['loss'])} epochs, best val_loss {h['val_loss'][best]:.4f} "
              f"(epoch {best + 1}), best val_accuracy {max(h['val_accuracy']):.4f}, "
              f"final val_loss {h['val_loss'][-1]:.4f}, test accuracy {test_acc:.4f}")
        curves[name] = h

    if plot:
        save_curves(curves, plot)
    return curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="digits_regularized.png",
                        help="PNG path for the learning curves ('' for none)")
    args = parser.parse_args()
    main(args.epochs, args.seed, args.plot)
