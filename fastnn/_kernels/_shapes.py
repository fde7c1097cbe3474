"""Output sizes and padding of convolution and pooling windows (Keras's arithmetic).

Shared by the layers, the compiled kernels and their NumPy twins, so the three can
never disagree on a shape.
"""


def window_geometry(size, window, stride, padding):
    """(output size, padding before) of a window sliding along one axis.

    "valid": only whole windows, ``(size - window) // stride + 1``.  "same":
    ``ceil(size / stride)`` outputs, padded with ``max((out - 1) * stride + window - size,
    0)`` positions of which the smaller half goes before (TensorFlow's asymmetric rule,
    which Keras follows on every backend).  ValueError when no window fits.
    """
    if padding == "valid":
        out, before = (size - window) // stride + 1 if size >= window else 0, 0
    elif padding == "same":
        out = -(-size // stride)
        before = max((out - 1) * stride + window - size, 0) // 2
    else:
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if out < 1:
        raise ValueError(f"a window of {window} does not fit an input of size {size} with "
                         f"padding={padding!r}")
    return out, before


def geometry(in_shape, window, strides, padding, filters):
    """The 2-D geometry tuple ``(h, w, c, kh, kw, sh, sw, pt, pl, oh, ow, f)`` of a
    convolution (or, with ``filters = c``, a pooling) over ``in_shape = (h, w, c)``."""
    h, w, c = in_shape
    kh, kw = window
    sh, sw = strides
    oh, pt = window_geometry(h, kh, sh, padding)
    ow, pl = window_geometry(w, kw, sw, padding)
    return (h, w, c, kh, kw, sh, sw, pt, pl, oh, ow, filters)
