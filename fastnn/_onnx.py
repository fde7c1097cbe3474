"""Export a Sequential model as a standard ONNX graph, for serving runtimes.

Design: each layer reports its computation as the spec dict the compiled engine
reads (``Layer._spec``: ``kind``, widths, activation code...).  One table maps each
layer kind to a function that appends that layer's ONNX nodes; another maps each
activation to its nodes.  A kind or activation missing from a table raises, so a
new layer cannot be exported silently wrong: it needs its own entry here (conv,
pooling and flatten layers plug in the same way).

The graph computes exactly what ``model.predict`` does, in the model's dtype
(float32 or float64), with a dynamic batch dimension:

- Dense: ``Gemm(x, kernel, bias)`` then its activation (Relu, Sigmoid, Tanh, Softmax over
  the last axis, ``x * Sigmoid(x)`` for swish, PRelu with the slope as a tensor of the
  model's dtype for leaky_relu);
- Dropout: nothing (the identity at inference);
- Normalization: ``(x - mean) / std`` with the layer's stored ``std``, which is
  already ``max(sqrt(variance), 1e-7)``, so the served model divides by the very
  same numbers;
- activation layers (kind "activation"): the activation's nodes.

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
def _dense(graph, layer, spec, stem):
    inputs = [graph.current, graph.constant(f"{stem}/kernel", layer.kernel)]
    if getattr(layer, "bias", None) is not None:
        inputs.append(graph.constant(f"{stem}/bias", layer.bias))
    graph.node("Gemm", inputs, f"{stem}/Gemm")
    return _activation(graph, stem, spec["activation"], spec.get("alpha", 0.0))


def _dropout(graph, layer, spec, stem):
    return graph.current


def _normalization(graph, layer, spec, stem):
    mean = graph.constant(f"{stem}/mean", layer.mean)
    std = graph.constant(f"{stem}/std", layer._std)
    centred = graph.node("Sub", [graph.current, mean], f"{stem}/Sub")
    return graph.node("Div", [centred, std], f"{stem}/Div")


def _activation_layer(graph, layer, spec, stem):
    return _activation(graph, stem, spec["activation"], spec.get("alpha", 0.0))


LAYER_NODES = {
    "dense": _dense,
    "dropout": _dropout,
    "normalization": _normalization,
    "activation": _activation_layer,
}


def _layer_nodes(graph, layer, spec, stem):
    emit = LAYER_NODES.get(spec.get("kind"))
    if emit is None:
        raise ValueError(f"export: layer {stem!r} ({type(layer).__name__}, kind "
                         f"{spec.get('kind')!r}) has no ONNX mapping")
    emit(graph, layer, spec, stem)


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

    Input ``"input"`` of shape (batch, n_features) and output ``"output"`` of shape
    (batch, n_outputs), both of the model's dtype; ``batch`` is dynamic.
    """
    onnx = _import_onnx()
    helper = onnx.helper
    from fastnn._version import __version__

    if len(model._input_shape) != 1 or any(layer._spec(0, 0) is None for layer in model.layers):
        raise ValueError("export: ONNX export covers dense models (inputs of shape "
                         "(n_features,), no Flatten/Reshape/convolution layers)")
    graph = _Graph(onnx, model.dtype)
    n_out = model._n_in
    for index, (layer, spec) in enumerate(zip(model.layers, model._specs(), strict=True)):
        stem = layer.name or f"{type(layer).__name__.lower()}_{index}"
        _layer_nodes(graph, layer, spec, stem)
        n_out = spec["n_out"]
    if graph.current == INPUT_NAME:
        # nothing but identities (or no layers with nodes): the output still needs a node
        graph.node("Identity", [INPUT_NAME], OUTPUT_NAME)
    _rename(graph.nodes, graph.current, OUTPUT_NAME)

    elem = helper.np_dtype_to_tensor_dtype(graph.dtype)
    body = helper.make_graph(
        graph.nodes, model.name,
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["batch", model._n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", n_out])],
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
