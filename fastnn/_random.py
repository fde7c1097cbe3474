"""The global random stream behind initialisers, shuffling and dropout seeds."""
import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed):
    """Reseed every random stream fastnn uses.

    Parameters
    ----------
    seed : int
        Non-negative integer.  With the same seed, data and thread count, model
        construction and ``fit`` give bit-identical weights.
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    _generator = np.random.default_rng(int(seed))


def generator():
    """The current global numpy Generator."""
    return _generator
