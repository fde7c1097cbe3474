"""fastnn: small dense neural networks trained fast on the CPU, with the Keras API.

>>> import fastnn
>>> from fastnn import Sequential, Input
>>> from fastnn.layers import Dense
"""
from fastnn import (
           activations,
           callbacks,
           initializers,
           layers,
           losses,
           optimizers,
           regularizers,
           utils,
)
from fastnn._random import set_random_seed
from fastnn._threads import get_num_threads, set_num_threads
from fastnn._version import __version__
from fastnn.layers import Input, InputLayer
from fastnn.models import Sequential
from fastnn.saving import load_model

__all__ = ["Sequential", "Input", "InputLayer", "load_model", "set_random_seed",
           "set_num_threads", "get_num_threads", "__version__", "activations", "callbacks",
           "initializers", "layers", "losses", "optimizers", "regularizers", "utils"]
