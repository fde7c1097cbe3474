"""Build fastnn's Cython extensions.

The extension list, the one directive dict and the compiler flags live here.
Environment toggles:
  FASTNN_CYTHON_DEBUG=1  boundscheck/initializedcheck/nonecheck on (debug build)
  FASTNN_NATIVE=1        add -march=native (never the default: wheels must be portable)
  FASTNN_NO_OPENMP=1     build serially even where OpenMP is available
  FASTNN_BUILD_JOBS=N    translate and compile N modules at a time (default: the usable cores)
  FASTNN_OPT=-O1         optimisation level instead of -O3 (tools/sanitize.sh: faster builds)
"""
import multiprocessing
import os
import shutil
import subprocess
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTNN_CYTHON_DEBUG", "0") != "0"
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

MODULES = ["_omp", "_pool", "dense", "conv", "losses", "optim", "engine"]

# -O3 for vectorisation.  -fno-math-errno lets gcc use the vector sqrt in Adam, and
# -fno-trapping-math lets it if-convert the selects in the exp/sigmoid/relu loops (measured:
# without it those loops stay scalar).  Neither changes a computed value: they drop errno and
# floating-point exception flags, which fastnn never reads.  -ffp-contract=off keeps gcc from
# fusing a*b+c into FMA in the AVX2/AVX-512 clones (csrc/fnn_common.h), so results do not
# depend on which clone the CPU runs.  No -ffast-math: it reassociates
# and assumes no NaN/inf, which would break NaN checks and bit-for-bit determinism.
COMPILE_ARGS = [os.environ.get("FASTNN_OPT", "-O3"), "-fno-math-errno", "-fno-trapping-math",
                "-ffp-contract=off"]
if os.environ.get("FASTNN_NATIVE", "0") != "0":
    COMPILE_ARGS.append("-march=native")
# MSVC: its default /fp:precise neither fuses a*b+c (that takes /fp:contract) nor assumes
# away NaN/inf, the same guarantees as the gcc flags above.  OpenMP is /openmp (OpenMP 2.0,
# enough for Cython's prange); the wheel then needs vcomp140.dll, which the Windows wheel
# repair step bundles (pyproject.toml, [tool.cibuildwheel.windows]).
MSVC_COMPILE_ARGS = ["/O2"]


def openmp_flags():
    """Compile and link a tiny omp.h program with $CC; return the flags if it works."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc.split()[0]) is None:
        return []
    src = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        cmd = cc.split() + ["-fopenmp", path, "-o", os.path.join(tmp, "probe")]
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    return ["-fopenmp"] if ok else []


def build_jobs():
    """How many modules to translate and compile at once: FASTNN_BUILD_JOBS or the cores
    this process may use (``pip install .`` passes no -j, so the default matters)."""
    if os.environ.get("FASTNN_BUILD_JOBS"):
        return max(1, int(os.environ["FASTNN_BUILD_JOBS"]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class BuildExt(build_ext):
    """build_ext with the flags of the compiler at hand, compiling modules concurrently."""

    def finalize_options(self):
        if self.parallel is None:  # `pip install .` passes no -j; a -j given still wins
            self.parallel = JOBS
        super().finalize_options()

    def build_extensions(self):
        no_openmp = os.environ.get("FASTNN_NO_OPENMP", "0") != "0"
        if self.compiler.compiler_type == "msvc":
            compile_args = MSVC_COMPILE_ARGS + ([] if no_openmp else ["/openmp"])
            link_args = []
        else:
            openmp = [] if no_openmp else openmp_flags()
            # -pthread: csrc/fnn_pool.h's workers (libc has them on recent glibc)
            compile_args, link_args = COMPILE_ARGS + openmp + ["-pthread"], openmp + ["-pthread"]
        for ext in self.extensions:
            ext.extra_compile_args = compile_args
            ext.extra_link_args = link_args
        super().build_extensions()


JOBS = build_jobs()
# cythonize runs its translations in a multiprocessing pool.  Only with "fork": the
# spawn/forkserver start methods re-import the main module, which is this script when
# it is run directly, and would start the build again in every worker.
START_METHOD = (multiprocessing.get_start_method(allow_none=True)
                or multiprocessing.get_all_start_methods()[0])  # the default comes first
CYTHON_JOBS = JOBS if START_METHOD == "fork" else 0

extensions = [
    Extension(
        f"fastnn._kernels.{name}",
        [f"fastnn/_kernels/{name}.pyx"],
        # numpy's headers: engine.pyx's infer uses the NumPy C-API (see there)
        include_dirs=["csrc", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES, nthreads=CYTHON_JOBS),
    cmdclass={"build_ext": BuildExt},
)
