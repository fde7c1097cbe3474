"""save / load_model: one self-checking file, and the same bytes behind pickle.

File layout (all integers little-endian)::

    magic      8 bytes   b"FASTNN\\x00\\x01"   (format version 1)
    length     8 bytes   size of the JSON header
    header     JSON      config, compile settings, optimizer state description, and
                         for every array its name, dtype, shape, offset and size
    arrays     raw       C-order array data, one after another
    checksum   32 bytes  SHA-256 of everything before it

Loading never unpickles: the header is parsed with ``json`` and every array is
rebuilt with ``np.frombuffer`` after its dtype, shape and extent were checked.
A truncated, corrupt, foreign or tampered file raises ValueError.  Writing goes
to a temporary file in the same folder that is then renamed over the target,
so a crash never leaves a half-written model where the old one was.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import warnings
from typing import TYPE_CHECKING

import numpy as np

from fastnn import layers as layers_module
from fastnn import losses as losses_module
from fastnn import optimizers as optimizers_module

if TYPE_CHECKING:
    from typing import Any

    from fastnn._typing import NDArray, PathLike
    from fastnn.models import Sequential

MAGIC = b"FASTNN\x00\x01"
_DIGEST = 32
_DTYPES = {"float32": np.float32, "float64": np.float64}


# ----------------------------------------------------------------------------- encoding

def to_bytes(model: Sequential) -> bytes:
    """Serialise a model: architecture, weights, compile settings and optimizer state."""
    config = {
        "format": 1,
        "name": model.name,
        "dtype": model.dtype.name,
        "layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                   for layer in model.layers],
        # dense models keep format 1's "input_dim" (files byte-compatible with earlier
        # releases); other input shapes are recorded in full
        "input_dim": model._n_in if model._input_shape is None or len(model._input_shape) == 1
        else None,
        "compile": None,
    }
    if config["input_dim"] is None and model._input_shape is not None:
        config["input_shape"] = list(model._input_shape)
    arrays: dict[str, NDArray[Any]] = {}
    if model.built:
        for i, w in enumerate(model.get_weights()):
            arrays[f"weight_{i}"] = w
    if model._compiled:
        opt = model.optimizer
        config["compile"] = {
            "loss": model.loss.get_config(),
            "optimizer": opt.get_config(),
            "iterations": int(opt.iterations),
            "metrics": list(model._metric_names),
            "slots": len(opt._slots),
        }
        for i, slot in enumerate(opt._slots):
            arrays[f"slot_{i}"] = slot
    entries, blobs, offset = [], [], 0
    for name, arr in arrays.items():
        data = np.ascontiguousarray(arr).tobytes()
        entries.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape),
                        "offset": offset, "nbytes": len(data)})
        blobs.append(data)
        offset += len(data)
    config["arrays"] = entries
    header = json.dumps(config, sort_keys=True).encode("utf-8")
    body = MAGIC + struct.pack("<Q", len(header)) + header + b"".join(blobs)
    return body + hashlib.sha256(body).digest()


def save(model: Sequential, path: PathLike) -> None:
    """Write `model` to `path` atomically (exactly that path; ``.fastnn`` is the convention)."""
    path = os.fspath(path)
    data = to_bytes(model)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- decoding

def _corrupt(reason: str) -> ValueError:
    return ValueError(f"not a valid fastnn model file: {reason}")


def _parse(data: bytes) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    if len(data) < len(MAGIC) + 8 + _DIGEST:
        raise _corrupt("too short (truncated?)")
    if data[:len(MAGIC) - 1] != MAGIC[:-1]:
        raise _corrupt("wrong magic bytes (a foreign file?)")
    if data[len(MAGIC) - 1:len(MAGIC)] != MAGIC[-1:]:
        raise _corrupt(f"unsupported format version {data[len(MAGIC) - 1]}")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise _corrupt("checksum mismatch (truncated, corrupted or modified)")
    (length,) = struct.unpack("<Q", body[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    if start + length > len(body):
        raise _corrupt("header length out of range")
    try:
        config = json.loads(body[start:start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(f"unreadable header ({exc})") from None
    except RecursionError:  # "[[[[..." nested deeper than the parser recurses
        raise _corrupt("unreadable header (nested too deeply)") from None
    if not isinstance(config, dict) or config.get("format") != 1:
        raise _corrupt("unknown header format")
    payload = body[start + length:]
    arrays = {}
    for entry in _field(config, "arrays", list):
        name = _field(entry, "name", str)
        dtype = _DTYPES.get(_field(entry, "dtype", str))
        shape = _field(entry, "shape", list)
        offset, nbytes = _field(entry, "offset", int), _field(entry, "nbytes", int)
        if dtype is None or len(shape) > 4 or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise _corrupt(f"bad description of array {name!r}")
        # exact Python integers: np.prod would wrap around (or overflow) on huge shapes
        size = math.prod(shape)
        if offset < 0 or nbytes != size * np.dtype(dtype).itemsize \
                or offset + nbytes > len(payload):
            raise _corrupt(f"array {name!r} lies outside the file")
        arrays[name] = np.frombuffer(payload, dtype, size, offset).reshape(shape)
    return config, arrays


def _field(mapping: Any, key: str, kind: type) -> Any:
    if not isinstance(mapping, dict) or not isinstance(mapping.get(key), kind) \
            or isinstance(mapping.get(key), bool) and kind is not bool:
        raise _corrupt(f"missing or malformed field {key!r}")
    return mapping[key]


def from_bytes(data: bytes | bytearray | memoryview) -> Sequential:
    """Rebuild a model from ``to_bytes`` output; ValueError on anything malformed."""
    from fastnn.models import Sequential

    config, arrays = _parse(bytes(data))
    try:
        layers = []
        for spec in _field(config, "layers", list):
            cls: type[layers_module.Layer] | None = layers_module.LAYERS.get(
                _field(spec, "class", str))
            if cls is None:
                raise _corrupt(f"unknown layer class {spec.get('class')!r}")
            layers.append(cls.from_config(_field(spec, "config", dict)))
        n_in = config.get("input_dim")
        if "input_shape" in config:
            if n_in is not None:
                raise ValueError("both input_dim and input_shape given")
            n_in = layers_module._check_shape(_field(config, "input_shape", list),
                                              "input_shape")
        _check_weight_sizes(layers, n_in, arrays)  # before anything is allocated
        model = Sequential(layers, name=config.get("name"), dtype=_field(config, "dtype", str))
        if n_in is not None:
            model.build((None, n_in) if isinstance(n_in, int) else (None, *n_in))
            n_weights = len(model.get_weights())
            model.set_weights([arrays[f"weight_{i}"] for i in range(n_weights)])
        compiled = config.get("compile")
        if compiled is not None:
            with warnings.catch_warnings():
                # the from_logits warnings were given when the model was first compiled
                warnings.filterwarnings("ignore", message=".*received `from_logits=")
                model.compile(optimizer=optimizers_module.from_config(compiled["optimizer"]),
                              loss=losses_module.from_config(compiled["loss"]),
                              metrics=compiled["metrics"] or None)
            _restore_optimizer(model, compiled, arrays)
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith("not a valid fastnn"):
            raise
        raise _corrupt(f"inconsistent contents ({type(exc).__name__}: {exc})") from None
    return model


def _check_weight_sizes(layers: list[layers_module.Layer], n_in: Any,
                        arrays: dict[str, NDArray[Any]]) -> None:
    """The weights the layer configs describe must be the weights the file holds.

    Building a model allocates its parameters from the declared widths, so a file that
    declares a 2^20 x 2^20 Dense layer must be rejected here, by arithmetic on Python
    integers, and not by an allocation of terabytes.
    """
    first = getattr(layers[0], "input_dim", None) if layers else None
    if n_in is None:
        if first is not None:  # the model would build itself with fresh weights
            raise ValueError("layer 0 declares input_dim but the file holds no weights")
        return
    if isinstance(n_in, tuple):
        shape = n_in
    elif not isinstance(n_in, int) or isinstance(n_in, bool) or n_in < 1:
        raise ValueError(f"bad input_dim {n_in!r}")
    else:
        shape = (n_in,)
    if first is not None and (first,) != shape:
        raise ValueError(f"layer 0 declares input_dim {first}, the model {n_in}")
    expected = 0
    for layer in layers:
        expected += layer.param_count(shape) + layer.stat_count(shape)
        shape = layer.compute_output_shape(shape)
    held = sum(a.size for name, a in arrays.items() if name.startswith("weight_"))
    if expected != held:
        raise ValueError(f"the layers need {expected} weights, the file holds {held}")


def _restore_optimizer(model: Sequential, compiled: dict[str, Any],
                       arrays: dict[str, NDArray[Any]]) -> None:
    opt = model.optimizer
    iterations = compiled["iterations"]
    if not isinstance(iterations, int) or isinstance(iterations, bool) or not \
            0 <= iterations < 2 ** 62:  # the engine counts steps in a 64-bit integer
        raise ValueError("bad optimizer iteration count")
    n_slots = compiled["slots"]
    if n_slots:
        if not model.built:
            raise ValueError("optimizer state without weights")
        slots = opt._ensure_state(model._params.shape[0], model.dtype)
        if len(slots) != n_slots:
            raise ValueError("optimizer state does not match the optimizer")
        for i, slot in enumerate(slots):
            src = arrays[f"slot_{i}"]
            if src.shape != slot.shape or src.dtype != slot.dtype:
                raise ValueError(f"optimizer slot {i} has the wrong shape or dtype")
            slot[...] = src
    opt.iterations = iterations


def load_weights_into(model: Sequential, path: PathLike, skip_mismatch: bool = False) -> None:
    """Copy the weights stored at `path` into `model` (see Sequential.load_weights); every
    layer is checked before any is written."""
    with open(os.fspath(path), "rb") as f:
        source = from_bytes(f.read())
    if len(source.layers) != len(model.layers) or not source.built:
        raise ValueError(f"load_weights: the file holds {len(source.layers)} layers, "
                         f"this model has {len(model.layers)}")
    updates = []
    for mine, theirs in zip(model.layers, source.layers, strict=True):
        if mine.weight_shapes() != theirs.weight_shapes():
            if skip_mismatch:
                continue
            raise ValueError(f"load_weights: layer {mine.name!r} has weight shapes "
                             f"{mine.weight_shapes()}, the file's {theirs.name!r} has "
                             f"{theirs.weight_shapes()}")
        updates.append((mine, mine._check_weights(theirs.get_weights(), model.dtype)))
    for layer, arrays in updates:
        layer._set_weights(arrays)


def load_model(path: PathLike) -> Sequential:
    """Load a model written by ``model.save(path)``.

    Raises
    ------
    ValueError
        The file is truncated, corrupt, not a fastnn model, or was modified.
    """
    with open(os.fspath(path), "rb") as f:
        return from_bytes(f.read())
