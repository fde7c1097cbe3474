"""Shared cases for the kernel, gradient and course-example tests.

The constants live here and reach the tests as fixtures: ``dtype`` and ``shape``
are parametrized fixtures (a test that asks for them runs over every value), and
``tol`` is the tolerance for the current ``dtype``.  Test modules do not import
this file (two conftest.py files share the module name "conftest" in pytest's
prepend import mode, so ``from conftest import ...`` is ambiguous).  A test that
wants a subset, e.g. float64 only, parametrizes ``dtype`` itself, which overrides
the fixture -- as the keras_parity group does.

pytest runs with ``filterwarnings = ["error"]`` (pyproject.toml), so a NumPy
RuntimeWarning in a reference twin (overflow in exp, division by zero) fails the
test that caused it.  Underflow is ignored by NumPy's default error state.
"""
import os
import pathlib
import subprocess
import sys
import zlib

import numpy as np
import pytest

DTYPES = (np.float32, np.float64)

# Compiled vs reference, element by element.
#
# float64: both twins use libm's exp, the same BLAS dgemm kernel family and the same
# operation order, so they agree to a few ulp; 1e-12 leaves room for summation-order
# differences only.
#
# float32: the compiled kernels take exp from a branch-free polynomial
# (csrc/fnn_math.h, fnn_exp_nonpos_f32) while the reference uses NumPy's expf.  Both
# are within ~3 ulp of the true value (measured on 2e6 points in [-87.3, 0]: compiled
# 2.3 ulp, NumPy 3.2 ulp of sigmoid), so they differ by < 3e-7 relative and the
# standard 1e-5 / 1e-6 needs no loosening for any elementwise output.  Below
# -87.34 the polynomial returns exactly 0 where NumPy returns a denormal (< 1.2e-38):
# covered by atol.
#
# Outputs that are sums over a reduction axis (dW = x^T dz, db, dx = dz W^T, loss
# sums) inherit those few-ulp differences of their terms, so an entry whose terms
# cancel can differ by more than rtol times its own size.  Those are compared with
# `assert_close_sum`, whose bound is rtol times the sum of the terms' magnitudes:
# the standard error bound of a floating-point dot product.
TOL = {
    np.float32: dict(rtol=1e-5, atol=1e-6),
    np.float64: dict(rtol=1e-12, atol=1e-12),
}

# (n, k, m): batch rows, input width, output width.  1-row batches, widths of 1,
# odd and prime sizes, and blocks larger than one GEMM cache block (257 rows).
SHAPES = [(1, 1, 1), (1, 7, 3), (2, 64, 10), (13, 31, 97), (128, 64, 25), (257, 33, 5)]


@pytest.fixture(params=DTYPES, ids=[np.dtype(d).name for d in DTYPES])
def dtype(request):
    """Every floating dtype the kernels are compiled for."""
    return request.param


@pytest.fixture(params=SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def shape(request):
    """(n, k, m) from SHAPES."""
    return request.param


@pytest.fixture
def tol(dtype):
    """assert_allclose keywords for the current dtype."""
    return TOL[np.dtype(dtype).type]


@pytest.fixture
def rng(request):
    """A Generator seeded from the test's id: reproducible, and different per test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def assert_close_sum(got, want, magnitude, rtol, atol):
    """|got - want| <= atol + rtol * magnitude, elementwise.

    `magnitude` is the sum of the absolute values of the terms that were added to
    form each entry (e.g. |x|^T |dz| for dW = x^T dz).
    """
    got, want, magnitude = np.asarray(got), np.asarray(want), np.asarray(magnitude)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.all(np.isfinite(got)), "non-finite entries in the compiled result"
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = atol + rtol * magnitude.astype(np.float64)
    bad = err > bound
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} entries beyond the summation bound; worst excess "
        f"{np.max(err - bound):.3e} at {np.unravel_index(np.argmax(err - bound), err.shape)}")


@pytest.fixture
def close_sum():
    """The `assert_close_sum` helper, for modules that cannot import conftest."""
    return assert_close_sum


@pytest.fixture
def run_python():
    """Run a child interpreter that imports this same fastnn.

    Its working directory and PYTHONPATH start at the folder that holds the imported
    fastnn package, so a child started from a source checkout cannot pick up the
    uncompiled source tree instead of the installed package (``python -c`` puts the
    working directory first on sys.path).  Returns subprocess.CompletedProcess.
    """
    import fastnn

    root = str(pathlib.Path(fastnn.__file__).resolve().parent.parent)

    def run(args, env=None, **kwargs):
        env = dict(os.environ if env is None else env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run([sys.executable, *args], cwd=root, env=env, **kwargs)

    return run
