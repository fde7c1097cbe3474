"""The random streams behind initialisers, shuffling and dropout seeds.

There is one global stream, reseeded by ``set_random_seed``.  ``seeded(seed)``
overrides it for the calling thread only, for the duration of a ``with`` block:
this is how an estimator with ``random_state=int`` gets a fit that does not
depend on the global state, on what ran before, or on fits running at the same
time in other threads.
"""
from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

_generator = np.random.default_rng()
_local = threading.local()  # .generator: this thread's override, or absent / None


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def set_random_seed(seed: int) -> None:
    """Reseed every random stream fastnn uses.

    Parameters
    ----------
    seed : int
        Non-negative integer.  With the same seed, data and thread count, model
        construction and ``fit`` give bit-identical weights.  Inside a
        ``seeded`` block the block's own stream keeps precedence on its thread.
    """
    global _generator
    _generator = np.random.default_rng(_check_seed(seed))


def generator() -> np.random.Generator:
    """The numpy Generator to draw from: this thread's override, else the global one."""
    override = getattr(_local, "generator", None)
    return _generator if override is None else override


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[np.random.Generator]:
    """Draw from a fresh stream seeded with `seed` on this thread inside the block.

    The global stream is neither read nor advanced, and other threads are not
    affected.  Blocks nest; leaving one restores the stream that was in force.

    Parameters
    ----------
    seed : int
        Non-negative integer.

    Yields
    ------
    numpy.random.Generator
        The block's generator.
    """
    override = np.random.default_rng(_check_seed(seed))
    previous = getattr(_local, "generator", None)
    _local.generator = override
    try:
        yield override
    finally:
        _local.generator = previous
