"""Tensor: the ndarray that model(x), predict and fastnn.activations return.

Course code written for Keras calls ``.numpy()`` on what a model or an activation
returns (``tf.nn.softmax(p).numpy()``, ``(p >= 0.5).numpy()``).  A Tensor is a plain
ndarray subclass with no state of its own: model(x) allocates its result as a Tensor
directly (Engine.set_output_type, no view per call), the activations take one ``view``,
and NumPy keeps the subclass through ufuncs, comparisons, arithmetic and slicing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Any

    import numpy.typing as npt


class Tensor(np.ndarray):
    """An ndarray that also answers ``.numpy()``, as a Keras tensor does."""

    def numpy(self) -> npt.NDArray[Any]:
        """The same data as a plain ``np.ndarray`` (a view, no copy)."""
        return self.view(np.ndarray)


def wrap(array: npt.NDArray[Any]) -> Tensor:
    """View a freshly computed ndarray as a Tensor."""
    return array.view(Tensor)
