"""fit allocates its buffers once: the number of mallocs does not grow with the batches.

A tiny malloc counter is preloaded into a child interpreter (glibc's __libc_* entry
points, so no dlsym recursion); the child fits the same data with 1-row batches and with
full batches and reports the mallocs made inside each fit.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

COUNTER = r"""
#include <stddef.h>
extern void *__libc_malloc(size_t), *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t), *__libc_memalign(size_t, size_t);
static volatile long count;
long fnn_test_malloc_count(void) { return count; }
void *malloc(size_t n) { count++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count++; return __libc_realloc(p, n); }
"""

CHILD = """
import ctypes, numpy as np, fastnn
from fastnn import Sequential
from fastnn.layers import Conv1D, Dense, Dropout, Flatten, MaxPooling1D
count = ctypes.CDLL(None).fnn_test_malloc_count
rng = np.random.default_rng(0)
x = rng.standard_normal((600, {x_shape})).astype(np.float32)
y = rng.integers(0, 4, 600)

def mallocs(batch_size):
    fastnn.set_random_seed(0)
    model = Sequential({layers})
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)   # warm-up: builds buffers
    before = count()
    model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0)
    return count() - before

mallocs(600)
print(mallocs(1), mallocs(600))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("cc") is None,
                    reason="needs glibc and a C compiler")
@pytest.mark.parametrize("x_shape, layers", [
    ("16", '[Dense(12, activation="relu"), Dropout(0.1), Dense(4)]'),
    ("8, 2", '[Conv1D(3, 3, padding="same", activation="relu"), MaxPooling1D(), Flatten(), '
             'Dropout(0.1), Dense(4)]'),
], ids=["dense", "conv"])
def test_fit_mallocs_do_not_grow_with_the_number_of_batches(tmp_path, run_python, x_shape,
                                                             layers):
    lib = tmp_path / "count.so"
    (tmp_path / "count.c").write_text(COUNTER)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(tmp_path / "count.c")],
                   check=True)
    child = textwrap.dedent(CHILD).replace("{x_shape}", x_shape).replace("{layers}", layers)
    out = run_python(["-c", child], env=dict(os.environ, LD_PRELOAD=str(lib)),
                     check=True).stdout
    per_row, full_batch = map(int, out.split())
    # 1200 steps against 2: any allocation per batch would add >= 1198 mallocs
    assert per_row - full_batch < 100, (per_row, full_batch)
    assert full_batch > 0  # the counter really counts
