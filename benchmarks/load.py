"""The machine's background load, read from /proc with the standard library only.

The parent process of ``run.py`` imports nothing but the standard library (it must not
load a BLAS or an OpenMP runtime of its own), so this module must not either.  The
workers use the same helpers to measure the load during each timed job.

On this project's 2-core machines one busy core is enough to stall every two-thread
BLAS or OpenMP call, so each figure in RESULTS.md comes with the share of the CPUs that
*other* processes used while it was measured.
"""
import os
import resource
import time

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def loadavg():
    """The 1-minute load average, or None off Linux."""
    try:
        with open("/proc/loadavg") as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu():
    """(busy, stolen) CPU seconds of the whole machine since boot, or None."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def process_cpu(pid):
    """User + system CPU seconds of process ``pid`` (all its threads), or 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu():
    """CPU seconds of this process and its reaped children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def thread_cpu(pid="self"):
    """``{tid: (name, cpu seconds, voluntary, involuntary context switches)}`` of a process."""
    threads = {}
    folder = f"/proc/{pid}/task"
    try:
        tids = os.listdir(folder)
    except OSError:
        return threads
    for tid in tids:
        try:
            with open(f"{folder}/{tid}/stat") as handle:
                head, tail = handle.read().rsplit(")", 1)
            fields = tail.split()
            switches = {}
            with open(f"{folder}/{tid}/status") as handle:
                for line in handle:
                    key, _, value = line.partition(":")
                    if key.endswith("ctxt_switches"):
                        switches[key] = int(value)
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
        threads[tid] = (head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / TICK,
                        switches.get("voluntary_ctxt_switches", 0),
                        switches.get("nonvoluntary_ctxt_switches", 0))
    return threads


def thread_delta(before, after):
    """Per-thread differences of two ``thread_cpu`` readings, busiest first."""
    rows = []
    for tid, (name, cpu, vol, invol) in after.items():
        old = before.get(tid, (name, 0.0, 0, 0))
        rows.append({"tid": tid, "name": name, "cpu_s": cpu - old[1],
                     "voluntary": vol - old[2], "involuntary": invol - old[3]})
    return sorted(rows, key=lambda row: -row["cpu_s"])


class JobLoad:
    """Within one process: how many cores *other* processes used during a ``with`` block.

    ``own`` is this process's CPU (all its threads); what the whole machine used beyond
    it, divided by the wall time, is the background load the job ran beside.
    """

    MIN_WALL_S = 0.2

    def __enter__(self):
        self._start = (time.perf_counter(), own_cpu(), machine_cpu())
        self.other_cores = self.steal_cores = self.own_cores = None
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._start[0]
        own = own_cpu() - self._start[1]
        now, before = machine_cpu(), self._start[2]
        if wall > 0:
            self.own_cores = own / wall
            # /proc/stat counts in clock ticks (10 ms): shorter jobs get no load figure
            if now is not None and before is not None and wall >= self.MIN_WALL_S:
                busy, steal = (a - b for a, b in zip(now, before, strict=True))
                self.other_cores = max(busy - own, 0.0) / wall
                self.steal_cores = steal / wall
        return False

    def as_dict(self):
        return {"other_cores": self.other_cores, "steal_cores": self.steal_cores,
                "own_cores": self.own_cores}


class PartLoad:
    """The parent's view of one benchmark part: load average and other processes' CPU.

    ``pids`` returns the process ids of the workers alive now; their CPU, the parent's
    and that of reaped children is "ours", the rest of the machine's busy time is not.
    """

    def __init__(self, pids):
        self.pids = pids

    def _ours(self):
        return own_cpu() + sum(process_cpu(pid) for pid in self.pids())

    def __enter__(self):
        self.load_before = loadavg()
        self._start = (time.perf_counter(), self._ours(), machine_cpu())
        self.other_cores = self.steal_cores = None
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._start[0]
        # workers that ended inside the block were reaped: own_cpu counts them
        ours = self._ours() - self._start[1]
        now, before = machine_cpu(), self._start[2]
        self.load_after = loadavg()
        if now is not None and before is not None and wall > 0:
            busy, steal = (a - b for a, b in zip(now, before, strict=True))
            self.other_cores = max(busy - ours, 0.0) / wall
            self.steal_cores = steal / wall
        return False

    @property
    def disturbed(self):
        return self.other_cores is not None and self.other_cores + self.steal_cores > 0.1

    def summary(self):
        """One sentence for the report."""
        if self.other_cores is None:
            return "Background load was not measured (no /proc/stat)."
        text = (f"Background load: other processes used {self.other_cores:.2f} cores on "
                f"average during this part (the hypervisor stole {self.steal_cores:.2f}); "
                f"1-minute load average {self.load_before} before, {self.load_after} after.")
        if self.disturbed:
            text += " **The machine was not quiet: these timings are disturbed.**"
        return text


def _all_process_cpu():
    """``{pid: (name, cpu seconds)}`` of every process readable in /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                head, tail = handle.read().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        found[entry] = (head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / TICK)
    return found


def busiest_processes(interval=1.0, count=5, exclude=()):
    """Processes that used the most CPU over the next ``interval`` seconds.

    Returns ``"0.93 cores: name"`` strings, busiest first; ``exclude`` holds pids (ours).
    """
    before = _all_process_cpu()
    time.sleep(interval)
    after = _all_process_cpu()
    used = []
    for pid, (name, cpu) in after.items():
        if int(pid) in exclude or pid not in before:
            continue
        share = (cpu - before[pid][1]) / interval
        if share >= 0.01:
            used.append((share, name))
    used.sort(reverse=True)
    return [f"{share:.2f} cores: {name}" for share, name in used[:count]]
