"""Load scipy.linalg.cython_blas without importing all of scipy.linalg.

The compiled kernels take BLAS from scipy.linalg.cython_blas.  Importing it the
normal way runs scipy/linalg/__init__.py first, which costs ~280 ms here (most
of ``import fastnn``); the extension module itself loads in ~15 ms.  So it is
loaded straight from its file and registered under its full name before the
kernels import it.  scipy.linalg, imported later by the user, finds the same
module in sys.modules.  Any surprise falls back to the normal import.
"""
import importlib.machinery
import importlib.util
import os
import sys

_NAME = "scipy.linalg.cython_blas"


def preload():
    if _NAME in sys.modules or "scipy.linalg" in sys.modules:
        return
    try:
        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cython_blas" + suffix)
            if os.path.exists(path):
                spec = importlib.util.spec_from_file_location(_NAME, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[_NAME] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[_NAME]
                    raise
                return
    except Exception:  # any layout we do not expect: let the normal import happen
        return
