"""Which BLAS the kernels call (fastnn/_kernels/_blas_import.py): the scipy-openblas32
wheel's OpenBLAS when installed, else scipy's; FASTNN_BLAS chooses explicitly."""
import importlib.util
import os

import pytest

HAS_WHEEL = importlib.util.find_spec("scipy_openblas32") is not None

# a first GEMM, then the BLAS it went to, whether fastnn can switch that BLAS's threads,
# and a product checked against NumPy (both BLAS paths must give the right numbers)
_PROBE = (
    "import sys, numpy as np\n"
    "from fastnn._kernels import _blas_import, _pool, load_blas, matmul, set_num_threads\n"
    "load_blas()\n"
    "set_num_threads(2)\n"
    "rng = np.random.default_rng(0)\n"
    "a = rng.standard_normal((300, 200), dtype=np.float32)\n"
    "b = rng.standard_normal((200, 400), dtype=np.float32)\n"
    "c = np.empty((300, 400), np.float32)\n"
    "matmul(a, b, False, False, c, 'blas')\n"
    "ok = np.allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)\n"
    "print(_blas_import.blas_library(), _pool.blas_thread_control(), ok,\n"
    "      'scipy.linalg' in sys.modules, sep='|')\n"
)


def _probe(run_python, blas):
    env = dict(os.environ)
    env.pop("FASTNN_BLAS", None)
    if blas is not None:
        env["FASTNN_BLAS"] = blas
    return run_python(["-c", _PROBE], env=env)


def test_scipy_blas_on_request(run_python):
    out = _probe(run_python, "scipy")
    assert out.returncode == 0, out.stderr
    name, control, ok, linalg = out.stdout.strip().split("|")
    assert name == "scipy.linalg.cython_blas"
    assert ok == "True"
    assert linalg == "True"  # scipy.linalg is imported for its BLAS, as before


def test_default_is_the_wheel_when_installed(run_python):
    out = _probe(run_python, None)
    assert out.returncode == 0, out.stderr
    name, control, ok, linalg = out.stdout.strip().split("|")
    assert ok == "True"
    if HAS_WHEEL:
        assert name.startswith("scipy-openblas32 ")
        assert control == "True"  # its threads are fastnn's to switch off
        assert linalg == "False"  # and scipy.linalg is not needed for it
    else:
        assert name == "scipy.linalg.cython_blas"


@pytest.mark.skipif(HAS_WHEEL, reason="scipy-openblas32 is installed")
def test_wheel_on_request_without_it_fails_clearly(run_python):
    out = _probe(run_python, "openblas32")
    assert out.returncode != 0
    assert "FASTNN_BLAS=openblas32" in out.stderr


def test_unknown_choice_fails_clearly(run_python):
    out = _probe(run_python, "mkl")
    assert out.returncode != 0
    assert "FASTNN_BLAS must be auto, scipy or openblas32" in out.stderr
