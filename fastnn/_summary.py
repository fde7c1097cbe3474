"""The text of ``Sequential.summary()``: one row per layer, then the parameter totals."""
import numpy as np


def summary_text(model, line_length=None):
    """Keras-style table of `model`'s layers (name and type, output shape, parameter
    count); an unbuilt model shows "?" shapes and no counts."""
    rows, trainable, fixed = [], 0, 0
    built = model.built
    shape = model._input_shape
    for layer in model.layers:
        label = f"{layer.name} ({type(layer).__name__})"
        if not built:
            out, count = "?", "0 (unbuilt)"
        else:
            shape = layer.compute_output_shape(shape)
            out = "(" + ", ".join(["None", *(str(s) for s in shape)]) + ")"
            n_train = sum(int(np.size(w)) for w in layer.trainable_weights)
            n_all = layer.count_params()
            trainable, fixed = trainable + n_train, fixed + n_all - n_train
            count = f"{n_all:,}"
        rows.append((label, out, count))
    head = ("Layer (type)", "Output Shape", "Param #")
    widths = [max(len(r[c]) for r in [head, *rows]) + 3 for c in range(3)]
    if line_length is not None and line_length > sum(widths):
        widths[0] += line_length - sum(widths)

    def fmt(row):
        return "".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([f'Model: "{model.name}"', "-" * sum(widths), fmt(head),
                      "=" * sum(widths), *(fmt(r) for r in rows), "=" * sum(widths),
                      f"Total params: {trainable + fixed:,}",
                      f"Trainable params: {trainable:,}",
                      f"Non-trainable params: {fixed:,}"])
