"""What the installed distribution carries: the typing marker and the optional extras."""
import importlib.metadata
import importlib.resources

import pytest


def test_py_typed_marker_ships_with_the_package():
    assert importlib.resources.files("fastnn").joinpath("py.typed").is_file()


def test_optional_extras_are_declared():
    try:
        meta = importlib.metadata.metadata("fastnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastnn is imported from a source tree, not installed")
    assert {"onnx", "plot", "test"} <= set(meta.get_all("Provides-Extra"))
    assert meta["License-Expression"] == "BSD-3-Clause"
