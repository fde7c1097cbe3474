"""Weight regularizers (Keras convention)."""
import math


class L2:
    """L2 penalty ``l2 * sum(W ** 2)`` added to the loss; its gradient ``2 * l2 * W``
    is added inside the compiled backward pass.

    The course's ``lambda / (2 m) * ||W||_F^2`` (m training rows) is ``L2(lambda / (2 * m))``.

    Parameters
    ----------
    l2 : float, default 0.01
        Non-negative factor (Keras's default).
    """

    def __init__(self, l2=0.01):
        if isinstance(l2, bool) or not isinstance(l2, (int, float)):
            raise TypeError(f"l2 must be a number, got {type(l2).__name__}")
        if not math.isfinite(l2) or l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0, got {l2}")
        self.l2 = float(l2)

    def __call__(self, w):
        import numpy as np

        return self.l2 * float(np.sum(np.square(w, dtype=np.float64)))

    def get_config(self):
        return {"l2": self.l2}

    def __repr__(self):
        return f"L2(l2={self.l2})"


def get(identifier):
    if identifier is None or isinstance(identifier, L2):
        return identifier
    raise TypeError("kernel_regularizer must be None or fastnn.regularizers.L2, "
                    f"got {identifier!r}")
