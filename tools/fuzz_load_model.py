"""Fuzz fastnn.load_model with mutated and hostile model files.

Every case must end in a model or a clean ``ValueError``: no other exception, no crash
of the interpreter, no allocation larger than the file justifies, nothing executed.

The cases are derived from a corpus of valid files written by several model kinds
(unbuilt, built, compiled with Adam or SGD momentum, Normalization and Dropout,
float64, binary and categorical losses) and mutated by: bit flips, truncations and
extensions, lies in the header-length field, edited or random JSON headers (huge or
negative shapes, offsets and sizes, wrong types, deep nesting, huge declared layer
widths), pickle payloads, and random bytes.  Most mutations re-sign the file (a valid
SHA-256 trailer), since anyone who can write a file can compute its checksum; the
checksum only guards against accidents.

Cases run in a worker child process (a crash there cannot take the fuzzer down), which
is restarted after a crash and limited with RLIMIT_AS; tracemalloc measures the peak
allocation of each load.  Usage::

    python tools/fuzz_load_model.py --cases 100000 --seed 1
    python tools/fuzz_load_model.py --cases 2000 --seed 7 --save-findings /tmp/findings

Exit status 1 when anything was found.  tests/test_fuzz_saving.py runs a bounded
campaign in CI through ``run()``.
"""
import argparse
import copy
import hashlib
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import time

MAGIC = b"FASTNN\x00\x01"
HEAD = len(MAGIC) + 8
DIGEST = 32
# A load may allocate this many times the file size plus this constant (json's objects
# for the header, copies of the payload, the model's buffers) and no more.
ALLOC_FACTOR, ALLOC_SLACK = 64, 8 << 20


# ----------------------------------------------------------------------------- corpus

def corpus():
    """[(label, bytes)] valid files from several model kinds."""
    import numpy as np

    import fastnn
    from fastnn.layers import Dense, Dropout, Normalization
    from fastnn.optimizers import SGD
    from fastnn.regularizers import L2
    from fastnn.saving import to_bytes

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3))
    fastnn.set_random_seed(0)
    files = []

    unbuilt = fastnn.Sequential([Dense(4, activation="relu"), Dense(2)])
    files.append(("unbuilt", to_bytes(unbuilt)))

    built = fastnn.Sequential([Dense(3, input_dim=3, activation="tanh"), Dense(1)])
    files.append(("built", to_bytes(built)))

    adam = fastnn.Sequential([Dense(5, activation="relu", kernel_regularizer=L2(1e-3)),
                              Dense(3, activation="softmax")])
    adam.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    adam.fit(x, np.arange(16) % 3, epochs=1, verbose=0)
    files.append(("adam", to_bytes(adam)))

    norm = Normalization()
    norm.adapt(x)
    sgd = fastnn.Sequential([norm, Dense(4, activation="sigmoid"), Dropout(0.25),
                             Dense(1, activation="sigmoid")], dtype="float64")
    sgd.compile(optimizer=SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
                loss="binary_crossentropy", metrics=["binary_accuracy"])
    sgd.fit(x, np.arange(16) % 2, epochs=1, verbose=0)
    files.append(("sgd-norm-f64", to_bytes(sgd)))

    mse = fastnn.Sequential([Dense(2, input_dim=3, use_bias=False)])
    mse.compile(optimizer=SGD(), loss="mse", metrics=["mae"])
    files.append(("mse-compiled-unfit", to_bytes(mse)))

    cce = fastnn.Sequential([Dense(3, activation="swish"), Dense(3)])
    cce.compile(loss=fastnn.losses.CategoricalCrossentropy(from_logits=True))
    cce.fit(x, np.eye(3)[np.arange(16) % 3], epochs=1, verbose=0)
    files.append(("cce-logits", to_bytes(cce)))
    return files


# ----------------------------------------------------------------------------- mutations

def sign(body):
    return body + hashlib.sha256(body).digest()


def split(data):
    """(header dict, payload bytes) of a valid file."""
    (length,) = struct.unpack("<Q", data[len(MAGIC):HEAD])
    header = json.loads(data[HEAD:HEAD + length])
    return header, data[HEAD + length:-DIGEST]


def join(header, payload, length=None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(text) if length is None else length
    return sign(MAGIC + struct.pack("<Q", n) + text + payload)


HOSTILE = [0, -1, 1, 2, 7, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 63 - 1, 2 ** 63,
           2 ** 64, 2 ** 100, -2 ** 63, 1.5, -0.0, 1e308, float("inf"), float("nan"), True,
           False, None, "", "x", "float32", "float64", "relu", "Dense", [], [0], [2 ** 40],
           [2 ** 32, 2 ** 32], [-1, 5], [1, 2, 3, 4], {}, {"a": 1}, "\u0000", "é" * 3]


def _paths(node, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _set(node, path, value):
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _delete(node, path):
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


def mutate_json(rng, header):
    """Edit one to three places of the header with hostile values."""
    header = json.loads(json.dumps(header))
    for _ in range(rng.randint(1, 3)):
        paths = [p for p, _ in _paths(header) if p]
        if not paths:
            break
        path = rng.choice(paths)
        action = rng.random()
        if action < 0.6:  # a copy: HOSTILE's lists must not end up inside one another
            _set(header, path, copy.deepcopy(rng.choice(HOSTILE)))
        elif action < 0.75:
            _delete(header, path)
        elif action < 0.9:  # a value copied from elsewhere in the document
            _set(header, path, json.loads(json.dumps(rng.choice(list(_paths(header)))[1])))
        else:
            parent = header
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                parent[rng.choice(["extra", "self", "__class__", "dtype", "units"])] = \
                    copy.deepcopy(rng.choice(HOSTILE))
    return header


def huge_declaration(rng, header):
    """Declare big arrays or wide layers while the payload stays small."""
    header = json.loads(json.dumps(header))
    big = rng.choice([2 ** 20, 2 ** 26, 2 ** 31, 2 ** 40, 10 ** 12, 2 ** 62])
    choice = rng.random()
    arrays = header.get("arrays") or []
    if choice < 0.4 and arrays:
        entry = rng.choice(arrays)
        shape = [big] if rng.random() < 0.5 else [big, big]
        entry["shape"] = shape
        size = 1
        for s in shape:
            size *= s
        entry["nbytes"] = size * (4 if entry.get("dtype") == "float32" else 8) \
            if rng.random() < 0.5 else entry.get("nbytes")
    elif choice < 0.8 and header.get("layers"):
        layer = rng.choice(header["layers"])
        if isinstance(layer.get("config"), dict):
            layer["config"]["units"] = big
            if rng.random() < 0.5:
                layer["config"]["input_dim"] = big
    else:
        header["input_dim"] = big
    return header


def deep_json(rng):
    depth = rng.choice([100, 1000, 10 ** 5])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return (opener * depth + "1" + closer * depth).encode()


class _Exec:
    """A pickle payload that would create `marker` if anything unpickled it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_payload(rng, data, marker):
    evil = pickle.dumps(_Exec(marker), protocol=rng.randint(0, pickle.HIGHEST_PROTOCOL))
    header, payload = split(data)
    where = rng.random()
    if where < 0.25:
        return evil  # a bare pickle
    if where < 0.5:
        return sign(MAGIC + struct.pack("<Q", len(evil)) + evil)  # pickle as the header
    if where < 0.75:
        return join(header, evil + payload)  # pickle where the arrays are
    header["config"] = evil.decode("latin-1")
    return join(header, payload)


def mutate(rng, data, marker):
    """(kind, bytes): one mutated file."""
    kind = rng.choice(["bitflip", "bitflip-signed", "truncate", "truncate-signed", "extend",
                       "length-lie", "json", "json", "json", "huge", "huge", "deep-json",
                       "pickle", "random", "random-header", "splice"])
    if kind.startswith("bitflip"):
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        out = bytes(out)
        return kind, sign(out[:-DIGEST]) if kind.endswith("signed") else out
    if kind.startswith("truncate"):
        cut = rng.randrange(len(data))
        out = data[:cut]
        return kind, sign(out) if kind.endswith("signed") and cut > HEAD else out
    if kind == "extend":
        return kind, sign(data[:-DIGEST] + os.urandom(rng.randint(1, 64)))
    header, payload = split(data)
    text = json.dumps(header).encode()
    if kind == "length-lie":
        lie = rng.choice([0, 1, len(text) - 1, len(text) + 1, len(text) + len(payload),
                          len(text) + len(payload) + 1, 2 ** 31, 2 ** 63, 2 ** 64 - 1])
        return kind, join(text, payload, lie)
    if kind == "json":
        return kind, join(mutate_json(rng, header), payload)
    if kind == "huge":
        return kind, join(huge_declaration(rng, header), payload)
    if kind == "deep-json":
        return kind, join(deep_json(rng), payload)
    if kind == "pickle":
        return kind, pickle_payload(rng, data, marker)
    if kind == "random":
        return kind, os.urandom(rng.randint(0, 300))
    if kind == "random-header":
        return kind, join(os.urandom(rng.randint(0, 200)), payload)
    # splice: the header of one mutation, the payload of another
    return kind, join(mutate_json(rng, header), payload[: rng.randrange(len(payload) + 1)])


# ----------------------------------------------------------------------------- worker

def _worker():
    """Read length-prefixed cases on stdin, answer one JSON line per case on stdout."""
    import resource
    import tracemalloc

    import numpy as np

    from fastnn.saving import from_bytes

    with open("/proc/self/statm") as f:
        vm_pages = int(f.read().split()[0])
    limit = vm_pages * os.sysconf("SC_PAGE_SIZE") + (2 << 30)  # 2 GB above the start
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    marker = sys.argv[sys.argv.index("--worker") + 1]
    # one-time costs before measuring: the first prediction imports scipy.linalg for BLAS
    import fastnn
    warm = fastnn.Sequential([fastnn.layers.Dense(1, input_dim=1)])
    warm.predict(np.zeros((2, 1), np.float32), verbose=0)
    tracemalloc.start()
    out = sys.stdout.buffer
    inp = sys.stdin.buffer
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return
        (n,) = struct.unpack("<Q", head)
        data = inp.read(n)
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = {"outcome": "model"}
        try:
            model = from_bytes(data)
            if model.built:  # the loaded model must also compute without crashing
                n_in = model.layers[0].n_in
                model.predict(np.zeros((2, n_in), model.dtype), verbose=0)
        except ValueError as exc:
            result = {"outcome": "ValueError", "message": str(exc)[:200]}
        except BaseException as exc:  # noqa: B036 -- anything else is a finding
            result = {"outcome": "exception", "type": type(exc).__name__,
                      "message": str(exc)[:300]}
        peak = tracemalloc.get_traced_memory()[1] - base
        result["peak"] = peak
        if peak > ALLOC_FACTOR * len(data) + ALLOC_SLACK:
            result["alloc"] = True
        if os.path.exists(marker):
            result["executed"] = True
            os.unlink(marker)
        out.write(json.dumps(result).encode() + b"\n")
        out.flush()


def _import_fastnn():
    """fastnn as installed, else from the checkout this script lies in (built in place)."""
    try:
        import fastnn
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import fastnn
    return fastnn


class Worker:
    def __init__(self, marker):
        env = dict(os.environ)
        # the worker imports the same fastnn as this process
        root = os.path.dirname(os.path.dirname(os.path.abspath(_import_fastnn().__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                      marker], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env)

    def run(self, data):
        """The worker's JSON answer, or None when it died."""
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = b""
        return json.loads(line) if line else None

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


# ----------------------------------------------------------------------------- driver

def run(cases, seed=0, save_findings=None, progress=False):
    """Run `cases` fuzz cases; returns a summary dict with the list of findings."""
    rng = random.Random(seed)
    _import_fastnn()
    files = corpus()
    tmp = tempfile.mkdtemp(prefix="fastnn-fuzz-")
    marker = os.path.join(tmp, "executed")
    worker = Worker(marker)
    counts, findings, start = {}, [], time.time()
    try:
        for i in range(cases):
            label, data = rng.choice(files)
            kind, case = mutate(rng, data, marker)
            result = worker.run(case)
            if result is None:
                result = {"outcome": "crash", "returncode": worker.proc.wait()}
                worker.close()
                worker = Worker(marker)
            outcome = result["outcome"]
            counts[outcome] = counts.get(outcome, 0) + 1
            bad = outcome in ("crash", "exception") or result.get("alloc") \
                or result.get("executed")
            if bad:
                findings.append({"case": i, "seed": seed, "source": label, "kind": kind,
                                 **result})
                if save_findings:
                    os.makedirs(save_findings, exist_ok=True)
                    with open(os.path.join(save_findings, f"case-{seed}-{i}.fastnn"), "wb") as f:
                        f.write(case)
            if progress and (i + 1) % 5000 == 0:
                print(f"{i + 1} cases, {time.time() - start:.0f} s, {counts}, "
                      f"{len(findings)} findings", file=sys.stderr, flush=True)
    finally:
        worker.close()
        if os.path.exists(marker):
            os.unlink(marker)
        os.rmdir(tmp)
    return {"cases": cases, "seed": seed, "seconds": time.time() - start, "outcomes": counts,
            "findings": findings}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-findings", metavar="DIR")
    args = parser.parse_args(argv)
    summary = run(args.cases, args.seed, args.save_findings, progress=True)
    for f in summary["findings"][:50]:
        print(json.dumps(f))
    print(json.dumps({k: v for k, v in summary.items() if k != "findings"}
                     | {"findings": len(summary["findings"])}))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    if "--worker" in sys.argv:
        _worker()
    else:
        sys.exit(main())
