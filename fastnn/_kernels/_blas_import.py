"""scipy's BLAS gemm for the compiled kernels, looked up at first use.

The kernels do not ``cimport`` scipy.linalg.cython_blas: that would import
scipy.linalg (~0.3 s) with every kernel module, i.e. with ``import fastnn``.
Instead the first kernel call that needs BLAS (an Engine, dense_forward,
dense_backward, matmul, or set_num_threads) asks this module for the two
function-pointer capsules that cython_blas publishes in ``__pyx_capi__`` and
stores the pointers (csrc/fnn_blas.h).  scipy.linalg is imported normally at
that moment, so ``import fastnn`` leaves sys.modules as scipy would have it.
"""

# The C signature Cython writes into each capsule's name; checked so that a scipy whose
# gemm had a different ABI fails loudly here instead of corrupting memory in a kernel.
_ARGS = "(char *, char *, int *, int *, int *, {t} *, {t} *, int *, {t} *, int *, {t} *, " \
        "{t} *, int *)"


def gemm_capsules():
    """(sgemm, dgemm) PyCapsules from scipy.linalg.cython_blas, signatures checked."""
    from scipy.linalg import cython_blas

    capi = cython_blas.__pyx_capi__
    capsules = capi["sgemm"], capi["dgemm"]
    for capsule, ctype in zip(capsules, ("float", "double"), strict=True):
        name = _capsule_name(capsule)
        # scipy names its scalar types by typedef (__pyx_t_5scipy_6linalg_11cython_blas_s);
        # the argument pattern with those replaced must be the Fortran gemm one
        plain = name.replace("__pyx_t_5scipy_6linalg_11cython_blas_s", "float") \
                    .replace("__pyx_t_5scipy_6linalg_11cython_blas_d", "double")
        if not plain.replace(" ", "").endswith(_ARGS.format(t=ctype).replace(" ", "")):
            raise ImportError(f"scipy.linalg.cython_blas gemm has an unexpected signature: "
                              f"{name!r}")
    return capsules


def _capsule_name(capsule):
    import ctypes

    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return get_name(capsule).decode()


def load_blas():
    """Make BLAS ready in every kernel module (their pointers are per module)."""
    from fastnn._kernels import dense, engine

    dense._load_blas()
    engine._load_blas()
