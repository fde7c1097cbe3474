"""Build fastnn's Cython extensions.

The extension list, the one directive dict and the compiler flags live here.
Environment toggles:
  FASTNN_CYTHON_DEBUG=1  boundscheck/initializedcheck/nonecheck on (debug build)
  FASTNN_NATIVE=1        add -march=native (never the default: wheels must be portable)
  FASTNN_NO_OPENMP=1     build serially even where OpenMP is available
  FASTNN_OPT=-O1         optimisation level instead of -O3 (tools/sanitize.sh: faster builds)
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy  # noqa: F401  (build requirement; keeps the numpy ABI pin in the build env)
from Cython.Build import cythonize
from setuptools import Extension, setup

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

MODULES = ["_omp", "dense", "losses", "optim", "engine"]

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


def openmp_flags():
    """Compile and link a tiny omp.h program; return the flags if it works."""
    if os.environ.get("FASTNN_NO_OPENMP", "0") != "0" or sys.platform == "win32":
        return []
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


OPENMP = openmp_flags()

extensions = [
    Extension(
        f"fastnn._kernels.{name}",
        [f"fastnn/_kernels/{name}.pyx"],
        include_dirs=["csrc"],
        extra_compile_args=COMPILE_ARGS + OPENMP,
        extra_link_args=OPENMP,
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=DIRECTIVES),
)
