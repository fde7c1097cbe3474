"""The course's first network: recognising 0 versus 1 in scikit-learn's digits data.

sigmoid 25 -> sigmoid 15 -> sigmoid 1 with binary cross-entropy (the sigmoid output
and the loss are fused into one stable step from the pre-activation).
Prints ``test accuracy: <value>``.
"""
import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn
from fastnn import Sequential
from fastnn.layers import Dense
from fastnn.losses import BinaryCrossentropy
from fastnn.optimizers import Adam


def main(epochs=20, seed=0, verbose=0):
    X, y = load_digits(n_class=2, return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y)

    fastnn.set_random_seed(seed)
    model = Sequential([
        Dense(25, activation="sigmoid", input_dim=64),
        Dense(15, activation="sigmoid"),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=Adam(learning_rate=1e-3), loss=BinaryCrossentropy(),
                  metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=epochs, batch_size=32, verbose=verbose)

    prob = model.predict(X_test)[:, 0]
    y_hat = (prob >= 0.5).astype(int)
    accuracy = float(np.mean(y_hat == y_test))
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.seed, args.verbose)
