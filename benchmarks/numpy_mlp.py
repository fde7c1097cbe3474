"""The NumPy baseline: the training algorithm fastnn runs, written as well as NumPy allows.

This is the yardstick every fastnn speed-up is quoted against, so it has to be what a
competent NumPy user would write, not a straw man:

- float32 throughout (NumPy 2's scalar rules keep Python floats from upcasting);
- one flat parameter vector, one flat gradient vector and flat Adam moments, with a
  ``(k, m)`` kernel view and an ``(m,)`` bias view per layer, so Adam is a handful of
  whole-vector ufunc calls per step;
- every per-step buffer (batch rows, activations, deltas, softmax scratch) allocated once
  per ``fit`` and written with ``out=``; the partial last batch uses row-prefix views;
- no Python loop over samples: per step there is one loop over layers only.

The algorithm is the one fastnn implements (see ``shared/API.md``): Dense layers, Keras
Glorot-uniform kernels and zero biases, softmax cross-entropy from logits with the row
maximum subtracted, mean over the batch, the Keras Adam rule with ``epsilon=1e-7``, a new
permutation every epoch and mini-batches whose last one may be partial.
"""
import math

import numpy as np

_ACTIVATIONS = ("linear", "relu")


def glorot_uniform(rng, fan_in, fan_out, out):
    """Fill ``out`` (shape (fan_in, fan_out)) from U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    out[...] = rng.uniform(-limit, limit, size=out.shape)


def adam_inplace(w, g, m, v, tmp, learning_rate, beta_1, beta_2, epsilon, step):
    """Keras Adam at 1-based ``step`` on flat float32 vectors, in place, no temporaries.

    ``m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``; ``tmp`` is scratch of
    the same length.  Eleven passes over memory, each a ufunc writing into ``out=``.
    """
    np.subtract(g, m, out=tmp)
    tmp *= 1.0 - beta_1
    m += tmp
    np.square(g, out=tmp)
    tmp -= v
    tmp *= 1.0 - beta_2
    v += tmp
    # A Python float: a NumPy float64 scalar would make the next multiply a float64 loop.
    lr_t = learning_rate * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    np.sqrt(v, out=tmp)
    tmp += epsilon  # Keras adds epsilon after the square root
    np.divide(m, tmp, out=tmp)
    tmp *= lr_t
    w -= tmp


class NumpyMLP:
    """Dense network trained with softmax cross-entropy from logits and Keras Adam.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths including the input, e.g. ``(64, 25, 15, 10)``.
    activations : sequence of str, optional
        One of ``"relu"`` / ``"linear"`` per Dense layer; default relu on hidden layers
        and linear (logits) on the last.
    learning_rate, beta_1, beta_2, epsilon : float
        Keras Adam hyper-parameters.
    """

    def __init__(self, sizes, activations=None, learning_rate=1e-3, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-7):
        self.sizes = tuple(int(s) for s in sizes)
        n_layers = len(self.sizes) - 1
        if activations is None:
            activations = ["relu"] * (n_layers - 1) + ["linear"]
        if len(activations) != n_layers or any(a not in _ACTIVATIONS for a in activations):
            raise ValueError(f"activations must be {n_layers} of {_ACTIVATIONS}")
        self.activations = tuple(activations)
        self.learning_rate, self.beta_1, self.beta_2 = learning_rate, beta_1, beta_2
        self.epsilon = epsilon
        self.n_params = sum(k * m + m for k, m in self._shapes())
        self.params = np.zeros(self.n_params, np.float32)
        self.weights = self._layer_views(self.params)
        self.step = 0

    def _shapes(self):
        return list(zip(self.sizes[:-1], self.sizes[1:], strict=True))

    def _layer_views(self, flat):
        """[(W, b), ...] views into a flat vector laid out as W1, b1, W2, b2, ... (Keras order)."""
        views, offset = [], 0
        for k, m in self._shapes():
            w = flat[offset:offset + k * m].reshape(k, m)
            b = flat[offset + k * m:offset + k * m + m]
            views.append((w, b))
            offset += k * m + m
        return views

    def initialize(self, seed):
        """Draw Glorot-uniform kernels and zero biases; reset the optimizer."""
        rng = np.random.default_rng(seed)
        for (w, b), (k, m) in zip(self.weights, self._shapes(), strict=True):
            glorot_uniform(rng, k, m, w)
            b[...] = 0.0
        self.step = 0

    # ------------------------------------------------------------------ training

    def fit(self, X, y, epochs=1, batch_size=32, seed=0):
        """Train from a fresh initialisation; return the per-epoch mean training loss.

        Parameters
        ----------
        X : ndarray of shape (n_samples, sizes[0])
        y : ndarray of shape (n_samples,), integer labels in ``[0, sizes[-1])``
        epochs, batch_size : int
        seed : int
            Seeds the initialisation and the per-epoch shuffling.

        Returns
        -------
        list of float
        """
        X = np.ascontiguousarray(X, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.intp)
        self.initialize(seed)
        rng = np.random.default_rng([seed, 1])
        n, history = len(X), []
        self._allocate(min(batch_size, n))
        # One gather per epoch into preallocated copies makes every batch a contiguous
        # row slice: cheaper than gathering each batch's rows.
        X_epoch, y_epoch = np.empty_like(X), np.empty_like(y)
        for _ in range(epochs):
            order = rng.permutation(n)
            np.take(X, order, axis=0, out=X_epoch, mode="clip")  # "raise" would buffer out
            np.take(y, order, out=y_epoch, mode="clip")
            total = 0.0
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                total += self._train_step(X_epoch[start:stop], y_epoch[start:stop])
            history.append(total / n)
        return history

    def _allocate(self, batch):
        """Per-fit workspace: every array one training step writes."""
        f32 = np.float32
        self.m = np.zeros(self.n_params, f32)
        self.v = np.zeros(self.n_params, f32)
        self.grads = np.zeros(self.n_params, f32)
        self.grad_views = self._layer_views(self.grads)
        self.scratch = np.empty(self.n_params, f32)
        self.acts = [np.empty((batch, m), f32) for m in self.sizes[1:]]
        self.deltas = [np.empty((batch, m), f32) for m in self.sizes[1:]]
        self.masks = [np.empty((batch, m), bool) for m in self.sizes[1:]]
        self.row_max = np.empty((batch, 1), f32)
        self.row_sum = np.empty((batch, 1), f32)
        self.rows = np.arange(batch)

    def _train_step(self, xb, yb):
        """Forward, loss and gradient, backward, Adam; return the batch's summed loss."""
        nb = len(yb)
        acts = [a[:nb] for a in self.acts]
        self._forward_train(xb, acts)
        loss = self._softmax_xent(acts[-1], yb, self.deltas[-1][:nb])
        self._backward(xb, acts, nb)
        self._adam()
        return loss * nb

    def _forward_train(self, xb, acts):
        """acts[l] = act(acts[l-1] @ W_l + b_l), computed in place (relu' comes from a > 0)."""
        a_prev = xb
        for (w, b), act, a in zip(self.weights, self.activations, acts, strict=True):
            np.matmul(a_prev, w, out=a)
            a += b
            if act == "relu":
                np.maximum(a, 0.0, out=a)
            a_prev = a

    def _softmax_xent(self, logits, labels, dz):
        """Mean cross-entropy of softmax(logits); dz = (softmax - onehot) / n.

        The row maximum is subtracted so that exp never overflows.  The true-class
        entries are addressed through flat indices (a 1-D gather/scatter), the 1/n of
        the mean is folded into the normaliser so the gradient costs no extra pass, and
        reductions call ``ufunc.reduce`` directly: on rows of ten values ``np.max`` and
        ``np.sum`` spend more time in their Python wrappers than in the arithmetic.
        """
        nb = len(labels)
        row_max, row_sum = self.row_max[:nb], self.row_sum[:nb]
        flat = self.rows[:nb] * logits.shape[1] + labels
        dz_flat = dz.reshape(-1)
        np.maximum.reduce(logits, axis=1, keepdims=True, out=row_max)
        np.subtract(logits, row_max, out=dz)
        picked = dz_flat[flat]  # shifted logit of the true class, shape (nb,)
        np.exp(dz, out=dz)
        np.add.reduce(dz, axis=1, keepdims=True, out=row_sum)
        np.log(row_sum, out=row_max)  # row_max is free again: log-sum-exp of the shifted row
        np.subtract(row_max[:, 0], picked, out=picked)  # per-row cross-entropy
        loss = float(np.add.reduce(picked, dtype=np.float64)) / nb
        row_sum *= nb
        np.divide(dz, row_sum, out=dz)
        dz_flat[flat] -= 1.0 / nb
        return loss

    def _backward(self, xb, acts, nb):
        """Fill the flat gradient vector from the last layer's dz back to layer 1."""
        n_layers = len(self.weights)
        for layer in range(n_layers - 1, -1, -1):
            dz = self.deltas[layer][:nb]
            a_prev = acts[layer - 1] if layer > 0 else xb
            dw, db = self.grad_views[layer]
            np.matmul(a_prev.T, dz, out=dw)
            np.add.reduce(dz, axis=0, out=db)
            if layer == 0:
                break
            da = self.deltas[layer - 1][:nb]
            np.matmul(dz, self.weights[layer][0].T, out=da)
            if self.activations[layer - 1] == "relu":
                mask = self.masks[layer - 1][:nb]
                np.greater(a_prev, 0.0, out=mask)
                np.multiply(da, mask, out=da)

    def _adam(self):
        """One Keras Adam step over the whole flat parameter vector."""
        self.step += 1
        adam_inplace(self.params, self.grads, self.m, self.v, self.scratch,
                     self.learning_rate, self.beta_1, self.beta_2, self.epsilon, self.step)

    # ----------------------------------------------------------------- inference

    def predict(self, X):
        """Logits of the last layer, shape (n_samples, sizes[-1]), float32."""
        a = np.asarray(X, dtype=np.float32)
        for (w, b), act in zip(self.weights, self.activations, strict=True):
            a = a @ w
            a += b
            if act == "relu":
                np.maximum(a, 0.0, out=a)
        return a

    def score(self, X, y):
        """Classification accuracy of ``argmax(predict(X))`` against ``y``."""
        return float(np.mean(self.predict(X).argmax(axis=1) == np.asarray(y)))
