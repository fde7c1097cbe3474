"""The compiled kernels and their NumPy twins expose the same names and signatures."""
import inspect
import re

import numpy as np
import pytest

import fastnn._kernels as kernels
from fastnn._kernels import KERNEL_NAMES, reference

FUNCTIONS = [name for name in KERNEL_NAMES if name != "Engine"]


def _param_names(func):
    return [p for p in inspect.signature(func).parameters if p != "self"]


def _defaults(func):
    return {name: p.default for name, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _compiled_engine_init_params():
    """Parameter names of the compiled Engine's constructor.

    A cdef class's __init__ has no introspectable signature (it shows *args,
    **kwargs), but embedsignature=True writes it as the first line of the class
    docstring: "Engine(list layers, params, aux, int loss, ...)".
    """
    first = kernels.Engine.__doc__.strip().splitlines()[0]
    match = re.fullmatch(r"Engine\((.*)\)", first)
    assert match, f"unexpected Engine docstring header: {first!r}"
    names = []
    for arg in match.group(1).split(","):
        arg = arg.split("=")[0].strip()
        names.append(arg.split()[-1])  # drop a C type such as "list" or "int"
    return names


def _public_methods(cls):
    return {name for name, value in vars(cls).items()
            if not name.startswith("_") and callable(value)}


def test_kernel_names_are_exported_by_both_twins():
    assert len(set(KERNEL_NAMES)) == len(KERNEL_NAMES)
    assert set(KERNEL_NAMES) <= set(kernels.__all__)
    missing = [name for name in KERNEL_NAMES if not hasattr(reference, name)]
    assert missing == []
    kernel_like = {name for name in reference.__all__
                   if callable(getattr(reference, name))}
    assert kernel_like == set(KERNEL_NAMES)


def test_code_tables_are_shared():
    # the reference decodes the same activation / loss / metric / layer codes
    assert reference.ACTIVATIONS is kernels.ACTIVATIONS
    assert reference.LOSSES is kernels.LOSSES
    assert reference.METRICS is kernels.METRICS
    assert reference.LAYER_KINDS is kernels.LAYER_KINDS
    assert reference.OPTIMIZERS is kernels.OPTIMIZERS
    for table in (kernels.ACTIVATIONS, kernels.LOSSES, kernels.METRICS):
        assert sorted(table.values()) == list(range(len(table)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_signatures_match(name):
    compiled, twin = getattr(kernels, name), getattr(reference, name)
    assert _param_names(compiled) == _param_names(twin)
    # defaults (none today) must agree too
    assert _defaults(compiled) == _defaults(twin)


def test_engine_constructor_signatures_match():
    assert _compiled_engine_init_params() == _param_names(reference.Engine.__init__)


def test_engine_public_methods_match():
    assert _public_methods(kernels.Engine) == _public_methods(reference.Engine)


@pytest.mark.parametrize("method", sorted(_public_methods(reference.Engine)))
def test_engine_method_signatures_match(method):
    compiled = inspect.signature(getattr(kernels.Engine, method))
    twin = inspect.signature(getattr(reference.Engine, method))
    assert list(compiled.parameters) == list(twin.parameters)
    for name, param in compiled.parameters.items():
        assert param.default == twin.parameters[name].default, name


def test_engine_instances_expose_the_same_attributes():
    params, aux = np.zeros(6), np.zeros(1)
    layers = [{"kind": "dense", "n_in": 2, "n_out": 2, "w_off": 0, "b_off": 4}]
    compiled = kernels.Engine(layers, params, aux, kernels.LOSSES["mse"], False, [], 0.5)
    twin = reference.Engine(layers, params, aux, kernels.LOSSES["mse"], False, [], 0.5)
    for attr in ("params", "grads", "aux", "dtype", "max_rows"):
        assert hasattr(compiled, attr) and hasattr(twin, attr), attr
    assert compiled.params is params and twin.params is params
    assert compiled.aux is aux and twin.aux is aux
    assert compiled.dtype == twin.dtype == np.float64
    for engine in (compiled, twin):
        assert engine.grads.shape == params.shape and engine.grads.dtype == params.dtype
        assert not np.shares_memory(engine.grads, params)
