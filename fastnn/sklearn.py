"""scikit-learn estimators over ``Sequential``: ``FastNNClassifier`` and ``FastNNRegressor``.

This is the only fastnn module that imports scikit-learn, so ``import fastnn``
stays light.  The estimators follow scikit-learn's conventions: ``__init__``
only stores its arguments, ``fit`` validates them and the data with
scikit-learn's own helpers and then builds, compiles and trains a fresh
``Sequential`` (``model_``).

The network is ``Dense(h, activation)`` for each ``h`` in
``hidden_layer_sizes`` followed by a linear output layer, trained on logits:
binary cross-entropy for two classes and for multi-label targets, sparse
categorical cross-entropy for more classes, mean squared error for regression.
Computation is in float32 (fastnn's default); predictions and probabilities are
returned in float64.

>>> from fastnn.sklearn import FastNNClassifier
>>> clf = FastNNClassifier(hidden_layer_sizes=(32,), epochs=20, random_state=0)
>>> clf.fit(X, y).score(X, y)                               # doctest: +SKIP
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d

from fastnn import _random, activations
from fastnn import optimizers as optimizers_module
from fastnn.callbacks import EarlyStopping
from fastnn.layers import Dense
from fastnn.losses import BinaryCrossentropy, SparseCategoricalCrossentropy
from fastnn.models import Sequential
from fastnn.regularizers import L2

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from typing_extensions import Self

    from fastnn._typing import ArrayLike, NDArray
    from fastnn.callbacks import History
    from fastnn.layers import Layer
    from fastnn.losses import Loss
    from fastnn.optimizers import Optimizer

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)

__all__ = ["FastNNClassifier", "FastNNRegressor"]


class _FastNNBase(BaseEstimator):
    """Parameters, validation and the training loop shared by both estimators."""

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: str = "relu", optimizer: str = "adam",
                 learning_rate: float = 1e-3, batch_size: int = 32, epochs: int = 200,
                 alpha: float = 0.0, validation_fraction: float = 0.0,
                 early_stopping: bool = False, patience: int = 10,
                 random_state: int | np.random.RandomState | None = None,
                 verbose: int = 0) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.alpha = alpha
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    # -------------------------------------------------------------- parameter checks
    def _checked_params(self) -> tuple[list[int], Optimizer, int | None]:
        """Check every parameter (ValueError / TypeError naming the bad one) before
        ``fit`` touches the estimator; returns (hidden sizes, optimizer, seed)."""
        sizes: Any = self.hidden_layer_sizes   # validated here, whatever it is
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else sizes
        try:
            sizes = list(sizes)
        except TypeError:
            raise TypeError("hidden_layer_sizes must be an int or a sequence of ints, "
                            f"got {self.hidden_layer_sizes!r}") from None
        if any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
               for h in sizes):
            raise ValueError("hidden_layer_sizes must hold ints >= 1, "
                             f"got {self.hidden_layer_sizes!r}")
        if not isinstance(self.optimizer, str):
            raise TypeError("optimizer must be a name such as 'adam' or 'sgd', "
                            f"got {self.optimizer!r}")
        _check_number(self.learning_rate, "learning_rate", low=0, low_open=True)
        _check_number(self.alpha, "alpha", low=0)
        _check_number(self.validation_fraction, "validation_fraction", low=0, high=1,
                      high_open=True)
        for name, low in (("batch_size", 1), ("epochs", 1), ("patience", 0)):
            _check_integer(getattr(self, name), name, low)
        _check_integer(self.verbose, "verbose", 0)
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise TypeError(f"early_stopping must be a bool, got {self.early_stopping!r}")
        activations.get(self.activation)  # raises naming "activation"
        # a fresh optimizer of the named kind, with this estimator's learning rate
        optimizer = type(optimizers_module.get(self.optimizer))(
            learning_rate=float(self.learning_rate))
        return [int(h) for h in sizes], optimizer, self._seed()

    def _seed(self) -> int | None:
        """None (use fastnn's global stream) or the seed of this fit's own stream."""
        if self.random_state is None:
            return None
        if isinstance(self.random_state, numbers.Integral) and \
                self.random_state >= 0:  # type: ignore[operator]  # an Integral
            return int(self.random_state)
        # a RandomState instance: each fit takes the next seed from it (scikit-learn's
        # rule); check_random_state rejects anything else, naming random_state
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    # -------------------------------------------------------------- training
    def _fit_network(self, params: tuple[list[int], Optimizer, int | None], X: NDArray[Any],
                     y: NDArray[Any], sample_weight: NDArray[Any] | None, n_out: int,
                     loss: str | Loss) -> Self:
        """Build, compile and train ``model_`` on validated arrays; set the fit attributes."""
        sizes, optimizer, seed = params
        layers = [Dense(h, activation=self.activation, kernel_regularizer=self._l2())
                  for h in sizes]
        layers.append(Dense(n_out, kernel_regularizer=self._l2()))
        if seed is None:
            history = self._train(layers, optimizer, loss, X, y, sample_weight)
        else:
            with _random.seeded(seed):  # initialisers, the split, shuffling, dropout
                history = self._train(layers, optimizer, loss, X, y, sample_weight)
        self.history_ = {k: list(v) for k, v in history.history.items()}
        self.loss_curve_ = list(self.history_["loss"])
        self.n_iter_ = len(self.loss_curve_)
        return self

    def _l2(self) -> L2 | None:
        return L2(float(self.alpha)) if self.alpha > 0 else None

    def _train(self, layers: Sequence[Layer], optimizer: Optimizer, loss: str | Loss,
               X: NDArray[Any], y: NDArray[Any], sample_weight: NDArray[Any] | None
               ) -> History:
        model = Sequential(layers)
        model.build(X.shape[1])
        model.compile(optimizer=optimizer, loss=loss)
        fit_kwargs: dict[str, Any] = {}
        if self.validation_fraction > 0:
            X, y, sample_weight, fit_kwargs["validation_data"] = self._split(
                X, y, sample_weight)
        if self.early_stopping:
            monitor = "val_loss" if self.validation_fraction > 0 else "loss"
            fit_kwargs["callbacks"] = [EarlyStopping(monitor=monitor, patience=self.patience,
                                                     restore_best_weights=True)]
        history = model.fit(X, y, epochs=self.epochs, batch_size=self.batch_size,
                            sample_weight=sample_weight, verbose=2 if self.verbose else 0,
                            **fit_kwargs)
        self.model_ = model
        return history

    def _split(self, X: NDArray[Any], y: NDArray[Any], sample_weight: NDArray[Any] | None
               ) -> tuple[Any, Any, Any, Any]:
        """A random validation split of `validation_fraction` of the rows."""
        n = X.shape[0]
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val >= n:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no "
                             f"training rows out of n_samples={n}")
        order = _random.generator().permutation(n)
        val, train = order[:n_val], order[n_val:]
        sw_val = None if sample_weight is None else sample_weight[val]
        sw_train = None if sample_weight is None else sample_weight[train]
        return X[train], y[train], sw_train, (X[val], y[val], sw_val)

    def _raw_output(self, X: ArrayLike) -> NDArray[np.float64]:
        """The network's output (logits or regression values) in float64."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.predict(X).astype(np.float64)

    def _fit_sample_weight(self, sample_weight: ArrayLike | None, X: NDArray[Any]
                           ) -> NDArray[np.float64] | None:
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64,
                                    ensure_non_negative=True)


class FastNNClassifier(ClassifierMixin, _FastNNBase):
    """A multi-layer perceptron classifier trained by fastnn's compiled engine.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Units of each hidden ``Dense`` layer; ``()`` gives a linear model.
    activation : str, default "relu"
        Activation of the hidden layers (any name in ``fastnn.activations``).
    optimizer : str, default "adam"
        Optimizer name, e.g. "adam" or "sgd", built with `learning_rate`.
    learning_rate : float, default 1e-3
    batch_size : int, default 32
    epochs : int, default 200
        Passes over the training data (fewer with `early_stopping`).
    alpha : float, default 0.0
        L2 factor on every kernel: ``alpha * sum(W ** 2)`` is added to the mean loss
        (Keras's convention, ``fastnn.regularizers.L2(alpha)``).
    validation_fraction : float in [0, 1), default 0.0
        Fraction of the rows, drawn at random, held out; its loss is ``history_["val_loss"]``.
    early_stopping : bool, default False
        Stop once the validation loss (the training loss without a validation
        fraction) has not improved for `patience` epochs, and keep the best weights.
    patience : int, default 10
    random_state : None, int or numpy.random.RandomState, default None
        An int makes ``fit`` reproducible whatever fastnn's global seed, whatever ran
        before and whatever other threads do (same data and thread count); None
        draws from fastnn's global stream (``fastnn.set_random_seed``).
    verbose : int, default 0
        Non-zero prints one line per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (for multi-label targets, ``arange(n_outputs)``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when `X` had string column names (e.g. a DataFrame).
    model_ : fastnn.Sequential
        The fitted network; it outputs logits.
    history_ : dict of str to list of float
        Per-epoch ``loss`` (and ``val_loss``), as ``History.history``.
    loss_curve_ : list of float
    n_iter_ : int
        Epochs run.
    """

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Train a new network on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels of any type, or a 0/1 multi-label indicator matrix.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        params = self._checked_params()
        X, y = _validate_data(self, X, y, multi_output=True, dtype=[np.float64, np.float32])
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)  # scikit-learn's DataConversionWarning
        check_classification_targets(y)
        sample_weight = self._fit_sample_weight(sample_weight, X)
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            classes, label_dtype = np.arange(y.shape[1]), y.dtype
            targets = np.asarray(y, dtype=np.float32)
        elif kind in ("binary", "multiclass"):
            encoder = LabelEncoder().fit(y)
            classes, label_dtype = encoder.classes_, None
            if len(classes) < 2:
                raise ValueError("FastNNClassifier needs samples of at least 2 classes in "
                                 f"the data, but the data contains only one class: "
                                 f"{classes[0]!r}")
            kind = "binary" if len(classes) == 2 else "multiclass"
            targets = encoder.transform(y)
        else:  # multiclass-multioutput: check_classification_targets let it through
            raise ValueError(f"FastNNClassifier does not support {kind!r} targets")
        if kind == "multiclass":
            loss, n_out = SparseCategoricalCrossentropy(from_logits=True), len(classes)
        else:  # one logit per label; a single one for two classes
            loss, n_out = BinaryCrossentropy(from_logits=True), 1 if kind == "binary" else \
                len(classes)
            targets = targets.astype(np.float32).reshape(len(targets), n_out)
        self._fit_network(params, X, targets, sample_weight, n_out, loss)
        self.classes_, self._target_kind, self._label_dtype = classes, kind, label_dtype
        return self

    def decision_function(self, X: ArrayLike) -> NDArray[np.float64]:
        """Logits: shape (n_samples,) for two classes (positive means ``classes_[1]``),
        else (n_samples, n_classes) (per label for multi-label targets)."""
        out = self._raw_output(X)
        return out[:, 0] if self._target_kind == "binary" else out

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities, shape (n_samples, n_classes); for multi-label targets
        the probability of each label, shape (n_samples, n_labels)."""
        z = self.decision_function(X)
        if self._target_kind == "binary":
            p = expit(z)
            return np.column_stack([1.0 - p, p])
        if self._target_kind == "multilabel-indicator":
            return expit(z)
        return softmax(z, axis=1)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Predicted class labels (a 0/1 indicator matrix for multi-label targets)."""
        z = self.decision_function(X)
        if self._target_kind == "binary":
            return self.classes_[(z > 0).astype(np.intp)]
        if self._target_kind == "multilabel-indicator":
            return (z > 0).astype(self._label_dtype)
        return self.classes_[np.argmax(z, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class FastNNRegressor(RegressorMixin, _FastNNBase):
    """A multi-layer perceptron regressor trained by fastnn's compiled engine.

    The network ends in a linear ``Dense`` layer with one unit per target and is
    trained on the mean squared error.  Parameters and attributes are those of
    `FastNNClassifier` (without ``classes_``), plus ``n_outputs_``.
    """

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Train a new network on (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        params = self._checked_params()
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32])
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        sample_weight = self._fit_sample_weight(sample_weight, X)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        targets = np.asarray(y, dtype=np.float32).reshape(len(y), n_outputs)
        self._fit_network(params, X, targets, sample_weight, n_outputs, "mse")
        self.n_outputs_ = n_outputs
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predictions, shape (n_samples,) for one target, else (n_samples, n_targets)."""
        out = self._raw_output(X)
        return out[:, 0] if self.n_outputs_ == 1 else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _check_number(value: float, name: str, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def _check_integer(value: int, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
