"""Learning curves: ``plot_history`` draws each metric of a fit with its validation curve.

The course diagnoses bias and variance from these two curves: a high training loss is
bias, a validation loss far above the training loss is variance.  matplotlib is
imported here only, when a plot is drawn (``pip install 'fastnn[plot]'``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    from fastnn.callbacks import History


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plot_history needs matplotlib: pip install 'fastnn[plot]'") from None
    return plt


def _logs(history):
    """(name -> list of per-epoch values, epoch indices or None) from a History or a dict."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise TypeError("history must be a History (what fit returns) or a dict of "
                        f"per-epoch lists, got {type(history).__name__}")
    epochs = getattr(history, "epoch", None)
    return logs, epochs


def _metric_names(logs, metrics):
    if metrics is None:
        names = [k for k in logs if not k.startswith("val_")]
        if not names:  # only validation curves were recorded
            names = [k[len("val_"):] for k in logs]
    elif isinstance(metrics, str):
        names = [metrics]
    elif isinstance(metrics, Sequence) and all(isinstance(m, str) for m in metrics):
        names = list(metrics)
    else:
        raise TypeError(f"metrics must be None, a name or a list of names, got {metrics!r}")
    if not names:
        raise ValueError("metrics: the history holds no curves to plot")
    for name in names:
        if name not in logs and f"val_{name}" not in logs:
            raise ValueError(f"metrics: {name!r} is not in the history; it has "
                             f"{sorted(logs)}")
    return names


def _axes_for(ax, n_metrics, plt):
    """One Axes per metric: a new figure's, or the caller's (one Axes holds them all)."""
    if ax is None:
        fig, axes = plt.subplots(1, n_metrics, figsize=(4.5 * n_metrics, 3.5), squeeze=False)
        return fig, list(axes[0])
    if hasattr(ax, "plot"):
        return ax.figure, [ax] * n_metrics
    if isinstance(ax, Sequence) or hasattr(ax, "flat"):
        axes = list(getattr(ax, "flat", ax))
        if len(axes) != n_metrics or not all(hasattr(a, "plot") for a in axes):
            raise ValueError(f"ax: {len(axes)} axes given for {n_metrics} metrics")
        return axes[0].figure, axes
    raise TypeError(f"ax must be a matplotlib Axes or a list of them, got {type(ax).__name__}")


def plot_history(history: History | Mapping[str, Sequence[float]],
                 metrics: str | Sequence[str] | None = None, ax: Any = None) -> Any:
    """Plot the loss and metrics of a fit against the epoch, each with its validation curve.

    Parameters
    ----------
    history : History or dict
        What ``model.fit`` returns (its ``.history`` is used), or a dict mapping
        names ("loss", "accuracy", "val_loss", ...) to per-epoch lists.
    metrics : str or list of str, optional
        Names to draw, without the "val_" prefix; each gets its training curve (solid)
        and, when recorded, its validation curve (dashed).  Default: every name in
        the history, loss first, as recorded.
    ax : matplotlib Axes or list of Axes, optional
        Where to draw: one Axes holds every curve, a list gives one Axes per metric.
        Default: a new figure with one panel per metric, side by side.

    Returns
    -------
    matplotlib.figure.Figure
        The figure that holds the curves.

    Examples
    --------
    >>> history = model.fit(X, y, validation_split=0.2, epochs=50, verbose=0)  # doctest: +SKIP
    >>> fig = fastnn.utils.plot_history(history, metrics=["loss"])  # doctest: +SKIP
    >>> fig.savefig("learning_curves.png")  # doctest: +SKIP
    """
    logs, epochs = _logs(history)
    names = _metric_names(logs, metrics)
    plt = _pyplot()
    fig, axes = _axes_for(ax, len(names), plt)
    for name, axis in zip(names, axes, strict=True):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            values = list(logs.get(key, ()))
            if not values:
                continue
            # epochs are counted from 1, continuing where an earlier fit stopped
            xs = ([e + 1 for e in epochs] if epochs is not None and len(epochs) == len(values)
                  else range(1, len(values) + 1))
            axis.plot(xs, values, style, label="training " + name if key == name
                      else "validation " + name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.legend()
    return fig
