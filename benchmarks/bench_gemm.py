"""Small GEMMs: OpenBLAS against fastnn's register-tiled and FMA kernels, shape by shape.

Compiles bench_gemm.c against the OpenBLAS that SciPy ships (the library fastnn's
``cython_blas`` calls), csrc/fnn_gemm.h and csrc/fnn_small.h (float32, FMA, AVX-512 or
AVX2 chosen at run time), with fastnn's compiler flags, and prints a
table of microseconds per call (best of interleaved rounds, timed in C).  This is the
measurement behind the shape rule in fastnn/_kernels/_blas.pxd.

    python benchmarks/bench_gemm.py [--rounds 7]
"""
import argparse
import glob
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE.parent / "csrc"
FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-lm"]


def scipy_openblas():
    import scipy

    libs = pathlib.Path(scipy.__file__).parent.parent / "scipy.libs"
    found = sorted(glob.glob(str(libs / "libscipy_openblas*.so*")))
    found = [f for f in found if "openblas64" not in os.path.basename(f)]
    if not found:
        raise SystemExit(f"no libscipy_openblas in {libs}: cannot link the benchmark")
    return found[0]


def run(rounds=7):
    """Compile and run; return rows (dtype, op, m, n, k, blas_us, tiled_us, small_us,
    max_diff); small_us is None where the FMA kernel does not run (float64, no FMA)."""
    lib = scipy_openblas()
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "bench_gemm")
        subprocess.run(["cc", *FLAGS, f"-I{CSRC}", str(HERE / "bench_gemm.c"), "-o", exe, lib,
                        f"-Wl,-rpath,{os.path.dirname(lib)}"], check=True)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
        out = subprocess.run([exe, str(rounds)], capture_output=True, text=True, check=True,
                             env=env).stdout
    rows = []
    for line in out.splitlines():
        dtype, op, m, n, k, blas, tiled, small, diff = line.split()
        rows.append((dtype, op, int(m), int(n), int(k), float(blas), float(tiled),
                     None if float(small) < 0 else float(small), float(diff)))
    return rows


def table(rows):
    lines = ["| dtype | op(A) op(B) | m x n x k | OpenBLAS µs | tiled µs | BLAS time / tiled time "
             "| FMA kernel µs | BLAS time / FMA time | max abs diff (tiled) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dtype, op, m, n, k, blas, tiled, small, diff in rows:
        fma = "-" if small is None else f"{small:.3f} | {blas / small:.2f}×"
        lines.append(f"| {dtype} | {op} | {m}x{n}x{k} | {blas:.3f} | {tiled:.3f} | "
                     f"{blas / tiled:.2f}× | {fma if small is not None else '- | -'} | "
                     f"{diff:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if sys.platform != "linux":
        raise SystemExit("bench_gemm.py links against SciPy's OpenBLAS and needs Linux")
    print(table(run(args.rounds)))
