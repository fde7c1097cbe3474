"""Run the fastnn benchmark suite, every system in its own process; write RESULTS.md.

Usage::

    python benchmarks/run.py                      # every part, ~18 min on 2 cores
    python benchmarks/run.py --quick              # smoke run, under 2 minutes
    python benchmarks/run.py --parts digits --rounds 9
    python benchmarks/run.py --parts threads,scale
    python benchmarks/run.py --parts cnn --python tf.keras=/path/to/tf-venv/bin/python

Each system under test (fastnn, the NumPy reference, PyTorch, scikit-learn, tf.keras,
JAX in two forms) runs in its own long-lived worker interpreter (``worker.py``) that
imports that one library, so that no system shares thread pools, environment (``import
fastnn`` sets ``OMP_WAIT_POLICY``) or memory with another.  This parent process only
schedules and reports: it imports the standard library only (checked at the end).

Rounds are interleaved: in round r every system runs once, in an order rotated by r, so
a slow stretch of a shared machine hits every system alike.  Each figure is a median
with its min-max range over the rounds; ratios are taken within a round.  The workers
time themselves and measure the CPU other processes used during each job; the report
adds the load average and other processes' share of the CPUs for every part.  Nothing
is asserted: targets are reported as PASS, MISS or SKIP lines.

A system can run under another interpreter than this one (``--python SYSTEM=PATH``;
``FASTNN_BENCH_TF_PYTHON`` for tf.keras): TensorFlow pins its own NumPy, so it is best
kept in a virtual environment of its own.  The worker needs only that system and NumPy.

``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` pin OpenBLAS to an older kernel family on
some machines here; the workers are started without them, and the report says so.
"""
import argparse
import datetime
import os
import pathlib
import sys
import tempfile
import time

import load
from bench_cnn import bench_cnn
from bench_latency import bench_latency
from bench_scale import bench_scale
from bench_threads import bench_threads
from bench_training import bench_digits, bench_inference, bench_wide, bench_width_sweep
from targets import evaluate_targets, reported_lines
from workers import Pool, WorkerError

HERE = pathlib.Path(__file__).resolve().parent
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ALL_SYSTEMS = ("fastnn", "NumPy", "PyTorch", "MLPClassifier", "tf.keras", "JAX step",
               "JAX scan")

# Which systems each part needs (the threads and scale parts start their own workers).
PART_SYSTEMS = {
    "digits": ALL_SYSTEMS,
    "wide": ("fastnn", "NumPy", "PyTorch", "JAX scan"),
    "inference": ("fastnn", "NumPy", "PyTorch"),
    "kernels": ("fastnn",),
    "latency": ("fastnn", "NumPy", "PyTorch"),
    "sweep": ("fastnn", "NumPy"),
    "gemm": (), "threads": (), "scale": (),
    "cnn": ("fastnn", "PyTorch", "tf.keras"),
}
# Environment variables naming another interpreter for a system (--python overrides).
INTERPRETER_ENV = {"tf.keras": "FASTNN_BENCH_TF_PYTHON"}
TITLES = {
    "digits": "1. Digits network, whole fit (64-25-15-10, Adam, batch 32)",
    "wide": "2. Wide network, one epoch (784-1024-1024-10, batch 256)",
    "inference": "3. Batch inference through the wide network",
    "kernels": "4. Kernels: fastnn._kernels against fastnn._kernels.reference (NumPy)",
    "latency": "5. Predict latency, digits network",
    "sweep": "6. Speed-up over NumPy against hidden width",
    "gemm": "7. Small GEMMs: OpenBLAS against fastnn's tiled and FMA kernels (timed in C)",
    "threads": "8. Threads under load (784-512-512-10, one epoch)",
    "scale": "9. Scale: one epoch of 784-256-256-10 on 1e4 to 1e6 rows",
    "cnn": "10. Convolutional networks: the digits CNN and an MNIST-sized CNN",
}

# Workload sizes; "rounds" is the number of interleaved timed rounds (--rounds overrides
# every part's).  settle_s is the pause before each timed job (see timing.py).
SETTINGS = {
    "full": dict(digits_epochs=100, digits_rounds=7, wide_rows=60_000, wide_rounds=5,
                 inference_rows=10_000, inference_rounds=7,
                 widths=(16, 32, 64, 128, 256, 512, 1024), sweep_epochs=3, sweep_rounds=5,
                 kernel_sizes=(10**3, 10**4, 10**5, 10**6, 10**7), kernel_rounds=5,
                 latency_rounds=7, budget_s=0.05, settle_s=0.3, gemm_rounds=7,
                 threads_rows=60_000, threads_rounds=5,
                 scale_points=(10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6), scale_repeats=2,
                 memmap_from=10**5, cnn_digits_epochs=30, cnn_digits_rounds=5,
                 cnn_mnist_rows=10_000, cnn_mnist_rounds=5),
    "quick": dict(digits_epochs=3, digits_rounds=2, wide_rows=4_096, wide_rounds=2,
                  inference_rows=2_000, inference_rounds=2,
                  widths=(16, 256), sweep_epochs=1, sweep_rounds=2,
                  kernel_sizes=(10**3, 10**5), kernel_rounds=2,
                  latency_rounds=2, budget_s=0.01, settle_s=0.1, gemm_rounds=2,
                  threads_rows=4_096, threads_rounds=1,
                  scale_points=(10**4, 3 * 10**4, 10**5), scale_repeats=1,
                  memmap_from=3 * 10**4, cnn_digits_epochs=2, cnn_digits_rounds=2,
                  cnn_mnist_rows=512, cnn_mnist_rounds=2),
}
ROUND_KEYS = ("digits_rounds", "wide_rounds", "inference_rounds", "sweep_rounds",
              "kernel_rounds", "latency_rounds", "threads_rounds", "cnn_digits_rounds",
              "cnn_mnist_rounds")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small workloads, one or two rounds: a smoke run (< 2 min)")
    parser.add_argument("--parts", default=",".join(TITLES),
                        help="comma-separated parts to run, of: " + ",".join(TITLES))
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help="comma-separated systems to compare (default: all installed)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved timed rounds for every part (full default 5-7)")
    parser.add_argument("--threads", type=int, default=None,
                        help="thread budget for every system (default: each library's own "
                             "default, as a user running it alone gets)")
    parser.add_argument("--threads-rows", type=int, default=None,
                        help="rows of the threads part's epoch (full default 60000)")
    parser.add_argument("--python", action="append", default=[], metavar="SYSTEM=PATH",
                        help="run SYSTEM's worker under the interpreter PATH, e.g. "
                             "tf.keras=/opt/tf/bin/python (repeatable; default: this one, or "
                             + ", ".join(f"${env} for {name}"
                                         for name, env in INTERPRETER_ENV.items()) + ")")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help="Markdown report (default benchmarks/RESULTS.md, "
                             "or RESULTS-quick.md with --quick)")
    parser.add_argument("--cache", type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir()) / "fastnn-bench-cache",
                        help="folder for the scale part's data file (3.2 GB at 1e6 rows)")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(TITLES)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {list(TITLES)}")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.pythons = interpreters(args.python, os.environ, parser.error)
    if args.output is None:
        args.output = HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    return args


def interpreters(options, environ, error):
    """``{system: interpreter path}`` from ``--python`` options and ``INTERPRETER_ENV``."""
    pythons = {name: environ[env] for name, env in INTERPRETER_ENV.items() if environ.get(env)}
    for option in options:
        name, sep, path = option.partition("=")
        if not sep or not path or name not in ALL_SYSTEMS:
            error(f"--python {option!r}: expected SYSTEM=PATH with SYSTEM one of "
                  f"{list(ALL_SYSTEMS)}")
        pythons[name] = path
    # the workers start in this folder: a relative path names a file from where run.py was
    # started (abspath keeps a venv's symlinked python as it is); a bare name is looked up
    # on PATH as usual
    return {name: os.path.abspath(path) if os.sep in path else path
            for name, path in pythons.items()}


def skip_hints(skipped, pythons):
    """Add to a skipped system's reason how to run it under another interpreter."""
    for name in skipped:
        if name in INTERPRETER_ENV and name not in pythons:
            skipped[name] += (f" (give an interpreter that has it: --python {name}=PATH or "
                              f"{INTERPRETER_ENV[name]}=PATH)")


def progress(message):
    """One status line on stderr, so that stdout stays clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def remove_blas_overrides():
    """Drop ``BLAS_OVERRIDES`` from the environment the workers inherit; say what went."""
    return [f"{name}={os.environ.pop(name)}" for name in BLAS_OVERRIDES if name in os.environ]


def run_part(key, pool, cfg, args, run_dir, limits, digits):
    """One part: ``(lines, data)``."""
    settle, suffix = cfg["settle_s"], "-quick" if args.quick else ""
    if key == "digits":
        return bench_digits(pool.subset(*PART_SYSTEMS["digits"]), digits["spec"],
                            digits["train"], digits["test"], cfg["digits_epochs"],
                            cfg["digits_rounds"], limits["ceiling_gflops"], progress, settle)
    if key == "wide":
        return bench_wide(pool.subset(*PART_SYSTEMS["wide"]), pool.helper, cfg["wide_rows"],
                          cfg["wide_rounds"], limits, progress, settle)
    if key == "inference":
        return bench_inference(pool.subset(*PART_SYSTEMS["inference"]), cfg["inference_rows"],
                               cfg["inference_rounds"], progress, settle)
    if key == "kernels":
        if "fastnn" not in pool.workers:
            return ["Skipped: fastnn did not load."], None
        return pool.workers["fastnn"].call("kernels", sizes=cfg["kernel_sizes"],
                                           repeats=cfg["kernel_rounds"],
                                           budget_s=cfg["budget_s"], settle_s=settle)
    if key == "latency":
        return bench_latency(pool.subset(*PART_SYSTEMS["latency"]), digits["spec"],
                             cfg["latency_rounds"], cfg["budget_s"], progress, settle)
    if key == "sweep":
        return bench_width_sweep(pool.subset(*PART_SYSTEMS["sweep"]), pool.helper,
                                 digits["spec"], cfg["widths"], cfg["sweep_epochs"],
                                 cfg["sweep_rounds"], HERE / f"speedup_vs_width{suffix}.png",
                                 progress, settle)
    if key == "gemm":
        return pool.helper.call("gemm", rounds=cfg["gemm_rounds"])
    if key == "threads":
        return bench_threads(pool, cfg["threads_rows"], cfg["threads_rounds"], 256, progress,
                             settle)
    if key == "cnn":
        return bench_cnn(pool.subset(*PART_SYSTEMS["cnn"]), digits["spec"], digits["train"],
                         digits["test"], cfg["cnn_digits_epochs"], cfg["cnn_digits_rounds"],
                         cfg["cnn_mnist_rows"], cfg["cnn_mnist_rounds"], progress, settle)
    if key == "scale":
        args.cache.mkdir(parents=True, exist_ok=True)
        return bench_scale(pool, args.cache / f"scale-784-{max(cfg['scale_points'])}",
                           cfg["scale_points"], cfg["memmap_from"], cfg["scale_repeats"],
                           HERE / f"scale{suffix}.png", progress)
    raise ValueError(f"unknown part {key!r}")


def render(args, cfg, sections, target_lines, pool, machine_lines, limits, elapsed, loads):
    """The whole RESULTS.md as one string."""
    command = " ".join(["python", "benchmarks/run.py", *args.argv])
    lines = ["# fastnn benchmark results", "",
             f"Generated by `{command}` on {datetime.date.today().isoformat()} in "
             f"{elapsed:.0f} s. Every system ran in its own worker process (one per system, "
             "started once, importing only that library); the parent that schedules the "
             "rounds imported no numerical library. Thread counts: "
             + (f"{args.threads} for every system." if args.threads else
                "each library's default, as a user running it alone gets."),
             "Times are medians (min-max) over interleaved rounds (round r runs every system "
             "once, in an order rotated by r); a ratio is taken within each round and then "
             "summarised. Before each timed job the worker pauses "
             f"{cfg['settle_s']:g} s so that the previous system's idle thread pool stops "
             "spinning (see `timing.py`).", "",
             f"Background load: 1-minute load average {loads['start']} at the start, "
             f"{loads['end']} at the end; the busiest other processes at the start: "
             f"{'; '.join(loads['busiest_start']) or 'none above 0.01 cores'}; at the end: "
             f"{'; '.join(loads['busiest_end']) or 'none above 0.01 cores'}.", ""]
    if args.quick:
        lines += ["**Quick smoke run**: smaller workloads and fewer rounds than the targets "
                  "name; the verdicts below are indicative only.", ""]
    lines += ["## Targets", "", *target_lines, "", "## Machine", "", *machine_lines,
              f"- Single-precision matmul rate: {limits['ceiling_gflops']:.4g} GFLOP/s (best of "
              "5 `np.matmul` of two 2048x2048 float32 matrices, NumPy's BLAS, default threads)"
              f"; copy bandwidth {limits['copy_gbps']:.3g} GB/s (`np.copyto`, 256 MiB, read + "
              "write)", "", "## Systems", ""]
    lines += [f"- {name}: {worker.info['config']}" + (
        "" if worker.python == sys.executable else
        f"; run by {worker.python} (Python {worker.info['python']}, NumPy "
        f"{worker.info['numpy']})") for name, worker in pool.workers.items()]
    lines += [f"- {name}: **skipped**, {reason}" for name, reason in pool.skipped.items()]
    lines.append("")
    for title, body in sections:
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = dict(SETTINGS["quick" if args.quick else "full"])
    if args.rounds is not None:
        cfg.update({key: args.rounds for key in ROUND_KEYS})
    if args.threads_rows is not None:
        cfg["threads_rows"] = args.threads_rows
    started = time.perf_counter()
    removed = remove_blas_overrides()
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="fastnn-bench-"))
    progress(f"worker logs in {run_dir}")
    loads = {"start": load.loadavg(), "busiest_start": load.busiest_processes()}
    needed = [s for s in ALL_SYSTEMS
              if s in args.systems and any(s in PART_SYSTEMS[p] for p in args.parts)]
    pool = Pool(needed, args.threads, run_dir, progress, pythons=args.pythons)
    skip_hints(pool.skipped, args.pythons)
    try:
        limits = pool.helper.call("machine_limits")
        progress(f"matmul {limits['ceiling_gflops']:.4g} GFLOP/s, copy "
                 f"{limits['copy_gbps']:.3g} GB/s")
        digits = {"spec": ("digits", str(run_dir / "digits.npz"))}
        digits.update(pool.helper.call("prepare_digits", path=digits["spec"][1]))
        sections, data = [], {}
        for key in args.parts:
            progress(f"--- {TITLES[key]}")
            with load.PartLoad(pool.pids) as part_load:
                try:
                    lines, data[key] = run_part(key, pool, cfg, args, run_dir, limits, digits)
                except WorkerError as exc:
                    lines, data[key] = [f"Failed: `{str(exc).splitlines()[-1][:300]}`"], None
            progress(part_load.summary())
            sections.append((TITLES[key], [*lines, "", part_load.summary()]))
        libraries = {}
        for name, worker in pool.workers.items():
            try:
                libraries[name] = worker.call("libraries")
            except WorkerError:
                libraries[name] = []
        machine_lines = pool.helper.call("describe", removed_env=removed,
                                         libraries_by_system=libraries)
        loads.update(end=load.loadavg(), busiest_end=load.busiest_processes(
            exclude=set(pool.pids())))
    finally:
        pool.close()
    leaked = sorted(m for m in ("numpy", "scipy", "torch", "jax", "fastnn", "sklearn",
                                "tensorflow", "matplotlib") if m in sys.modules)
    target_lines = [t.line() for t in evaluate_targets(data, quick=args.quick)]
    target_lines += reported_lines(data)
    text = render(args, cfg, sections, target_lines, pool, machine_lines, limits,
                  time.perf_counter() - started, loads)
    if leaked:  # the parent must stay free of every library it times
        text += f"\n\n**Harness error: the parent process imported {leaked}.**\n"
    args.output.write_text(text + "\n")
    print(text)
    progress(f"wrote {args.output}")
    if leaked:
        raise SystemExit(f"the parent process imported {leaked}")


if __name__ == "__main__":
    main()
