"""Random hyper-parameter search for FastNNClassifier on digits, locally or on Dask.

The course's advice: sample hyper-parameters at random (the learning rate on a log
scale), don't walk a grid.  A RandomizedSearchCV over learning rate, hidden sizes,
L2 factor (alpha) and batch size, scored by 3-fold cross-validation, then the best
model is refitted and scored on a held-out test set.

    python examples/tune_digits.py                    # this machine, joblib's loky, all cores
    python examples/tune_digits.py --n-jobs 2
    python examples/tune_digits.py --dask-local 2     # a distributed.LocalCluster, 2 workers
    python examples/tune_digits.py --scheduler tcp://10.0.0.5:8786   # an existing cluster

On Dask the fits run through joblib's "dask" backend: every worker needs fastnn
installed.  Prints the best parameters, the best CV score, the test accuracy, the
search time and the fits per second.
"""
import argparse
import contextlib
import time

import joblib
import numpy as np
from scipy.stats import loguniform
from sklearn.datasets import load_digits
from sklearn.model_selection import RandomizedSearchCV, train_test_split

from fastnn.sklearn import FastNNClassifier

SPACE = {
    "learning_rate": loguniform(1e-4, 3e-2),
    "hidden_layer_sizes": [(32,), (64,), (128,), (64, 32), (128, 64)],
    "alpha": [0.0, 1e-5, 1e-4, 1e-3],
    "batch_size": [16, 32, 64, 128],
}


def load_data(seed=0):
    """Digits scaled to [0, 1] in float32, split 80/20 (stratified)."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)


def make_search(n_iter=30, cv=3, epochs=40, n_jobs=None, random_state=0):
    """The RandomizedSearchCV; `random_state` fixes both the sampled candidates and
    every candidate's own fit, so the result does not depend on where it runs."""
    estimator = FastNNClassifier(epochs=epochs, random_state=random_state)
    return RandomizedSearchCV(estimator, SPACE, n_iter=n_iter, cv=cv, n_jobs=n_jobs,
                              random_state=random_state)


def run_search(search, X, y, backend=None):
    """Fit `search` under the joblib `backend` ("dask", "loky", None for the default).

    Returns (search, seconds, fits_per_second), where the time and the rate count the
    cross-validation fits only, not the final refit.
    """
    config = joblib.parallel_config(backend=backend) if backend else contextlib.nullcontext()
    start = time.perf_counter()
    with config:
        search.fit(X, y)
    seconds = time.perf_counter() - start - search.refit_time_
    n_fits = len(search.cv_results_["params"]) * search.n_splits_
    return search, seconds, n_fits / seconds


@contextlib.contextmanager
def dask_client(scheduler=None, local_workers=0):
    """A distributed.Client on `scheduler`, or on a LocalCluster of `local_workers`
    single-threaded worker processes."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def report(search, seconds, rate, X_test, y_test, where):
    n_fits = len(search.cv_results_["params"]) * search.n_splits_
    print(f"backend: {where}")
    best = {k: float(v) if isinstance(v, np.floating) else v
            for k, v in search.best_params_.items()}
    print(f"best params: {best}")
    print(f"best CV accuracy: {search.best_score_:.4f}")
    print(f"test accuracy: {search.score(X_test, y_test):.4f}")
    print(f"search time: {seconds:.2f} s for {n_fits} fits ({rate:.2f} fits/s)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-iter", type=int, default=30, help="candidates sampled")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--n-jobs", type=int, default=-1, help="local parallel fits")
    parser.add_argument("--seed", type=int, default=0)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler's address")
    where.add_argument("--dask-local", type=int, nargs="?", const=2, default=0,
                       metavar="N", help="start a LocalCluster of N workers (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="a small search (4 candidates, 2 folds, 10 epochs) for tests")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_iter, args.cv, args.epochs = 4, 2, 10

    X_train, X_test, y_train, y_test = load_data(args.seed)
    if args.scheduler or args.dask_local:
        with dask_client(args.scheduler, args.dask_local) as client:
            n_workers = len(client.scheduler_info()["workers"])
            search = make_search(args.n_iter, args.cv, args.epochs, -1, args.seed)
            result = run_search(search, X_train, y_train, backend="dask")
            where = f"dask ({client.scheduler.address}, {n_workers} workers)"
    else:
        search = make_search(args.n_iter, args.cv, args.epochs, args.n_jobs, args.seed)
        result = run_search(search, X_train, y_train)
        where = f"local (n_jobs={args.n_jobs})"
    report(*result, X_test, y_test, where)
    return result[0]


if __name__ == "__main__":
    main()
