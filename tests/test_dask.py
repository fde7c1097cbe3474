"""The tuning example on a Dask cluster: a LocalCluster of two worker processes, reached
through joblib's "dask" backend, finds what the same search finds locally."""
import importlib.util
import pathlib
import re

import numpy as np
import pytest

import fastnn

distributed = pytest.importorskip("distributed")

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "tune_digits.py"


def _example():
    spec = importlib.util.spec_from_file_location("tune_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _worker_threads():
    return fastnn.get_num_threads()


def test_dask_local_cluster_search_matches_the_local_search():
    example = _example()
    X, _, y, _ = example.load_data()
    small = dict(n_iter=4, cv=2, epochs=5, random_state=0)
    # distributed starts its workers with OMP_NUM_THREADS=1; the local fits run one
    # thread too, so that every fit is bit-identical to its remote twin
    threads = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        local = example.run_search(example.make_search(n_jobs=1, **small), X, y)[0]
    finally:
        fastnn.set_num_threads(threads)

    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = example.run_search(example.make_search(n_jobs=-1, **small), X, y,
                                    backend="dask")[0]
        worker_threads = client.run(_worker_threads)

    assert len(worker_threads) == 2 and set(worker_threads.values()) == {1}
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert remote.best_score_ > 0.8


def test_tune_digits_runs_on_a_dask_local_cluster(run_python):
    out = run_python([str(EXAMPLE), "--quick", "--dask-local", "2"], timeout=300,
                     check=True).stdout
    assert re.search(r"^backend: dask \(tcp://[0-9.:]+, 2 workers\)$", out, re.MULTILINE), out
    assert re.search(r"^best params: \{'alpha': .*\}$", out, re.MULTILINE), out
    assert re.search(r"^search time: [0-9.]+ s for 8 fits \([0-9.]+ fits/s\)$", out,
                     re.MULTILINE), out
