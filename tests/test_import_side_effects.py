"""`import fastnn` changes nothing outside fastnn (issue 8, item 10).

Each check runs in a child interpreter, so that what this pytest process already
imported cannot hide a module or an environment variable that fastnn adds.
"""
import json
import os
import sys

import pytest

# What the child reports: the environment and sys.modules right after `import numpy`
# (fastnn's own dependency, the baseline), and again after `import fastnn`.
PROBE = r"""
import json, os, sys, time
import numpy
env0, mods0 = dict(os.environ), set(sys.modules)
t0 = time.perf_counter()
import fastnn
seconds = time.perf_counter() - t0
env1, mods1 = dict(os.environ), set(sys.modules)
after_fit = None
if "--fit" in sys.argv:
    from fastnn.layers import Dense
    m = fastnn.Sequential([Dense(300, activation="relu"), Dense(1000)])
    m.compile(optimizer="adam", loss="mse")
    x = numpy.ones((64, 5), numpy.float32)
    m.fit(x, numpy.zeros((64, 1000), numpy.float32), epochs=1, verbose=0)
    after_fit = dict(os.environ)
print(json.dumps({"env0": env0, "env1": env1, "added": sorted(mods1 - mods0),
                  "seconds": seconds, "after_fit": after_fit}))
"""

# Modules that come with loading any Cython extension module: its shared runtime
# module and the per-Cython-version module that holds the shared function types.
CYTHON_RUNTIME = ("cython_runtime", "_cython_", "_cyutility")


def probe(run_python, *args):
    # without the OpenMP variables, which this pytest process may have had set for it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    out = run_python(["-c", PROBE, *args], env=env, check=True).stdout
    return json.loads(out.splitlines()[-1])


def foreign(added):
    """Modules added by `import fastnn` that are neither fastnn's own nor numpy's nor the
    standard library's nor the Cython runtime's."""
    stdlib = sys.stdlib_module_names
    return [m for m in added
            if m.split(".")[0] not in ("fastnn", "numpy") and m.split(".")[0] not in stdlib
            and not m.startswith(CYTHON_RUNTIME)]


def test_import_leaves_the_environment_unchanged(run_python):
    report = probe(run_python)
    assert report["env1"] == report["env0"]


def test_fit_leaves_the_environment_unchanged(run_python):
    # the 300 000-parameter model takes the parallel optimizer path when OpenMP is there
    report = probe(run_python, "--fit")
    assert report["after_fit"] == report["env0"]


def test_import_adds_only_fastnn_numpy_and_standard_library_modules(run_python):
    report = probe(run_python)
    print(f"import fastnn: {report['seconds'] * 1e3:.0f} ms, {len(report['added'])} modules")
    assert foreign(report["added"]) == []
    # in particular no half-imported package: scipy.linalg.cython_blas without scipy.linalg
    assert not any(m.startswith("scipy") for m in report["added"])


def test_every_added_module_has_its_parent_package(run_python):
    report = probe(run_python)
    added = set(report["added"])
    orphans = [m for m in added if "." in m and m.rsplit(".", 1)[0] not in added
               and not m.rsplit(".", 1)[0].startswith(("numpy", "importlib", "fastnn"))]
    assert orphans == []


@pytest.mark.parametrize("first", ["scipy.linalg", "fastnn"])
def test_scipy_linalg_and_fastnn_in_either_order(run_python, first):
    second = "fastnn" if first == "scipy.linalg" else "scipy.linalg"
    code = (f"import {first}, {second}, numpy, scipy.linalg\n"
            "import scipy.linalg.cython_blas as cb\n"
            "assert scipy.linalg.cython_blas is cb\n"
            "from fastnn._kernels import matmul\n"
            "a = numpy.arange(6.0).reshape(2, 3); c = numpy.empty((2, 2))\n"
            "matmul(a, a, False, True, c, 'blas')\n"
            "assert (c == a @ a.T).all(), c\n")
    run_python(["-c", code], check=True)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts Linux threads")
def test_fit_runs_no_openmp_region(run_python):
    # The training loop must not leave OpenMP workers spinning on the cores OpenBLAS needs
    # (the reason fastnn once wrote OMP_WAIT_POLICY): it starts no OpenMP thread at all,
    # even for a model above the parallel-update size.  The only threads it may start are
    # fastnn's own pool workers (named fastnn-pool), which sleep between GEMMs.
    code = ("import os, numpy, fastnn\n"
            "from fastnn.layers import Dense\n"
            "fastnn.set_num_threads(2)  # loads BLAS, whose threads start now\n"
            "m = fastnn.Sequential([Dense(300, activation='relu'), Dense(1000)])\n"
            "m.compile(optimizer='adam', loss='mse')\n"
            "x, y = numpy.ones((64, 5)), numpy.zeros((64, 1000))\n"
            "before = set(os.listdir('/proc/self/task'))\n"
            "m.fit(x, y, epochs=2, verbose=0)\n"
            "assert m.count_params() > fastnn._kernels.PARALLEL_MIN\n"
            "new = set(os.listdir('/proc/self/task')) - before\n"
            "names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in new]\n"
            "print(len(new), len([n for n in names if n != 'fastnn-pool']))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    started, foreign = run_python(["-c", code], env=env, check=True).stdout.split()
    assert foreign == "0"
    assert int(started) <= 1  # at most threads - 1 workers
