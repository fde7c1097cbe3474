"""fastnn.sklearn: scikit-learn's estimator suite, targets, seeding, pickling, joblib."""
import concurrent.futures
import os
import pickle

import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_config
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastnn
from fastnn.sklearn import FastNNClassifier, FastNNRegressor

# small networks and few epochs keep the suite fast; the learning rate is raised so
# that scikit-learn's accuracy / R^2 floors are still met
FAST = dict(hidden_layer_sizes=(16,), epochs=30, learning_rate=0.01)


def _engine_rejects_readonly_float32():
    """True while fastnn's engine cannot train on a read-only float32 array (the
    no-copy input path): another branch fixes this; the tests below run as soon as
    it lands."""
    from fastnn import Sequential
    from fastnn.layers import Dense

    x = np.zeros((4, 2), np.float32)
    x.flags.writeable = False
    model = Sequential([Dense(1)])
    model.compile(loss="mse")
    try:
        model.fit(x, np.zeros(4, np.float32), verbose=0)
    except ValueError as exc:
        return "read-only" in str(exc)
    return False


READONLY_BUG = _engine_rejects_readonly_float32()
READONLY_REASON = ("fastnn's engine rejects read-only float32 inputs (the no-copy path); "
                   "fixed on the engine branch")


def _expected_failed_checks(estimator):
    failures = {
        # Mini-batch stochastic training: repeating a row changes the number of steps
        # and the batches, and dropping a zero-weight row changes the shuffles, so no
        # finite-epoch mini-batch fit can match the weighted one to rtol=1e-7.
        # scikit-learn marks the same check for its own SGDClassifier, SGDRegressor
        # and Perceptron ("sample_weight is not equivalent to removing/repeating samples").
        "check_sample_weight_equivalence_on_dense_data":
            "mini-batch SGD: sample_weight is not equivalent to removing/repeating samples",
    }
    if READONLY_BUG:
        # one variant of each of these checks fits on read-only float32 memmaps; the
        # mark covers every variant of the check, so the others show as XPASS
        name = ("check_classifiers_train" if isinstance(estimator, FastNNClassifier)
                else "check_regressors_train")
        failures[name] = READONLY_REASON
    return failures


@parametrize_with_checks([FastNNClassifier(**FAST), FastNNRegressor(**FAST)],
                         expected_failed_checks=_expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------- targets
def _blobs(n=200, n_classes=3, seed=0):
    x, y = make_classification(n_samples=n, n_features=6, n_informative=4,
                               n_classes=n_classes, n_clusters_per_class=1, random_state=seed)
    return x, y


def test_binary_string_labels():
    x, y = _blobs(n_classes=2)
    labels = np.array(["no", "yes"])[y]
    clf = FastNNClassifier(**FAST, random_state=0).fit(x, labels)
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.n_features_in_ == 6
    d, p, pred = clf.decision_function(x), clf.predict_proba(x), clf.predict(x)
    assert d.shape == (200,) and p.shape == (200, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(pred, np.where(d > 0, "yes", "no"))
    np.testing.assert_array_equal(pred, clf.classes_[p.argmax(axis=1)])
    assert clf.score(x, labels) > 0.9
    assert isinstance(clf.model_, fastnn.Sequential)
    assert clf.model_.layers[-1].units == 1


def test_multiclass_labels():
    x, y = _blobs(n_classes=4)
    labels = np.array(["a", "b", "c", "d"])[y]
    clf = FastNNClassifier(**FAST, random_state=0).fit(x, labels)
    p = clf.predict_proba(x)
    assert p.shape == (200, 4) and clf.decision_function(x).shape == (200, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(x), clf.classes_[p.argmax(axis=1)])
    assert clf.score(x, labels) > 0.8


def test_multilabel_indicator_targets():
    x, y = make_multilabel_classification(n_samples=200, n_features=8, n_classes=3,
                                          random_state=0)
    clf = FastNNClassifier(**FAST, random_state=0).fit(x, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    pred, p = clf.predict(x), clf.predict_proba(x)
    assert pred.shape == y.shape and pred.dtype == y.dtype
    assert p.shape == y.shape and ((p >= 0) & (p <= 1)).all()
    np.testing.assert_array_equal(pred, (clf.decision_function(x) > 0).astype(y.dtype))
    assert (pred == y).mean() > 0.8


def test_one_class_is_rejected_naming_classes():
    x, _ = _blobs()
    with pytest.raises(ValueError, match="class"):
        FastNNClassifier(**FAST).fit(x, np.zeros(len(x)))


def test_regressor_single_and_multi_output():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    y = x @ rng.standard_normal((5, 2))
    reg = FastNNRegressor(**FAST, random_state=0).fit(x, y)
    assert reg.predict(x).shape == (200, 2) and reg.n_outputs_ == 2
    assert reg.score(x, y) > 0.9
    reg1 = FastNNRegressor(**FAST, random_state=0).fit(x, y[:, 0])
    assert reg1.predict(x).shape == (200,)
    assert reg1.predict(x).dtype == np.float64


def test_sample_weight_reaches_the_loss():
    x, y = _blobs(n_classes=2)
    # class 1 carries no weight: the fitted model sees only class-0 targets
    clf = FastNNClassifier(**FAST, random_state=0).fit(x, y, sample_weight=(y == 0) * 1.0)
    assert (clf.predict(x) == 0).all()
    unweighted = FastNNClassifier(**FAST, random_state=0).fit(x, y)
    assert (unweighted.predict(x) == 1).any()


def test_fit_attributes_and_early_stopping():
    x, y = _blobs(n=300)
    clf = FastNNClassifier(**{**FAST, "epochs": 200}, validation_fraction=0.2,
                           early_stopping=True, patience=3, random_state=0).fit(x, y)
    assert set(clf.history_) == {"loss", "val_loss"}
    assert clf.loss_curve_ == clf.history_["loss"]
    assert clf.n_iter_ == len(clf.loss_curve_) < 200
    full = FastNNClassifier(**FAST, random_state=0).fit(x, y)
    assert full.n_iter_ == 30 and set(full.history_) == {"loss"}


@pytest.mark.parametrize("params, error, name", [
    (dict(hidden_layer_sizes=(0,)), ValueError, "hidden_layer_sizes"),
    (dict(hidden_layer_sizes="x"), ValueError, "hidden_layer_sizes"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate"),
    (dict(alpha=-0.1), ValueError, "alpha"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(validation_fraction=1.0), ValueError, "validation_fraction"),
    (dict(early_stopping="yes"), TypeError, "early_stopping"),
    (dict(optimizer=None), TypeError, "optimizer"),
    (dict(optimizer="nope"), ValueError, "optimizer"),
    (dict(activation="nope"), ValueError, "activation"),
    (dict(random_state="x"), ValueError, "random_state|RandomState"),
])
def test_bad_parameters_raise_at_fit_naming_them(params, error, name):
    x, y = _blobs()
    clf = FastNNClassifier(**{**FAST, **params})  # __init__ only stores
    with pytest.raises(error, match=name):
        clf.fit(x, y)
    with pytest.raises(NotFittedError):
        clf.predict(x)


def test_feature_names_in_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    x, y = _blobs()
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    clf = FastNNClassifier(**FAST, random_state=0).fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)


# --------------------------------------------------------------------------- seeding
def _weights(est):
    return est.model_.get_weights()


def _assert_same_weights(a, b):
    for u, v in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("cls", [FastNNClassifier, FastNNRegressor])
def test_random_state_ignores_global_seed_and_earlier_fits(cls):
    x, y = _blobs()
    fastnn.set_random_seed(1)
    first = cls(**FAST, validation_fraction=0.1, random_state=3).fit(x, y)
    fastnn.set_random_seed(2)
    cls(**FAST).fit(x, y)  # an unseeded fit draws from the global stream in between
    second = cls(**FAST, validation_fraction=0.1, random_state=3).fit(x, y)
    _assert_same_weights(first, second)
    other = cls(**FAST, validation_fraction=0.1, random_state=4).fit(x, y)
    assert not np.array_equal(_weights(first)[0], _weights(other)[0])


def test_random_state_none_follows_the_global_seed():
    x, y = _blobs()
    fastnn.set_random_seed(5)
    a = FastNNClassifier(**FAST).fit(x, y)
    fastnn.set_random_seed(5)
    _assert_same_weights(a, FastNNClassifier(**FAST).fit(x, y))


def test_random_state_instance_gives_each_fit_a_new_seed():
    x, y = _blobs()
    rs = np.random.RandomState(0)
    clf = FastNNClassifier(**FAST, random_state=rs)
    a = _weights(clf.fit(x, y))[0]
    b = _weights(clf.fit(x, y))[0]
    assert not np.array_equal(a, b)


def test_concurrent_thread_fits_with_random_state_are_identical():
    x, y = _blobs(n=400)
    reference = FastNNClassifier(**FAST, random_state=7).fit(x, y)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        fits = list(pool.map(lambda _: FastNNClassifier(**FAST, random_state=7).fit(x, y),
                             range(4)))
    for est in fits:
        _assert_same_weights(reference, est)


def test_pickle_round_trip():
    x, y = _blobs()
    clf = FastNNClassifier(**FAST, random_state=0).fit(x, np.array(["a", "b", "c"])[y])
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_array_equal(back.predict(x), clf.predict(x))
    assert back.get_params() == clf.get_params()
    unfitted = pickle.loads(pickle.dumps(FastNNRegressor(epochs=3)))
    assert unfitted.epochs == 3


# --------------------------------------------------------------------------- joblib
@pytest.fixture
def one_thread():
    """Serial fits here and parallel fits in joblib workers, both on one thread: the same
    seed and thread count give bit-identical fits, so their scores compare exactly."""
    threads = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    with parallel_config(backend="loky", inner_max_num_threads=1):
        yield
    fastnn.set_num_threads(threads)


def test_pipeline_and_cross_val_score_with_two_jobs(one_thread):
    x, y = _blobs()
    pipe = make_pipeline(StandardScaler(), FastNNClassifier(**FAST, random_state=0))
    scores = cross_val_score(pipe, x, y, cv=3, n_jobs=2)
    assert scores.shape == (3,) and scores.mean() > 0.8
    serial = cross_val_score(pipe, x, y, cv=3, n_jobs=1)
    np.testing.assert_array_equal(scores, serial)


def _big(dtype):
    """Over joblib's max_nbytes ("1M"), so that the workers get read-only memmaps."""
    x, y = make_classification(n_samples=6000, n_features=60, n_informative=10,
                               random_state=0)
    x = x.astype(dtype)
    assert x.nbytes > 2**20
    return x, y


def _fit_shared(x, y):
    """Run in a joblib worker: `x` arrives as a read-only memmap of the parent's array."""
    assert isinstance(x, np.memmap) and not x.flags.writeable
    return FastNNClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=0).fit(x, y).score(x, y)


@pytest.mark.parametrize("dtype", [
    np.float64,  # converted to float32 by the model: a writable copy
    # float32 goes to the engine without a copy (it fails with exactly the engine's error)
    pytest.param(np.float32, marks=pytest.mark.xfail(
        READONLY_BUG, reason=READONLY_REASON, raises=ValueError, strict=True)),
])
def test_fit_in_joblib_workers_on_shared_read_only_memmaps(dtype):
    # searches and cross-validation index rows (a writable copy) before fitting; a plain
    # Parallel over fits (ensembles, bagging by hand) hands the memmap itself to fit
    x, y = _big(dtype)
    scores = Parallel(n_jobs=2)(delayed(_fit_shared)(x, y) for _ in range(2))
    assert scores[0] == scores[1] > 0.7


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grid_search_two_jobs_on_memmapped_data(dtype):
    x, y = _big(dtype)
    search = GridSearchCV(FastNNClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=0),
                          {"learning_rate": [1e-3, 1e-2]}, cv=2, n_jobs=2,
                          error_score="raise")
    search.fit(x, y)
    assert search.best_params_["learning_rate"] in (1e-3, 1e-2)
    assert search.best_score_ > 0.7


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_randomized_search_two_jobs_matches_serial(dtype, one_thread):
    from scipy.stats import loguniform

    x, y = _big(dtype)
    est = FastNNRegressor(hidden_layer_sizes=(8,), epochs=3, random_state=0)
    space = {"learning_rate": loguniform(1e-4, 1e-1), "alpha": [0.0, 1e-4]}
    runs = [RandomizedSearchCV(est, space, n_iter=3, cv=2, n_jobs=jobs, random_state=0,
                               error_score="raise").fit(x, y.astype(dtype))
            for jobs in (2, 1)]
    assert runs[0].best_params_ == runs[1].best_params_
    np.testing.assert_array_equal(runs[0].cv_results_["mean_test_score"],
                                  runs[1].cv_results_["mean_test_score"])


def _threads_in_worker():
    return fastnn.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def test_workers_use_the_threads_joblib_allots():
    # loky sets OMP_NUM_THREADS (cores // n_jobs unless the parent set it) in each
    # worker; fastnn picks it up, so concurrent fits do not oversubscribe the cores
    for threads, env in Parallel(n_jobs=2)(delayed(_threads_in_worker)() for _ in range(2)):
        assert env is not None and threads == int(env)
    with parallel_config(backend="loky", inner_max_num_threads=1):
        results = Parallel(n_jobs=2)(delayed(_threads_in_worker)() for _ in range(2))
    assert results == [(1, "1"), (1, "1")]
