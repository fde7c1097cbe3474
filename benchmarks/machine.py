"""What the numbers were measured on: CPU, BLAS, library versions and the matmul ceiling."""
import importlib.metadata
import os
import platform
import sys
import time

import numpy as np

# The SIMD features that decide which BLAS and fastnn kernels can run.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile")

# The packages whose versions the report lists: (label, distribution names, module).
PACKAGES = (("numpy", ("numpy",), "numpy"), ("scipy", ("scipy",), "scipy"),
            ("torch", ("torch",), "torch"), ("scikit-learn", ("scikit-learn",), "sklearn"),
            ("tensorflow", ("tensorflow-cpu", "tensorflow"), "tensorflow"),
            ("keras", ("keras",), "keras"), ("jax", ("jax",), "jax"),
            ("optax", ("optax",), "optax"), ("threadpoolctl", ("threadpoolctl",), None),
            ("matplotlib", ("matplotlib",), None), ("fastnn", ("fastnn",), "fastnn"))


def cpu_info():
    """CPU model, logical cores, cores usable by this process and the SIMD flags present."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: no flags to report
        pass
    model = model or platform.processor() or "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "logical_cores": os.cpu_count(), "usable_cores": usable,
            "simd": [flag for flag in SIMD_FLAGS if flag in flags]}


def blas_info(load_scipy=True):
    """One dict per BLAS/OpenMP library loaded in this process, from threadpoolctl.

    Call it after every system has been imported, so that SciPy's own OpenBLAS, the one
    fastnn calls (the scipy-openblas32 wheel's, or SciPy's: ``fastnn._kernels._blas_import``)
    and PyTorch's runtime are listed next to NumPy's.  ``architecture`` is the kernel
    family OpenBLAS picked at load time, which ``OPENBLAS_CORETYPE`` would have overridden.
    """
    import sys

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    if load_scipy:
        import scipy.linalg  # noqa: F401 - loads SciPy's OpenBLAS so that it is listed
    if "fastnn" in sys.modules:  # fastnn loads its BLAS at its first GEMM: load it now
        sys.modules["fastnn"]._kernels.load_blas()

    keys = ("internal_api", "prefix", "version", "architecture", "threading_layer",
            "num_threads")
    return [{**{key: info.get(key) for key in keys},
             "file": _short_path(info.get("filepath", ""))}
            for info in threadpool_info()]


def _short_path(path):
    """``numpy.libs/libscipy_openblas64_.so``: the folder tells which package shipped it."""
    folder, name = os.path.split(path)
    return f"{os.path.basename(folder)}/{name}" if folder else name


def versions():
    """``{label: version}`` for Python and each installed package of ``PACKAGES``.

    A package imported without installed metadata (fastnn put on the path from its
    source tree, say) is reported by its module's ``__version__``.
    """
    found = {"python": platform.python_version()}
    for label, distributions, module_name in PACKAGES:
        for distribution in distributions:
            try:
                found[label] = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        else:
            version = getattr(sys.modules.get(module_name or ""), "__version__", None)
            if version:
                found[label] = f"{version} (no package metadata)"
    return found


def matmul_ceiling(size=2048, repeats=5):
    """Best float32 GFLOP/s of ``np.matmul`` on two ``size``-square matrices.

    A large GEMM is the fastest thing this CPU does with its BLAS and thread budget, so
    it is the ceiling that training throughputs are put next to.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # warm-up: threads started, pages touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def copy_bandwidth(megabytes=256, repeats=5):
    """Best GB/s of ``np.copyto`` between two float32 arrays (bytes read plus written)."""
    n = megabytes * 2**20 // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def training_flops(sizes, n_rows, epochs):
    """Floating-point operations of the GEMMs in ``epochs`` epochs of training.

    Per row and layer of shape (k, m): forward 2km, weight gradient 2km, and input
    gradient 2km for every layer but the first (its input needs no gradient).
    Elementwise work is left out, so the figure is a lower bound.
    """
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    per_row = sum(2 * k * m * (2 if i == 0 else 3) for i, (k, m) in enumerate(shapes))
    return float(per_row) * n_rows * epochs


def describe(removed_env, libraries_by_system):
    """Markdown lines for the machine section of RESULTS.md.

    ``libraries_by_system`` maps each worker's label to its ``blas_info`` list: every
    system runs in its own process, so each loads (and is timed with) its own BLAS.
    """
    cpu = cpu_info()
    lines = [f"- CPU: {cpu['model']} ({platform.machine()}), {cpu['logical_cores']} logical "
             f"cores, {cpu['usable_cores']} usable by this process",
             f"- SIMD flags: {', '.join(cpu['simd']) or 'none of ' + ', '.join(SIMD_FLAGS)}",
             f"- OS: {platform.platform()}"]
    if removed_env:
        lines.append("- Removed from the environment before any worker started: "
                     + ", ".join(f"`{item}`" for item in removed_env))
    else:
        lines.append("- `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` were not set")
    lines.append("- BLAS and threading libraries each worker loaded (threadpoolctl):")
    for label, infos in libraries_by_system.items():
        lines.append(f"  - {label}:")
        if not infos:  # e.g. a worker run by another interpreter, without threadpoolctl
            lines.append("    - none listed (threadpoolctl is not importable in that worker)")
        for info in infos:
            detail = ", ".join(f"{key}={value}" for key, value in info.items()
                               if value is not None and key not in ("file", "prefix"))
            lines.append(f"    - `{info['file']}`: {detail}")
    lines.append("- Versions: " + ", ".join(f"{name} {version}"
                                            for name, version in versions().items()))
    return lines
