"""plot_history: the curves drawn are the history's numbers, on the axes asked for."""
import numpy as np
import pytest

import fastnn
from fastnn import Sequential
from fastnn._plot import plot_history
from fastnn.layers import Dense

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def history():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    y = (x[:, 0] > 0).astype(int)
    fastnn.set_random_seed(0)
    model = Sequential([Dense(4, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, epochs=6, validation_split=0.25, verbose=0)


def curves(axis):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in axis.get_lines()}


def test_every_metric_gets_its_panel_with_training_and_validation(history):
    fig = plot_history(history)
    assert isinstance(fig, matplotlib.figure.Figure)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "accuracy"
    epochs = [1, 2, 3, 4, 5, 6]
    assert curves(loss_ax) == {"training loss": (epochs, history.history["loss"]),
                               "validation loss": (epochs, history.history["val_loss"])}
    assert curves(acc_ax)["validation accuracy"] == (epochs, history.history["val_accuracy"])


def test_metrics_selects_and_one_axes_holds_them_all(history):
    fig, ax = plt.subplots()
    assert plot_history(history, metrics="loss", ax=ax) is fig
    assert set(curves(ax)) == {"training loss", "validation loss"}
    fig2, ax2 = plt.subplots()
    plot_history(history, metrics=["loss", "accuracy"], ax=ax2)
    assert len(ax2.get_lines()) == 4


def test_a_list_of_axes_gets_one_metric_each(history):
    fig, axes = plt.subplots(2, 1)
    assert plot_history(history, ax=axes) is fig
    assert [a.get_ylabel() for a in axes] == ["loss", "accuracy"]
    with pytest.raises(ValueError, match="ax"):
        plot_history(history, metrics=["loss"], ax=axes)


def test_a_dict_without_validation_and_a_png(tmp_path):
    fig = plot_history({"loss": [3.0, 2.0, 1.5]})
    (ax,) = fig.axes
    assert curves(ax) == {"training loss": ([1, 2, 3], [3.0, 2.0, 1.5])}
    fig.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("history_, metrics, error", [
    ({"loss": [1.0]}, ["accuracy"], ValueError),
    ({"loss": [1.0]}, 3, TypeError),
    ({}, None, ValueError),
    ([1.0, 2.0], None, TypeError),
])
def test_bad_arguments_raise(history_, metrics, error):
    with pytest.raises(error):
        plot_history(history_, metrics=metrics)


def test_matplotlib_is_imported_only_when_plotting(run_python):
    code = ("import sys, fastnn, fastnn._plot; "
            "print(sorted(m for m in sys.modules if m.startswith('matplotlib')))")
    assert run_python(["-c", code], check=True).stdout.strip() == "[]"


def test_utils_reexports_plot_history():
    utils = pytest.importorskip("fastnn.utils")
    assert utils.plot_history is plot_history
