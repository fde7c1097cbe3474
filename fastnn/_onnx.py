"""Export a Sequential model as a standard ONNX graph, for serving runtimes.

Design: each layer reports its computation as the spec dict the compiled engine
reads (``Layer._spec``: ``kind``, widths, activation code...).  One table maps each
layer kind to a function that appends that layer's ONNX nodes; another maps each
activation to its nodes.  A kind or activation missing from a table raises, so a
new layer cannot be exported silently wrong: it needs its own entry here.

The graph computes exactly what ``model.predict`` does, in the model's dtype
(float32 or float64), with a dynamic batch dimension:

- Dense: ``Gemm(x, kernel, bias)`` then its activation (Relu, Sigmoid, Tanh, Softmax over
  the last axis, ``x * Sigmoid(x)`` for swish, PRelu with the slope as a tensor of the
  model's dtype for leaky_relu);
- Dropout: nothing (the identity at inference);
- Normalization: ``(x - mean) / std`` with the layer's stored ``std``, which is
  already ``max(sqrt(variance), 1e-7)``, so the served model divides by the very
  same numbers;
- activation layers (kind "activation"): the activation's nodes;
- Conv1D/Conv2D (kind "conv") and MaxPooling1D/2D (kind "maxpool"): tensors stay
  channels last (NHWC) between layers, as in fastnn's rows, so each is wrapped in
  ``Transpose(0, 3, 1, 2)`` ... ``Transpose(0, 2, 3, 1)`` around ONNX's NCHW ``Conv``
  (kernel (kh, kw, c_in, f) -> (f, c_in, kh, kw), bias as its third input) or
  ``MaxPool``, with explicit pads from the layer's geometry: top/left as TensorFlow's
  "same" rule gives them, bottom/right whatever makes the output size the layer's
  (ONNX's MaxPool, like TensorFlow's, never lets a padded cell win).  A 1-D layer is
  the 2-D one at height 1 (``Reshape`` to (batch, 1, steps, c) and back); a
  convolution's activation follows over the channel axis.  onnxruntime has no float64
  Conv on the CPU, so a float64 model's convolutions are written as ``Pad``, then per
  window tap a strided ``Slice`` times that tap's (c_in, f) kernel (``MatMul``), all
  summed with the bias (``Sum``), on the NHWC tensor directly;
- Flatten and Reshape (no engine spec): ``Reshape`` to (batch, *output shape); C-order
  on channels-last tensors is exactly fastnn's row layout.

The ``onnx`` package is imported here only, when a model is exported.
"""
import numpy as np

#: Lowest opset accepted: PRelu, Softmax (last-axis semantics since 13), Gemm,
#: Relu, Sigmoid, Tanh, Sub, Div and Mul are all unchanged from opset 17 on.
MIN_OPSET = 17
DEFAULT_OPSET = 17

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("exporting to ONNX needs the onnx package: "
                          "pip install 'fastnn[onnx]'") from None
    return onnx


class _Graph:
    """The nodes and constant tensors of the graph being built, and the name of the
    tensor that the next layer reads."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.initializers = []
        self.current = INPUT_NAME
        self._count = 0

    def fresh(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def constant(self, stem, array):
        name = self.fresh(stem)
        array = np.ascontiguousarray(array, dtype=self.dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def shape(self, stem, dims):
        """An int64 shape tensor for Reshape; 0 keeps the batch dimension."""
        name = self.fresh(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.asarray([0, *dims], dtype=np.int64), name))
        return name

    def reshape(self, stem, dims):
        return self.node("Reshape", [self.current, self.shape(f"{stem}/shape", dims)],
                         f"{stem}/Reshape")

    def node(self, op, inputs, stem, **attributes):
        """Append one node; its single output becomes the current tensor."""
        out = self.fresh(stem)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attributes))
        self.current = out
        return out


# --------------------------------------------------------------------------- activations
def _act_linear(graph, stem, alpha):
    return graph.current


def _act_unary(op):
    def emit(graph, stem, alpha):
        return graph.node(op, [graph.current], f"{stem}/{op}")
    return emit


def _act_leaky_relu(graph, stem, alpha):
    # PRelu with a scalar slope tensor rather than LeakyRelu: LeakyRelu's alpha is a
    # 32-bit attribute, so a float64 model would be served with 0.01 rounded to float32
    slope = graph.constant(f"{stem}/slope", np.asarray(alpha))
    return graph.node("PRelu", [graph.current, slope], f"{stem}/PRelu")


def _act_swish(graph, stem, alpha):
    # x * sigmoid(x): ONNX has no Swish operator before opset 24
    x = graph.current
    s = graph.node("Sigmoid", [x], f"{stem}/Sigmoid")
    return graph.node("Mul", [x, s], f"{stem}/Mul")


def _act_softmax(graph, stem, alpha):
    return graph.node("Softmax", [graph.current], f"{stem}/Softmax", axis=-1)


ACTIVATION_NODES = {
    "linear": _act_linear,
    "relu": _act_unary("Relu"),
    "sigmoid": _act_unary("Sigmoid"),
    "tanh": _act_unary("Tanh"),
    "leaky_relu": _act_leaky_relu,
    "swish": _act_swish,
    "softmax": _act_softmax,
}


def _activation(graph, stem, code, alpha):
    from fastnn._kernels import ACTIVATIONS

    names = [name for name, value in ACTIVATIONS.items() if value == code]
    emit = ACTIVATION_NODES.get(names[0]) if names else None
    if emit is None:
        raise ValueError(f"export: activation code {code!r} of layer {stem!r} has no ONNX "
                         "mapping")
    return emit(graph, stem, alpha)


# --------------------------------------------------------------------------- layer kinds
# Each takes the layer's input shape (without the batch axis) as its last argument.
def _dense(graph, layer, spec, stem, in_shape):
    inputs = [graph.current, graph.constant(f"{stem}/kernel", layer.kernel)]
    if getattr(layer, "bias", None) is not None:
        inputs.append(graph.constant(f"{stem}/bias", layer.bias))
    graph.node("Gemm", inputs, f"{stem}/Gemm")
    return _activation(graph, stem, spec["activation"], spec.get("alpha", 0.0))


def _dropout(graph, layer, spec, stem, in_shape):
    return graph.current


def _normalization(graph, layer, spec, stem, in_shape):
    mean = graph.constant(f"{stem}/mean", layer.mean)
    std = graph.constant(f"{stem}/std", layer._std)
    centred = graph.node("Sub", [graph.current, mean], f"{stem}/Sub")
    return graph.node("Div", [centred, std], f"{stem}/Div")


def _activation_layer(graph, layer, spec, stem, in_shape):
    return _activation(graph, stem, spec["activation"], spec.get("alpha", 0.0))


def _window_pads(geom):
    """ONNX pads [top, left, bottom, right]: the geometry's top/left, and at the end as
    many as the last window needs beyond the input (0 when it ends inside, "valid")."""
    h, w, _, kh, kw, sh, sw, pt, pl, oh, ow, _ = geom
    return [pt, pl, max((oh - 1) * sh + kh - h - pt, 0), max((ow - 1) * sw + kw - w - pl, 0)]


def _windowed(graph, stem, geom, in_shape, op, extra_inputs, **attributes):
    """Reshape to NHWC (1-D: height 1), transpose to NCHW, `op`, back to NHWC."""
    h, w, c, kh, kw, sh, sw = geom[:7]
    if len(in_shape) != 3:
        graph.reshape(f"{stem}/as2d", (h, w, c))
    graph.node("Transpose", [graph.current], f"{stem}/to_nchw", perm=[0, 3, 1, 2])
    graph.node(op, [graph.current, *extra_inputs], f"{stem}/{op}", pads=_window_pads(geom),
               strides=[sh, sw], **attributes)
    graph.node("Transpose", [graph.current], f"{stem}/to_nhwc", perm=[0, 2, 3, 1])
    if len(in_shape) != 3:
        graph.reshape(f"{stem}/as1d", (geom[10], geom[11]))
    return graph.current


def _conv(graph, layer, spec, stem, in_shape):
    geom = spec["geom"]
    h, w, c, kh, kw = geom[:5]
    kernel = np.asarray(layer.kernel).reshape(kh, kw, c, geom[11])
    bias = getattr(layer, "bias", None)
    if graph.dtype == np.float64:
        _conv_by_matmul(graph, stem, geom, in_shape, kernel, bias)
    else:
        inputs = [graph.constant(f"{stem}/kernel", kernel.transpose(3, 2, 0, 1))]
        if bias is not None:
            inputs.append(graph.constant(f"{stem}/bias", bias))
        _windowed(graph, stem, geom, in_shape, "Conv", inputs, kernel_shape=[kh, kw])
    return _activation(graph, stem, spec["activation"], spec.get("alpha", 0.0))


def _conv_by_matmul(graph, stem, geom, in_shape, kernel, bias):
    """The convolution on NHWC as a sum over the window's taps of strided slices times
    the tap's (c_in, f) kernel: onnxruntime's CPU Conv has no float64 kernel, while
    Pad, Slice, MatMul and Sum do, so float64 models are served in float64."""
    h, w, c, kh, kw, sh, sw, pt, pl, oh, ow, f = geom
    if len(in_shape) != 3:
        graph.reshape(f"{stem}/as2d", (h, w, c))
    top, left, bottom, right = _window_pads(geom)
    if top or left or bottom or right:
        pads = np.asarray([0, top, left, 0, 0, bottom, right, 0], dtype=np.int64)
        name = graph.fresh(f"{stem}/pads")
        graph.initializers.append(graph.onnx.numpy_helper.from_array(pads, name))
        graph.node("Pad", [graph.current, name], f"{stem}/Pad")
    padded = graph.current

    def ints(values):
        name = graph.fresh(f"{stem}/slice")
        graph.initializers.append(graph.onnx.numpy_helper.from_array(
            np.asarray(values, dtype=np.int64), name))
        return name

    axes, steps = ints([1, 2]), ints([sh, sw])
    terms = []
    for i in range(kh):
        for j in range(kw):
            tap = graph.node("Slice", [padded, ints([i, j]),
                                       ints([i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1]),
                                       axes, steps], f"{stem}/Slice")
            terms.append(graph.node("MatMul", [tap, graph.constant(f"{stem}/kernel", kernel[i, j])],
                                    f"{stem}/MatMul"))
    if bias is not None:
        terms.append(graph.constant(f"{stem}/bias", bias))
    if len(terms) > 1:
        graph.node("Sum", terms, f"{stem}/Sum")
    if len(in_shape) != 3:
        graph.reshape(f"{stem}/as1d", (ow, f))
    return graph.current


def _maxpool(graph, layer, spec, stem, in_shape):
    geom = spec["geom"]
    return _windowed(graph, stem, geom, in_shape, "MaxPool", [],
                     kernel_shape=[geom[3], geom[4]])


def _reshape(graph, layer, spec, stem, in_shape):
    return graph.reshape(stem, spec["shape"])


LAYER_NODES = {
    "dense": _dense,
    "dropout": _dropout,
    "normalization": _normalization,
    "activation": _activation_layer,
    "conv": _conv,
    "maxpool": _maxpool,
    "reshape": _reshape,
}


def _layer_nodes(graph, layer, spec, stem, in_shape):
    emit = LAYER_NODES.get(spec.get("kind"))
    if emit is None:
        raise ValueError(f"export: layer {stem!r} ({type(layer).__name__}, kind "
                         f"{spec.get('kind')!r}) has no ONNX mapping")
    emit(graph, layer, spec, stem, in_shape)


def _layer_spec(layer, offset, aux_offset, out_shape):
    """The layer's engine spec; Flatten and Reshape, which have none (they only rename
    the row's shape), export as a reshape to their output shape."""
    from fastnn.layers import Flatten, Reshape

    spec = layer._spec(offset, aux_offset)
    if spec is None and isinstance(layer, (Flatten, Reshape)):
        return {"kind": "reshape", "shape": tuple(out_shape)}
    if spec is None:
        raise ValueError(f"export: layer {layer.name!r} ({type(layer).__name__}) has no "
                         "ONNX mapping")
    return spec


# --------------------------------------------------------------------------- the model
def check_opset(opset_version):
    if opset_version is None:
        return DEFAULT_OPSET
    if isinstance(opset_version, bool) or not isinstance(opset_version, (int, np.integer)):
        raise TypeError(f"opset_version must be an int, got {type(opset_version).__name__}")
    onnx = _import_onnx()
    highest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset_version <= highest:
        raise ValueError(f"opset_version must be in [{MIN_OPSET}, {highest}] (the installed "
                         f"onnx's newest), got {opset_version}")
    return int(opset_version)


def to_onnx(model, opset_version=DEFAULT_OPSET):
    """The ONNX ModelProto of a built Sequential model.

    Input ``"input"`` of shape (batch, *input shape) and output ``"output"`` of shape
    (batch, *output shape), both channels last and of the model's dtype, as
    ``model.predict``'s; ``batch`` is dynamic.
    """
    onnx = _import_onnx()
    helper = onnx.helper
    from fastnn._version import __version__

    graph = _Graph(onnx, model.dtype)
    shapes = model._layer_shapes(model._input_shape)
    for index, (layer, (offset, aux_offset)) in enumerate(
            zip(model.layers, model._offsets, strict=True)):
        stem = layer.name or f"{type(layer).__name__.lower()}_{index}"
        spec = _layer_spec(layer, offset, aux_offset, shapes[index + 1])
        _layer_nodes(graph, layer, spec, stem, shapes[index])
    if graph.current == INPUT_NAME:
        # nothing but identities (or no layers with nodes): the output still needs a node
        graph.node("Identity", [INPUT_NAME], OUTPUT_NAME)
    _rename(graph.nodes, graph.current, OUTPUT_NAME)

    elem = helper.np_dtype_to_tensor_dtype(graph.dtype)
    body = helper.make_graph(
        graph.nodes, model.name,
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["batch", *shapes[0]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", *shapes[-1]])],
        initializer=graph.initializers)
    opsets = [helper.make_opsetid("", opset_version)]
    proto = helper.make_model(body, opset_imports=opsets, producer_name="fastnn",
                              producer_version=__version__,
                              doc_string=f"fastnn Sequential model {model.name!r}")
    # the oldest IR version that can carry this opset, so older runtimes load the file
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _rename(nodes, old, new):
    """Give the final tensor the graph output's name (it is produced by exactly one node)."""
    for node in nodes:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def export(model, filepath, opset_version=None, verbose=False):
    """Write `model` as an ONNX file at `filepath` (see ``Sequential.export``)."""
    opset_version = check_opset(opset_version)
    proto = to_onnx(model, opset_version)
    data = proto.SerializeToString()
    with open(filepath, "wb") as f:
        f.write(data)
    if verbose:
        print(f"Saved ONNX model ({len(data):,} bytes, opset {opset_version}) at {filepath}")
