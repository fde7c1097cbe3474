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
    """(sgemm, dgemm) PyCapsules from scipy.linalg.cython_blas, signatures checked.

    Also hands the BLAS's thread-count functions to the pool module (once), so that
    fastnn's large GEMMs can run BLAS single-threaded (csrc/fnn_pool.h)."""
    from scipy.linalg import cython_blas

    _hook_blas_threads()

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


_hooked = False


def _hook_blas_threads():
    global _hooked
    if _hooked:
        return
    import fastnn._kernels._pool as _pool

    # without a pool (no pthreads) BLAS's own threads are the only parallelism: keep them
    if _pool.pool_available():
        _pool.set_blas_thread_functions(*blas_thread_functions())
    _hooked = True


def blas_thread_functions():
    """Addresses of ``openblas_set_num_threads`` and ``openblas_get_num_threads`` of the
    OpenBLAS that scipy.linalg.cython_blas calls, or (0, 0) when that cannot be told.

    scipy's wheels bundle their own OpenBLAS (symbols prefixed ``scipy_``) beside the one
    NumPy bundles; the library inside scipy's installation is the one.  Otherwise (a
    system OpenBLAS) the single OpenBLAS this process has loaded is.  Only pthreads and
    sequential builds qualify: an OpenMP OpenBLAS takes its thread count from the calling
    thread's OpenMP settings, which a setter called on one thread does not reach.  With
    (0, 0) fastnn leaves BLAS's threads alone and never splits a GEMM itself.  (Not
    threadpoolctl: importing it writes KMP_DUPLICATE_LIB_OK into os.environ.)
    """
    paths = _openblas_candidates()
    if len(paths) != 1:
        return 0, 0
    return _thread_functions(paths[0])


def _openblas_candidates():
    import glob
    import os

    import scipy

    root = os.path.dirname(os.path.dirname(os.path.realpath(scipy.__file__)))
    bundled: set[str] = set()
    for folder in ("scipy.libs", os.path.join("scipy", ".libs"),
                   os.path.join("scipy", ".dylibs")):
        pattern = os.path.join(root, folder, "*openblas*")
        bundled.update(os.path.realpath(p) for p in glob.glob(pattern))
    if bundled:
        return sorted(bundled)
    try:  # Linux: the OpenBLAS libraries this process has mapped
        with open("/proc/self/maps") as maps:
            loaded = {line.split(None, 5)[-1].strip() for line in maps if "openblas" in line}
    except OSError:
        return []
    return sorted(p for p in loaded if os.path.isfile(p))


def _thread_functions(path):
    import ctypes
    import os

    try:  # only a library already loaded (by scipy); never load one
        dynlib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0)
                             | getattr(os, "RTLD_LOCAL", 0))
    except OSError:
        return 0, 0
    for prefix in ("scipy_", ""):
        for suffix in ("", "64_", "_64"):
            setter = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
            getter = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
            parallel = getattr(dynlib, f"{prefix}openblas_get_parallel{suffix}", None)
            if setter is None or getter is None or parallel is None:
                continue
            if parallel() not in (0, 1):  # 2: OpenMP
                return 0, 0
            return (ctypes.cast(setter, ctypes.c_void_p).value or 0,
                    ctypes.cast(getter, ctypes.c_void_p).value or 0)
    return 0, 0
