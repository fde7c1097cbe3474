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
        if threads is not None:
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
        self.config = (f"NumPy {self.version}, "
                       + (f"BLAS threads limited to {threads}" if threads else
                          "BLAS threads at their default"))

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
        if threads is not None:
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
        torch_train(torch, model, X, y.astype(np.int64), epochs, batch_size, seed)
        self.model = model.eval()

    def forward(self, X):
        """Inference as a PyTorch user writes it: no_grad, ndarray in and out."""
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).numpy()

    predict = forward

    def infer(self, X):
        """Batch inference as the PyTorch docs recommend it: under ``inference_mode``."""
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(X)).numpy()


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

        if threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.keras = tf.keras
        self.version = tf.__version__
        self.model = None
        self.config = (f"tensorflow {self.version} (Keras {tf.keras.__version__}), "
                       f"{threads or 'default'} intra-op and inter-op thread(s), default fit loop "
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


class JaxSystem:
    """JAX + optax on the CPU, in one of two forms (``mode``).

    - ``"step"``: the idiomatic loop, one jitted train step per mini-batch, batches
      gathered on the host with NumPy;
    - ``"scan"``: the whole epoch as one jitted ``lax.scan`` over the full batches (the
      rows gathered inside the scan), the partial last batch as one more jitted step.

    The jitted functions are compiled ahead of time at the start of every ``fit``
    (``jit(...).lower(...).compile()``), so each fit pays the compile a fresh process
    pays, and ``extra`` reports it apart from the per-epoch times.  The optimizer is
    ``optax.adam(1e-3, eps=1e-7)``: optax adds epsilon to the square root of the
    bias-corrected second moment where Keras adds it to the uncorrected one; the work
    per step is the same.
    """

    modes = {"JAX step": "step", "JAX scan": "scan"}

    def __init__(self, threads):
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax
        import optax

        self.jax, self.optax = jax, optax
        self.mode = self.modes[self.name]
        self.version = jax.__version__
        self.model = None
        self.extra = {}
        self.config = (f"jax {jax.__version__}, optax {optax.__version__}, "
                       f"{jax.devices()[0].platform} backend, "
                       + ("one jitted step per batch" if self.mode == "step" else
                          "one jitted lax.scan per epoch + one jitted step for the "
                          "partial batch")
                       + f"; XLA's own thread pool (threads={threads} not settable)")

    def _init(self, sizes, seed):
        rng = np.random.default_rng(seed)
        params = []
        for k, m in zip(sizes[:-1], sizes[1:], strict=True):
            limit = np.sqrt(6.0 / (k + m))
            params.append((rng.uniform(-limit, limit, (k, m)).astype(np.float32),
                           np.zeros(m, np.float32)))
        return self.jax.device_put(params)

    def _functions(self):
        jax, optax = self.jax, self.optax
        optimizer = optax.adam(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-7)

        def forward(params, x):
            for layer, (w, b) in enumerate(params):
                x = x @ w + b
                if layer < len(params) - 1:
                    x = jax.nn.relu(x)
            return x

        def loss_fn(params, xb, yb):
            logits = forward(params, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        def step(params, state, xb, yb):
            loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        def epoch(params, state, X, y, batches):
            def body(carry, idx):
                params, state, loss = step(*carry, X[idx], y[idx])
                return (params, state), loss
            (params, state), losses = jax.lax.scan(body, (params, state), batches)
            return params, state, losses

        return optimizer, forward, step, epoch

    def fit(self, X, y, sizes, epochs, batch_size, seed):
        import time

        jax = self.jax
        X = np.ascontiguousarray(X, np.float32)
        y = np.ascontiguousarray(y, np.int32)
        n = len(X)
        n_full, tail = divmod(n, batch_size)
        optimizer, forward, step, epoch = self._functions()
        params = self._init(sizes, seed)
        state = optimizer.init(params)
        start = time.perf_counter()
        step_full = jax.jit(step).lower(params, state, X[:batch_size], y[:batch_size]).compile()
        step_tail = (jax.jit(step).lower(params, state, X[:tail], y[:tail]).compile()
                     if tail else None)
        if self.mode == "scan":
            X_dev, y_dev = jax.device_put(X), jax.device_put(y)
            batches = np.zeros((n_full, batch_size), np.int32)
            scan_epoch = jax.jit(epoch).lower(params, state, X_dev, y_dev, batches).compile()
        compile_s = time.perf_counter() - start
        rng = np.random.default_rng([seed, 1])
        epoch_s = []
        for _ in range(epochs):
            started = time.perf_counter()
            order = rng.permutation(n).astype(np.int32)
            losses = []
            if self.mode == "scan":
                params, state, loss = scan_epoch(params, state, X_dev, y_dev,
                                                 order[:n_full * batch_size].reshape(n_full, -1))
                losses.append(loss.sum() * batch_size)
            else:
                for i in range(n_full):
                    idx = order[i * batch_size:(i + 1) * batch_size]
                    params, state, loss = step_full(params, state, X[idx], y[idx])
                    losses.append(loss * batch_size)
            if tail:
                idx = order[n_full * batch_size:]
                params, state, loss = step_tail(params, state, X[idx], y[idx])
                losses.append(loss * tail)
            float(jax.numpy.stack(losses).sum())  # the epoch's loss, as a user logs it
            epoch_s.append(time.perf_counter() - started)
        self.model = (params, jax.jit(forward))
        self.extra = {"compile_s": compile_s, "epoch_s": epoch_s}

    def predict(self, X):
        params, forward = self.model
        return np.asarray(forward(params, np.asarray(X, np.float32)))


class JaxStepSystem(JaxSystem):
    name = "JAX step"


class JaxScanSystem(JaxSystem):
    name = "JAX scan"


SYSTEMS = {cls.name: cls for cls in
           (FastnnSystem, NumpySystem, TorchSystem, SklearnSystem, KerasSystem,
            JaxStepSystem, JaxScanSystem)}


def torch_train(torch, model, X, y, epochs, batch_size, seed):
    """The idiomatic PyTorch loop: Adam (Keras's epsilon), cross-entropy on logits, a fresh
    permutation per epoch, and the epoch's loss summed as a user logs it."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
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
    return running


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
