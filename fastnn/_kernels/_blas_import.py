"""The BLAS gemm for the compiled kernels, looked up at first use.

Which BLAS: the OpenBLAS of the ``scipy-openblas32`` wheel when it is installed (a
dependency of fastnn where that wheel exists), else scipy's (``scipy.linalg.cython_blas``).
The wheel's OpenBLAS is newer than the one scipy bundles and measured faster at the
products of wide nets (0.3.34 against scipy 1.17's 0.3.30: 3-4% over the GEMMs of a
784-1024-1024-10 step, up to 25% on dz W^T); both are called through the same
Fortran-ABI function pointers.  The environment variable ``FASTNN_BLAS`` chooses
explicitly: ``scipy`` for scipy's, ``openblas32`` for the wheel's (an error when it
cannot be used).

The kernels do not ``cimport`` scipy.linalg.cython_blas: that would import
scipy.linalg (~0.3 s) with every kernel module, i.e. with ``import fastnn``.
Instead the first kernel call that needs BLAS (an Engine, dense_forward,
dense_backward, matmul, or set_num_threads) asks this module for the two
function addresses and stores them (csrc/fnn_blas.h).  With scipy's BLAS,
scipy.linalg is imported normally at that moment, so ``import fastnn`` leaves
sys.modules as scipy would have it.
"""
import os

# The C signature Cython writes into each capsule's name; checked so that a scipy whose
# gemm had a different ABI fails loudly here instead of corrupting memory in a kernel.
_ARGS = "(char *, char *, int *, int *, int *, {t} *, {t} *, int *, {t} *, int *, {t} *, " \
        "{t} *, int *)"


def gemm_pointers():
    """(sgemm, dgemm) addresses of the chosen BLAS (Fortran ABI, 32-bit integers).

    Also hands that BLAS's thread-count functions to the pool module (once), so that
    fastnn's large GEMMs can run BLAS single-threaded (csrc/fnn_pool.h)."""
    choice = _choose()
    _hook_blas_threads()
    return choice["sgemm"], choice["dgemm"]


def blas_library():
    """Which BLAS the kernels call: ``"scipy-openblas32 <version>"`` or
    ``"scipy.linalg.cython_blas"``."""
    return _choose()["name"]


_choice: dict | None = None


def _choose():
    global _choice
    if _choice is None:
        want = os.environ.get("FASTNN_BLAS", "auto")
        if want not in ("auto", "scipy", "openblas32"):
            raise ImportError(f"FASTNN_BLAS must be auto, scipy or openblas32, not {want!r}")
        choice = None if want == "scipy" else _openblas_wheel(strict=want == "openblas32")
        _choice = choice if choice is not None else _scipy_blas()
    return _choice


def _openblas_wheel(strict):
    """The scipy-openblas32 wheel's OpenBLAS, or None when it cannot be used (an
    ImportError instead when `strict`)."""
    import ctypes

    try:
        import scipy_openblas32 as wheel

        path = os.path.join(wheel.get_lib_dir(), wheel.get_library(fullname=True))
        lib = ctypes.CDLL(path)
        sgemm, dgemm = lib.scipy_sgemm_, lib.scipy_dgemm_
        setter = lib.scipy_openblas_set_num_threads
        getter = lib.scipy_openblas_get_num_threads
        parallel = lib.scipy_openblas_get_parallel
    except (ImportError, OSError, AttributeError, IndexError) as exc:
        if strict:
            raise ImportError(f"FASTNN_BLAS=openblas32: the scipy-openblas32 wheel's "
                              f"OpenBLAS cannot be used ({exc})") from exc
        return None

    def address(function):
        return ctypes.cast(function, ctypes.c_void_p).value or 0

    # an OpenMP build takes its thread count from the calling thread's OpenMP settings,
    # which a setter called on one thread does not reach: leave its threads alone
    threads = (address(setter), address(getter)) if parallel() in (0, 1) else (0, 0)
    return {"name": f"scipy-openblas32 {wheel.__version__}", "lib": lib,
            "sgemm": address(sgemm), "dgemm": address(dgemm), "threads": threads}


def _scipy_blas():
    capsules = gemm_capsules()
    return {"name": "scipy.linalg.cython_blas", "sgemm": _capsule_pointer(capsules[0]),
            "dgemm": _capsule_pointer(capsules[1]), "threads": None}


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


def _capsule_pointer(capsule):
    import ctypes

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, _capsule_name(capsule).encode()) or 0


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
    OpenBLAS the kernels call, or (0, 0) when that cannot be told.

    The scipy-openblas32 wheel's library is loaded by fastnn itself, so its functions
    are known.  For scipy's BLAS: scipy's wheels bundle their own OpenBLAS (symbols
    prefixed ``scipy_``) beside the one NumPy bundles; the library inside scipy's
    installation is the one.  Otherwise (a system OpenBLAS) the single OpenBLAS this
    process has loaded is.  Only pthreads and sequential builds qualify: an OpenMP
    OpenBLAS takes its thread count from the calling thread's OpenMP settings, which a
    setter called on one thread does not reach.  With (0, 0) fastnn leaves BLAS's
    threads alone and never splits a GEMM itself.  (Not threadpoolctl: importing it
    writes KMP_DUPLICATE_LIB_OK into os.environ.)
    """
    choice = _choose()
    if choice["threads"] is None:
        paths = _openblas_candidates()
        choice["threads"] = _thread_functions(paths[0]) if len(paths) == 1 else (0, 0)
    return choice["threads"]


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
