"""Package-level promises: the public names, a light import, seeds and threads."""
import re

import numpy as np

import fastnn


def test_public_imports_of_the_api_contract():
    from fastnn import Sequential, activations, load_model  # noqa: F401
    from fastnn.callbacks import Callback, EarlyStopping, TerminateOnNaN  # noqa: F401
    from fastnn.layers import Dense, Dropout, Normalization  # noqa: F401
    from fastnn.losses import (  # noqa: F401
        BinaryCrossentropy,
        CategoricalCrossentropy,
        MeanSquaredError,
        SparseCategoricalCrossentropy,
    )
    from fastnn.optimizers import SGD, Adam  # noqa: F401
    from fastnn.regularizers import L2  # noqa: F401
    for name in ("linear", "relu", "sigmoid", "tanh", "leaky_relu", "swish", "softmax"):
        assert callable(getattr(activations, name))
    assert re.fullmatch(r"\d+\.\d+\.\d+", fastnn.__version__)


def test_import_stays_light(run_python):
    # scikit-learn and the bulk of scipy.linalg stay out of `import fastnn`
    code = ("import sys, fastnn; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sklearn', 'threadpoolctl') or m == 'scipy.linalg'))")
    out = run_python(["-c", code], check=True).stdout.strip()
    assert out == "[]"


def test_set_and_get_num_threads_cover_openmp_and_blas():
    from threadpoolctl import threadpool_info

    from fastnn._kernels import get_num_threads as omp_threads
    from fastnn._kernels import openmp_available
    old = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        assert omp_threads() == 1
        assert all(lib["num_threads"] == 1 for lib in threadpool_info()
                   if lib["user_api"] == "blas")
        fastnn.set_num_threads(2)
        assert fastnn.get_num_threads() == 2
        assert omp_threads() == (2 if openmp_available() else 1)
    finally:
        fastnn.set_num_threads(old)


def test_default_thread_count_is_the_usable_cores_or_omp_num_threads(run_python):
    import os
    code = ("import os, fastnn; from fastnn._kernels import get_num_threads as omp; "
            "print(fastnn.get_num_threads(), omp(), len(os.sched_getaffinity(0)))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    reported, used, cores = run_python(["-c", code], env=env, check=True).stdout.split()
    assert reported == cores
    assert used == (cores if fastnn._kernels.openmp_available() else "1")
    env["OMP_NUM_THREADS"] = "1"
    reported, used, _ = run_python(["-c", code], env=env, check=True).stdout.split()
    assert reported == used == "1"


def test_set_random_seed_reproduces_initial_weights():
    from fastnn import Sequential
    from fastnn.layers import Dense
    fastnn.set_random_seed(11)
    a = Sequential([Dense(5, input_dim=3)]).get_weights()[0]
    fastnn.set_random_seed(11)
    b = Sequential([Dense(5, input_dim=3)]).get_weights()[0]
    fastnn.set_random_seed(12)
    c = Sequential([Dense(5, input_dim=3)]).get_weights()[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
