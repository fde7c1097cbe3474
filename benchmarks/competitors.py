"""One adapter per system under test, all with the same two-call interface.

Every adapter trains the same network: Dense layers of ``sizes`` with ReLU on the hidden
layers and logits out, Glorot-uniform kernels and zero biases, softmax cross-entropy from
logits averaged over the batch, Adam(learning_rate=1e-3, epsilon=1e-7), a fresh shuffle
per epoch and a partial last batch.

- ``fit(X, y, sizes, epochs, batch_size, seed)`` builds a fresh network of layer widths
  ``sizes`` (input first) and trains it.  This is the timed call, so building is timed
  too, as a user would pay it.
- ``predict(X)`` returns per-class scores (logits, or probabilities for scikit-learn) of
  the model the last ``fit`` built; only their argmax is compared across systems.

Optional systems (PyTorch, scikit-learn, tf.keras, and fastnn itself while it is being
built) are skipped with the import error as a note when they cannot be imported; nothing
is ever substituted for a missing system.
"""
import os
import subprocess
import warnings

import numpy as np

from numpy_mlp import NumpyMLP


def _git_revision(folder):
    """`` at git abc1234`` (``+ uncommitted changes``) for a source checkout, else ``""``."""
    def git(*args):
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" at git {commit}" + (" + uncommitted changes" if dirty else "")


class FastnnSystem:
    """fastnn through its public Keras-style API."""

    name = "fastnn"

    def __init__(self, threads):
        import fastnn
        from fastnn import _kernels

        self.fastnn = fastnn
        self.version = fastnn.__version__
        fastnn.set_num_threads(threads)
        self.model = None
        source = os.path.dirname(os.path.dirname(fastnn.__file__))
        self.config = (f"fastnn {self.version} from {source}{_git_revision(source)}, "
                       f"OpenMP {'on' if _kernels.openmp_available() else 'off'}, "
                       f"{fastnn.get_num_threads()} thread(s)")

    def build(self, sizes, seed):
        """A compiled, built Sequential model (weights drawn from ``seed``)."""
        from fastnn import Sequential
        from fastnn.layers import Dense
        from fastnn.losses import SparseCategoricalCrossentropy
        from fastnn.optimizers import Adam

        self.fastnn.set_random_seed(seed)
        layers = [Dense(sizes[1], activation="relu", input_dim=sizes[0])]
        layers += [Dense(units, activation="relu") for units in sizes[2:-1]]
        layers.append(Dense(sizes[-1]))
        model = Sequential(layers)
        model.compile(optimizer=Adam(learning_rate=1e-3),
                      loss=SparseCategoricalCrossentropy(from_logits=True))
        return model

    def fit(self, X, y, sizes, epochs, batch_size, seed):
        self.model = self.build(sizes, seed)
        self.model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)

    def predict(self, X):
        return self.model.predict(X)


class NumpySystem:
    """The vectorised float32 NumPy reference of ``numpy_mlp.py``."""

    name = "NumPy"

    def __init__(self, threads):
        self.version = np.__version__
        self.model = None
        self.config = f"NumPy {self.version}, BLAS threads limited to {threads}"

    def fit(self, X, y, sizes, epochs, batch_size, seed):
        self.model = NumpyMLP(sizes)
        self.model.fit(X, y, epochs=epochs, batch_size=batch_size, seed=seed)

    def predict(self, X):
        return self.model.predict(X)


class TorchSystem:
    """PyTorch on the CPU: the idiomatic loop, indexing a shuffled permutation (no DataLoader)."""

    name = "PyTorch"

    def __init__(self, threads):
        import torch

        self.torch = torch
        self.version = torch.__version__
        torch.set_num_threads(threads)
        self.model = None
        self.config = (f"torch {self.version}, {torch.get_num_threads()} intra-op thread(s), "
                       f"default Adam implementation, no DataLoader")

    def build(self, sizes, seed):
        """nn.Sequential of Linear/ReLU, initialised as Keras does (Glorot kernels, zero biases)."""
        nn = self.torch.nn
        self.torch.manual_seed(seed)
        layers = []
        for i, (k, m) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            linear = nn.Linear(k, m)
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def fit(self, X, y, sizes, epochs, batch_size, seed):
        torch = self.torch
        model = self.build(sizes, seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        loss_fn = torch.nn.CrossEntropyLoss()
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        generator = torch.Generator().manual_seed(seed)
        n = len(X_t)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            running = 0.0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(X_t[idx]), y_t[idx])
                loss.backward()
                optimizer.step()
                running += loss.item() * len(idx)  # epoch loss, as Keras and fastnn report it
        self.model = model.eval()

    def forward(self, X):
        """Inference as a PyTorch user writes it: no_grad, ndarray in and out."""
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).numpy()

    predict = forward


class SklearnSystem:
    """scikit-learn's MLPClassifier, configured to run every epoch with the same Adam."""

    name = "MLPClassifier"

    def __init__(self, threads):
        import sklearn
        from sklearn.neural_network import MLPClassifier

        self.version = sklearn.__version__
        self.estimator_class = MLPClassifier
        self.model = None
        self.config = (f"scikit-learn {self.version} MLPClassifier(solver='adam', alpha=0, "
                       "epsilon=1e-7, tol=0, n_iter_no_change=1e9): every epoch runs; "
                       "BLAS through NumPy")

    def fit(self, X, y, sizes, epochs, batch_size, seed):
        from sklearn.exceptions import ConvergenceWarning

        self.model = self.estimator_class(
            hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam",
            batch_size=batch_size, max_iter=epochs, alpha=0.0, learning_rate_init=1e-3,
            epsilon=1e-7,  # Keras's value; scikit-learn's default is 1e-8
            tol=0.0, n_iter_no_change=10**9,  # never stop early: all `epochs` epochs run
            shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(X, y)

    def predict(self, X):
        return self.model.predict_proba(X)


class KerasSystem:
    """tf.keras (tensorflow-cpu), the API fastnn copies, with its default fit loop."""

    name = "tf.keras"

    def __init__(self, threads):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep oneDNN banners out of the run
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.keras = tf.keras
        self.version = tf.__version__
        self.model = None
        self.config = (f"tensorflow {self.version} (Keras {tf.keras.__version__}), "
                       f"{threads} intra-op and inter-op thread(s), default fit loop "
                       "(no XLA on CPU)")

    def build(self, sizes, seed):
        keras = self.keras
        keras.utils.set_random_seed(seed)
        layers = [keras.Input((sizes[0],))]
        layers += [keras.layers.Dense(units, activation="relu") for units in sizes[1:-1]]
        layers.append(keras.layers.Dense(sizes[-1]))
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def fit(self, X, y, sizes, epochs, batch_size, seed):
        self.model = self.build(sizes, seed)
        self.model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)

    def predict(self, X):
        return self.model.predict(X, verbose=0)


SYSTEMS = {cls.name: cls for cls in
           (FastnnSystem, NumpySystem, TorchSystem, SklearnSystem, KerasSystem)}


def load_systems(names, threads):
    """Instantiate the importable systems among ``names``.

    Parameters
    ----------
    names : iterable of str
        Keys of ``SYSTEMS``.
    threads : int
        Thread budget handed to every system that has a knob for it.

    Returns
    -------
    systems : dict of str to adapter
    skipped : dict of str to str
        Why each missing system could not be loaded.
    """
    systems, skipped = {}, {}
    for name in names:
        try:
            systems[name] = SYSTEMS[name](threads)
        except Exception as exc:  # noqa: BLE001 - a missing or half-built optional system
            skipped[name] = f"not importable ({type(exc).__name__}: {exc})"
    return systems, skipped


def accuracy(system, X, y):
    """Share of rows whose highest score is the true label."""
    return float(np.mean(np.argmax(system.predict(X), axis=1) == y))
