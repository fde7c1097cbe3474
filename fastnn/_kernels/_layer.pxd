# What every layer-kind unit of the training engine shares: the kind codes, the compiled
# description of one layer (Layer), what a kind needs around it (LayerNeeds: parameter
# entries, workspace blocks, work per row) and the state of the current pass (Pass).
# Each kind lives in its own _kind_<name>.pxd (read, needs, forward, backward side by
# side); _kinds.pxd holds the one switch per operation over them.
from libc.stdint cimport uint64_t

from fastnn._kernels._conv cimport ConvGeom
from fastnn._kernels._dense cimport Penalty


cdef enum:
    LAYER_DENSE = 0
    LAYER_DROPOUT = 1
    LAYER_NORMALIZATION = 2
    LAYER_ACTIVATION = 3
    LAYER_CONV = 4               # Conv1D / Conv2D (1-D: h = kh = 1)
    LAYER_MAXPOOL = 5            # MaxPooling1D / MaxPooling2D
    LAYER_COUNT = 6              # sentinel: codes are valid in [0, LAYER_COUNT)

cdef enum:
    # where a loss fused with the output activation finds the last layer's logits
    LOGITS_NONE = 0              # this kind cannot end a fused stack
    LOGITS_Z = 1                 # its pre-activation block z (Dense, Conv)
    LOGITS_INPUT = 2             # its input (an activation layer)


ctypedef struct Layer:
    int kind, act
    int index                    # position in the stack (Dropout's default mask stream)
    Py_ssize_t n_in, n_out
    double alpha, rate
    bint has_seed                # Dropout with its own seed: masks keyed on (seed, step)
    uint64_t seed
    Penalty pen                  # Dense, Conv: Keras's weight regularizers (all zero: none)
    Py_ssize_t w_off, b_off      # into params/grads; b_off < 0: no bias
    Py_ssize_t n_w, n_b          # kernel and bias entries (n_w = 0: no parameters)
    Py_ssize_t aux_off           # Normalization: mean at aux_off, std at aux_off + n_out
    bint need_dx                 # propagate the gradient into this layer's input
    ConvGeom geom                # Conv / MaxPool: window geometry (n_in = h*w*c,
                                 # n_out = oh*ow*f); the kernel is (kh*kw*c, f) at w_off


ctypedef struct LayerNeeds:
    # what a kind declares about one layer (its `needs` function fills every field)
    Py_ssize_t kernel, bias      # parameter entries of the kernel and of a bias (0: none)
    Py_ssize_t z                 # elements per row of its z block: pre-activation, dropout
                                 # mask or pooling argmax (0: no z block)
    bint a_is_z                  # its output is z itself (a linear Dense or Conv)
    Py_ssize_t scratch           # elements per row of its scratch block (Conv: im2col)
    Py_ssize_t gemm_rows         # GEMM rows per batch row (Conv: oh*ow; 1 or 0 otherwise)
    Py_ssize_t row_work          # multiply-adds (or elementwise ops) per row of inference
    int logits                   # LOGITS_*


ctypedef struct Pass:
    # the state of one forward/backward pass that a kind may read
    bint training                # False: inference (Dropout is the identity)
    long long step               # optimizer steps so far (Dropout's mask stream)
    uint64_t seed                # the fit's seed (Dropout's mask key)
    int n_layers


cdef inline void elementwise_needs(const Layer* lay, LayerNeeds* needs, Py_ssize_t z,
                                   int logits) noexcept nogil:
    """The needs of a kind without parameters or scratch that works element by element
    (row_work = n_out): a z block of z elements per row (0: none), and `logits`."""
    needs.kernel = needs.bias = needs.scratch = needs.gemm_rows = 0
    needs.z, needs.a_is_z = z, False
    needs.row_work = lay.n_out
    needs.logits = logits


cdef inline int read_penalty(dict spec, Layer* lay) except -1:
    """Keras's weight regularizer factors (l1, l2, bias_l1, bias_l2; default 0)."""
    lay.pen.l1, lay.pen.l2 = spec.get("l1", 0.0), spec.get("l2", 0.0)
    lay.pen.bias_l1, lay.pen.bias_l2 = spec.get("bias_l1", 0.0), spec.get("bias_l2", 0.0)
    if not (lay.pen.l1 >= 0 and lay.pen.l2 >= 0 and lay.pen.bias_l1 >= 0
            and lay.pen.bias_l2 >= 0):
        raise ValueError("Engine: regularization factors must be >= 0")
    return 0


cdef inline int read_params(dict spec, Layer* lay, Py_ssize_t kernel, Py_ssize_t bias,
                            Py_ssize_t n_params) except -1:
    """The kernel's (and bias's) offsets into the flat parameters, checked in range."""
    lay.w_off, lay.b_off = spec.get("w_off", 0), spec.get("b_off", -1)
    lay.n_w, lay.n_b = kernel, bias
    if lay.w_off < 0 or lay.w_off + kernel > n_params or lay.b_off + bias > n_params:
        raise ValueError("Engine: parameter offsets out of range")
    return 0


cdef inline int require_same_width(Layer* lay, str kind) except -1:
    if lay.n_in != lay.n_out:
        raise ValueError(f"Engine: a {kind} layer keeps its width (n_in == n_out)")
    return 0
