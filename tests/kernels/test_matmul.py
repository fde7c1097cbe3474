"""fastnn._kernels.dense.matmul: BLAS, the tiled kernel and the shape rule against NumPy."""
import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import reference

# (m, n, k): 1-row, odd and prime sizes, n at the 8- and 16-wide tile edges, and the
# digits network's products
MNK = [(1, 8, 1), (1, 10, 15), (3, 9, 7), (5, 16, 3), (7, 17, 13), (13, 31, 29),
       (32, 25, 64), (32, 15, 25), (32, 10, 15), (33, 24, 5), (64, 40, 100)]


def operands(rng, trans_a, trans_b, m, n, k, dtype):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("method", ["auto", "blas", "tiled"])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("m, n, k", MNK)
def test_matmul_matches_reference(dtype, tol, method, trans_a, trans_b, m, n, k):
    rng = np.random.default_rng([m, n, k, trans_a, trans_b])
    a, b = operands(rng, trans_a, trans_b, m, n, k, dtype)
    a0, b0 = a.copy(), b.copy()
    got, want = np.full((m, n), np.nan, dtype), np.empty((m, n), dtype)
    kernels.matmul(a, b, trans_a, trans_b, got, method)
    reference.matmul(a, b, trans_a, trans_b, want, method)
    # tolerance relative to the sum of |terms|, as a dot product of k terms may cancel
    scale = np.abs(a.T if trans_a else a) @ np.abs(b.T if trans_b else b)
    assert np.all(np.abs(got - want) <= tol["rtol"] * scale + tol["atol"])
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_tiled_and_blas_agree_closely_at_the_digits_shapes(dtype, tol):
    rng = np.random.default_rng(1)
    for m, n, k in [(32, 25, 15), (32, 15, 10)]:
        a, b = operands(rng, False, True, m, n, k, dtype)
        tiled, blas = np.empty((m, n), dtype), np.empty((m, n), dtype)
        kernels.matmul(a, b, False, True, tiled, "tiled")
        kernels.matmul(a, b, False, True, blas, "blas")
        np.testing.assert_allclose(tiled, blas, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


@pytest.mark.parametrize("bad", [
    lambda a, b, c: kernels.matmul(a, b, False, False, c[:, :3], "auto"),
    lambda a, b, c: kernels.matmul(a, b.T.copy(), False, False, c, "auto"),
    lambda a, b, c: kernels.matmul(a, b, False, False, c, "fast"),
    lambda a, b, c: kernels.matmul(a[:, :0], b[:0], False, False, c, "auto"),
    lambda a, b, c: kernels.matmul(a, b[:, :4], False, False, c[:, :4], "tiled"),  # n < 8
])
def test_matmul_rejects_bad_calls(bad):
    a, b = np.ones((4, 6), np.float32), np.ones((6, 9), np.float32)
    with pytest.raises(ValueError):
        bad(a, b, np.empty((4, 9), np.float32))


# n not a multiple of the 8- or 16-wide tile (the last column tile overlaps the one before
# it), m not a multiple of the 4-row tile, and exact multiples for contrast
ACCUMULATE_MNK = [(1, 9, 3), (3, 10, 7), (5, 20, 4), (7, 17, 13), (6, 23, 11), (4, 16, 5),
                  (8, 8, 2), (9, 31, 5), (2, 40, 3), (13, 15, 29)]


# the tiled kernel takes beta 0 or 1 only (test_tiled_matmul_rejects_other_beta)
@pytest.mark.parametrize("method, beta", [(method, beta) for method in ("auto", "blas", "tiled")
                                          for beta in (0.0, 1.0, 0.5)
                                          if method != "tiled" or beta != 0.5])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
@pytest.mark.parametrize("m, n, k", ACCUMULATE_MNK)
def test_matmul_every_method_and_beta_against_numpy(dtype, tol, method, beta, trans_a,
                                                     trans_b, m, n, k):
    rng = np.random.default_rng([m, n, k, trans_a, trans_b, int(4 * beta)])
    a, b = operands(rng, trans_a, trans_b, m, n, k, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    got, want = c0.copy(), c0.copy()
    if beta == 0:
        got[...] = np.nan  # beta = 0 must not read c_out
    kernels.matmul(a, b, trans_a, trans_b, got, method, beta)
    reference.matmul(a, b, trans_a, trans_b, want, method, beta)
    numpy = (a.T if trans_a else a) @ (b.T if trans_b else b) + dtype(beta) * c0
    scale = np.abs(a.T if trans_a else a) @ np.abs(b.T if trans_b else b) + np.abs(c0)
    for out in (got, want):
        assert np.all(np.abs(out - numpy) <= tol["rtol"] * scale + tol["atol"]), \
            np.argwhere(np.abs(out - numpy) > tol["rtol"] * scale + tol["atol"])


def test_tiled_matmul_rejects_other_beta():
    a, b = np.ones((4, 6), np.float32), np.ones((6, 9), np.float32)
    with pytest.raises(ValueError, match="beta 0 or 1"):
        kernels.matmul(a, b, False, False, np.zeros((4, 9), np.float32), "tiled", 0.5)


# The row-exact inference kernel: every tile shape (4-row blocks and single rows; 2, 1
# or 8/4 wide-vector strips, 16-byte vectors, scalars) and overlapping last strips.
ROWS_MN = [(m, n) for m in (1, 2, 3, 4, 5, 7, 8, 13) for n in
           (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 97, 128, 131, 257)]


@pytest.mark.parametrize("m, n", ROWS_MN)
@pytest.mark.parametrize("k", [1, 5, 64])
def test_rows_matmul_is_its_defining_sum_bit_for_bit(dtype, m, n, k):
    rng = np.random.default_rng([m, n, k])
    a, b = operands(rng, False, False, m, n, k, dtype)
    got, want = np.full((m, n), np.nan, dtype), np.empty((m, n), dtype)
    kernels.matmul(a, b, False, False, got, "rows")
    reference.matmul(a, b, False, False, want, "rows")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [1, 3, 10, 17, 37, 256])
def test_rows_matmul_row_does_not_depend_on_the_other_rows(dtype, n):
    rng = np.random.default_rng(n)
    a, b = operands(rng, False, False, 70, n, 61, dtype)
    full = np.empty((70, n), dtype)
    kernels.matmul(a, b, False, False, full, "rows")
    for start, stop in [(i, i + 1) for i in range(70)] + [(3, 5), (1, 70), (5, 64)]:
        part = np.empty((stop - start, n), dtype)
        kernels.matmul(a[start:stop], b, False, False, part, "rows")
        np.testing.assert_array_equal(part, full[start:stop])


@pytest.mark.parametrize("trans_a, trans_b, beta", [(True, False, 0.0), (False, True, 0.0),
                                                    (False, False, 1.0)])
def test_rows_matmul_rejects_transposes_and_beta(trans_a, trans_b, beta):
    a = np.ones((6, 6), np.float32)
    with pytest.raises(ValueError, match="row-exact"):
        kernels.matmul(a, a, trans_a, trans_b, np.zeros((6, 6), np.float32), "rows", beta)


# Large products take the packed kernel (csrc/fnn_gemm_rows_packed.h: from 16 rows when B
# exceeds 1 MB, on AVX-512 machines) and fastnn's pool (from 2^22 multiply-adds): the
# same defining sum, so the same bits, whichever path, thread count or row block.
PACKED_MNK = [(16, 1031, 257), (37, 1030, 300), (70, 257, 1031), (130, 600, 520)]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = kernels.get_num_threads()
    kernels.set_num_threads(request.param)
    yield request.param
    kernels.set_num_threads(before)


@pytest.mark.parametrize("m, n, k", PACKED_MNK)
def test_rows_matmul_of_large_products_is_its_defining_sum_bit_for_bit(dtype, threads, m,
                                                                       n, k):
    rng = np.random.default_rng([m, n, k])
    a, b = operands(rng, False, False, m, n, k, dtype)
    got, want = np.full((m, n), np.nan, dtype), np.empty((m, n), dtype)
    kernels.matmul(a, b, False, False, got, "rows")
    reference.matmul(a, b, False, False, want, "rows")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n, k", [(1031, 257), (520, 600)])
def test_rows_matmul_of_large_products_row_does_not_depend_on_the_other_rows(dtype, threads,
                                                                             n, k):
    rng = np.random.default_rng([n, k])
    a, b = operands(rng, False, False, 1100, n, k, dtype)
    full = np.empty((1100, n), dtype)
    kernels.matmul(a, b, False, False, full, "rows")
    blocks = [(i, i + 1) for i in (0, 7, 15, 16, 17, 1099)] + [
        (3, 20), (1, 1100), (5, 1028), (64, 1024), (100, 101), (0, 16), (13, 43)]
    for start, stop in blocks:
        part = np.empty((stop - start, n), dtype)
        kernels.matmul(a[start:stop], b, False, False, part, "rows")
        np.testing.assert_array_equal(part, full[start:stop])


def test_rows_fma_emulation_is_one_rounding():
    # 1 + 2^-30 is not a float32, nor is (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 after the 1 + 2^-24
    # cancels against c = -1 - 2^-11: fused, the 2^-24 survives; unfused it is lost
    a = np.array([1 + 2.0 ** -12], np.float32)
    c = np.array([-(1 + 2.0 ** -11)], np.float32)
    assert reference._fma(a, a, c)[0] == np.float32(2.0 ** -24)
    assert (a * a + c)[0] == 0
    x = np.array([1 + 2.0 ** -27], np.float64)
    assert reference._fma(x, x, np.array([-(1 + 2.0 ** -26)]))[0] == 2.0 ** -54
