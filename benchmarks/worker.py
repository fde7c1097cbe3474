"""Child side of the harness: one interpreter, one system, jobs read from stdin.

Started by ``workers.Worker``; not meant to be run by hand.  The first job is
``load`` (import and configure one system of ``competitors.SYSTEMS``, or none for a
helper); every other job names a function of ``tasks.py`` that is called with the
loaded system as its first argument.  Replies are pickled plain Python values.

The pipe to the parent is a duplicate of the original stdout; file descriptor 1 is
pointed at stderr (the worker's log), so a library that prints cannot corrupt the
protocol.
"""
import os
import sys
import traceback

_PROTOCOL_OUT = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)  # anything printed from here on lands in the log

import dataclasses  # noqa: E402
import numbers  # noqa: E402

from workers import receive, send  # noqa: E402


def plain(value):
    """``value`` with every NumPy scalar turned into a Python number (recursively)."""
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{field.name: plain(getattr(value, field.name))
                                             for field in dataclasses.fields(value)})
    if isinstance(value, str):
        return str(value)  # a subclass (torch's TorchVersion) would import torch to unpickle
    if isinstance(value, (bool, bytes, type(None))):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a 0-d array
        return value.item()
    return value


def main():
    stdin = sys.stdin.buffer
    system = None
    import tasks

    while True:
        try:
            request = receive(stdin)
        except EOFError:
            return
        op, kwargs = request["op"], request["kwargs"]
        if op == "exit":
            return
        try:
            if op == "load":
                system, info = tasks.load(**kwargs)
                value = info
            else:
                value = getattr(tasks, op)(system, **kwargs)
            reply = {"value": plain(value)}
        except Exception:  # noqa: BLE001 - reported to the parent, which decides
            reply = {"error": traceback.format_exc(limit=8)}
        send(_PROTOCOL_OUT, reply)


if __name__ == "__main__":
    main()
