#!/usr/bin/env bash
# Build fastnn's extensions with AddressSanitizer + UndefinedBehaviorSanitizer and run the
# kernel, engine and gradient tests under them.  Any report fails the run.
#
#   tools/sanitize.sh                      # own venv in build/sanitize/venv (pip installs)
#   PYTHON=/path/to/python tools/sanitize.sh   # an interpreter that has numpy, scipy,
#                                              # Cython, setuptools, pytest, hypothesis
#   tools/sanitize.sh tests/kernels/test_dense.py -k relu   # other pytest arguments
#
# The sources are copied to build/sanitize/src and built in place there, so the checkout's
# own (optimised) build is never touched.  CPython leaks by design at exit, so leak
# detection is off; everything else halts on the first error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${SANITIZE_DIR:-$root/build/sanitize}
cc=${CC:-gcc}

if [ -z "${PYTHON:-}" ]; then
    if [ ! -x "$out/venv/bin/python" ]; then
        python3 -m venv "$out/venv"
        "$out/venv/bin/pip" install --quiet "numpy>=2" "scipy>=1.11" "Cython>=3.0,<4" \
            setuptools threadpoolctl pytest hypothesis
    fi
    PYTHON=$out/venv/bin/python
fi

src=$out/src
rm -rf "$src"
mkdir -p "$src"
# the package, the C sources and the tests; no build outputs
tar --exclude='*.so' --exclude='fastnn/_kernels/*.c' --exclude='__pycache__' -cf - \
    setup.py pyproject.toml csrc fastnn tests | tar -xf - -C "$src"

flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
# -O1 (ASan's recommendation) builds several times faster than the release -O3
(cd "$src" && CC="$cc" CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
    FASTNN_OPT=${SANITIZE_OPT:--O1} \
    "$PYTHON" setup.py build_ext --inplace -j 2 > "$out/build.log" 2>&1) \
    || { tail -30 "$out/build.log"; exit 1; }

libasan=$("$cc" -print-file-name=libasan.so)
# The ASan runtime must be the first library in the process: python itself is not built
# with it.  PYTHONMALLOC=malloc sends Python's small objects through malloc too, so ASan
# sees them.  abort_on_error makes a report kill the process (and fail pytest) at once.
export LD_PRELOAD=$libasan
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONMALLOC=malloc
export KERAS_BACKEND=torch
cd "$src"
# Canary: an overflow that ASan must report, so that a runtime that is not really active
# (a wrong LD_PRELOAD, a compiler without libasan) cannot pass silently.
if "$PYTHON" -c "import ctypes; b = ctypes.create_string_buffer(1000); \
        ctypes.memset(ctypes.addressof(b) + 1000, 0, 8)" 2> "$out/canary.log"; then
    echo "sanitize.sh: AddressSanitizer is not active (the canary overflow went unnoticed)"
    exit 1
fi
grep -q "heap-buffer-overflow" "$out/canary.log" || { cat "$out/canary.log"; exit 1; }
if [ $# -eq 0 ]; then
    set -- tests/kernels tests/test_gradients.py tests/test_properties.py
fi
exec "$PYTHON" -m pytest -q -p no:cacheprovider -x "$@"
