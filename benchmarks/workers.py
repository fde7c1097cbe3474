"""Parent side of the process-per-system harness: start workers, send them jobs.

Each system under test lives in its own long-lived interpreter (``worker.py``), which
imports that one library and nothing else heavy, so no system pays for another's
thread pools, environment variables (``import fastnn`` sets ``OMP_WAIT_POLICY``) or
memory.  The parent, which only schedules and reports, imports the standard library
only.

The protocol is one pickled request and one pickled reply per job over the worker's
stdin/stdout (``worker.py`` moves stray prints from libraries to stderr).  Replies hold
plain Python values only, so unpickling them never imports NumPy here.
"""
import itertools
import os
import pathlib
import pickle
import struct
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
_HEADER = struct.Struct("<Q")


class WorkerError(RuntimeError):
    """A job raised in the worker, or the worker died; the message holds its traceback."""


def send(stream, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the other side closed the pipe")
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


class Worker:
    """One child interpreter holding one system (or none: a helper for NumPy-side work).

    Parameters
    ----------
    system : str or None
        A key of ``competitors.SYSTEMS``; None for a helper with no system loaded.
    threads : int or None
        Thread budget for the system; None keeps the library's own default.
    log_dir : pathlib.Path
        The worker's stderr goes to ``<log_dir>/<label>.log``.
    env : dict, optional
        Extra environment variables for the child.
    label : str, optional
        Name used in logs and reports (default: the system name).
    python : str, optional
        The interpreter to start (default: this one).  It needs NumPy and the system's
        library, nothing else: TensorFlow, which pins its own NumPy, lives in a virtual
        environment of its own.
    """

    _serial = itertools.count()

    def __init__(self, system, threads, log_dir, env=None, label=None, python=None):
        self.system = system
        self.label = label or system or "helper"
        safe = "".join(c if c.isalnum() else "_" for c in self.label)
        self.log_path = pathlib.Path(log_dir) / f"{safe}-{next(self._serial)}.log"
        child_env = {**os.environ, **(env or {})}
        if (HERE.parent / "fastnn" / "__init__.py").exists():  # a source checkout: time it
            child_env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(HERE.parent), child_env.get("PYTHONPATH")]))
        self.python = python or sys.executable
        command = [self.python, str(HERE / "worker.py")]
        self._log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=self._log,
                                            env=child_env, cwd=HERE)
        except OSError as exc:  # e.g. a --python path that does not exist
            self._log.close()
            raise WorkerError(f"{self.label}: cannot start {self.python} ({exc})") from None
        self.pid = self.process.pid
        self.info = None
        try:
            self.info = self.call("load", system=system, threads=threads)
        except WorkerError:
            self.close()
            raise

    def submit(self, op, **kwargs):
        """Send one job without waiting for it (pair with ``result``)."""
        try:
            send(self.process.stdin, {"op": op, "kwargs": kwargs})
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"{self.label}: worker is gone ({exc}); "
                              f"log {self.log_path}") from None

    def result(self):
        """The reply to the job ``submit`` sent; raises ``WorkerError`` if it failed."""
        try:
            reply = receive(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise WorkerError(f"{self.label}: worker died ({exc}); last log lines:\n"
                              + self.log_tail()) from None
        if "error" in reply:
            raise WorkerError(f"{self.label}: {reply['error']}")
        return reply["value"]

    def call(self, op, **kwargs):
        """Run one job in the worker and return its reply."""
        self.submit(op, **kwargs)
        return self.result()

    def log_tail(self, lines=15):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self):
        """Ask the worker to exit, then make sure it has."""
        if self.process.poll() is None:
            try:
                send(self.process.stdin, {"op": "exit", "kwargs": {}})
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._log.close()


class Pool:
    """The workers of one run: one per system, started once, closed at the end.

    ``pythons`` maps a system to the interpreter its worker runs under (default: this one).
    """

    def __init__(self, systems, threads, log_dir, progress, pythons=None):
        self.workers, self.skipped = {}, {}
        self.threads, self.log_dir, self.progress = threads, log_dir, progress
        self.extra = []  # workers started for one part (threads, scale), closed with the pool
        for name in systems:
            try:
                self.workers[name] = Worker(name, threads, log_dir,
                                            python=(pythons or {}).get(name))
                progress(f"started {name} (pid {self.workers[name].pid})")
            except WorkerError as exc:
                self.skipped[name] = str(exc).splitlines()[-1][:300]
                progress(f"skipping {name}: {self.skipped[name]}")
        self.helper = Worker(None, threads, log_dir, label="helper")

    def pids(self):
        """Process ids of every live worker (for the load accounting)."""
        every = [*self.workers.values(), self.helper, *self.extra]
        return [w.pid for w in every if w.process.poll() is None]

    def subset(self, *names):
        return {name: self.workers[name] for name in names if name in self.workers}

    def close(self):
        for worker in [*self.workers.values(), self.helper, *self.extra]:
            worker.close()


def rotated(names, shift):
    """``names`` rotated left by ``shift`` places (the running order of one round)."""
    names = list(names)
    shift %= max(len(names), 1)
    return names[shift:] + names[:shift]


def interleave(workers, op, kwargs_for, repeats, warmup=1, progress=None, failed=None):
    """Run ``op`` once per worker per round, in a rotating order; collect the replies.

    Parameters
    ----------
    workers : dict of str to Worker
    op : str
        A function of ``tasks.py``.
    kwargs_for : callable
        ``kwargs_for(name, seed)`` -> the job's keyword arguments; the round number is
        the seed, so each round trains from another initialisation.
    repeats, warmup : int
        Timed rounds, after ``warmup`` untimed ones.
    failed : dict, optional
        Filled with ``{name: error}`` for a worker whose job raised; it is left out of
        the remaining rounds (its replies so far are dropped).

    Returns
    -------
    dict of str to list
        The replies per worker, one per timed round.
    """
    replies = {name: [] for name in workers}
    active = dict(workers)
    for round_index in range(-warmup, repeats):
        for name in rotated(active, round_index):
            try:
                reply = active[name].call(op, **kwargs_for(name, max(round_index, 0)))
            except WorkerError as exc:
                if failed is not None:
                    failed[name] = str(exc)
                if progress is not None:
                    progress(f"{name} failed: {str(exc).splitlines()[-1][:200]}")
                del active[name]
                replies.pop(name)
                continue
            if round_index < 0:
                continue
            replies[name].append(reply)
            if progress is not None and isinstance(reply, dict) and "seconds" in reply:
                progress(f"round {round_index + 1}/{repeats} {name}: {reply['seconds']:.4g} s")
    return replies
