"""all_finite: compiled scan vs its NumPy twin."""
import numpy as np
import pytest

from fastnn import _kernels as kernels
from fastnn._kernels import reference

SIZES = [1, 2, 7, 15, 16, 17, 31, 64, 1000, 4099]  # 16: the scan's block of sums


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_all_finite_matches_reference(dtype, size):
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 1e3).astype(dtype)
    x[0] = np.finfo(dtype).max  # the largest finite value is finite (x - x == 0)
    assert kernels.all_finite(x) is reference.all_finite(x) is True
    for bad in (np.nan, np.inf, -np.inf):
        for where in {0, size // 2, size - 1}:
            y = x.copy()
            y[where] = bad
            assert kernels.all_finite(y) is reference.all_finite(y) is False


def test_all_finite_reads_read_only_and_empty_buffers():
    x = np.ones(5, np.float32)
    x.flags.writeable = False
    assert kernels.all_finite(x) is True
    assert kernels.all_finite(np.empty(0)) is True
    with pytest.raises(ValueError):  # not contiguous: the caller passes a flat view
        kernels.all_finite(np.ones(10)[::2])
