"""Every public signature against Keras 3's, programmatically, so that drift fails CI.

For each pair (fastnn object, Keras object):

- fastnn's positional parameters are exactly a prefix of Keras's, in order (a course
  notebook's ``model.fit(X, y, 32, 10)`` means the same thing in both);
- every Keras parameter exists in fastnn with Keras's default, or is listed in
  MISSING (with the reason) or DEFAULTS (a documented default difference);
- fastnn's own extra parameters are keyword-only, where Keras takes ``**kwargs``.

Entries of MISSING that fastnn has meanwhile implemented are tolerated, so that
adding a parameter never breaks this test; implementing it with a different default
or position does.
"""
import inspect

import pytest

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from fastnn import callbacks as fcb  # noqa: E402
from fastnn import layers as fl  # noqa: E402
from fastnn import losses as floss  # noqa: E402
from fastnn import optimizers as fopt  # noqa: E402
from fastnn import utils as futils  # noqa: E402

_NOT_YET = "not implemented in fastnn yet (see README, Differences from Keras)"
_LOSS_EXTRAS = {"label_smoothing": _NOT_YET, "axis": "2-D (n, k) outputs only",
                "reduction": "always Keras's default, the mean over the batch",
                "name": "losses are identified by class", "dtype": "the model's dtype rules",
                "ignore_class": _NOT_YET}
_OPT_EXTRAS = {"weight_decay": _NOT_YET, "clipnorm": _NOT_YET, "clipvalue": _NOT_YET,
               "global_clipnorm": _NOT_YET, "amsgrad": _NOT_YET,
               "use_ema": "no EMA of weights", "ema_momentum": "no EMA of weights",
               "ema_overwrite_frequency": "no EMA of weights",
               "loss_scale_factor": "no mixed precision",
               "gradient_accumulation_steps": "one update per batch", "name": "unnamed"}

# (label, fastnn callable, Keras callable, {missing param, or fastnn's keyword-only extra
# where Keras takes no **kwargs: reason}, {param: reason for a different default})
CASES = [
    ("Sequential", fastnn.Sequential, keras.Sequential.__init__,
     {"dtype": "fastnn extra (keyword-only): the model's float32/float64 precision"}, {}),
    ("fit", fastnn.Sequential.fit, keras.Sequential.fit,
     {}, {}),
    ("evaluate", fastnn.Sequential.evaluate, keras.Sequential.evaluate, {},
     {"verbose": "fastnn's evaluate/predict print nothing unless asked (API.md)"}),
    ("predict", fastnn.Sequential.predict, keras.Sequential.predict, {},
     {"verbose": "fastnn's evaluate/predict print nothing unless asked (API.md)"}),
    ("train_on_batch", fastnn.Sequential.train_on_batch, keras.Sequential.train_on_batch,
     {}, {}),
    ("test_on_batch", fastnn.Sequential.test_on_batch, keras.Sequential.test_on_batch, {}, {}),
    ("predict_on_batch", fastnn.Sequential.predict_on_batch,
     keras.Sequential.predict_on_batch, {}, {}),
    ("compile", fastnn.Sequential.compile, keras.Sequential.compile,
     {"loss_weights": "one output", "weighted_metrics": "metrics are unweighted",
      "run_eagerly": "always compiled", "steps_per_execution": "fit chunks batches itself",
      "jit_compile": "always compiled", "auto_scale_loss": "no mixed precision"},
     {"optimizer": "Adam by default; the course never uses Keras's RMSprop (API.md)"}),
    ("summary", fastnn.Sequential.summary, keras.Sequential.summary,
     {"expand_nested": "no nested models", "show_trainable": "every weight is trainable "
      "except Normalization's statistics", "layer_range": "whole model only"}, {}),
    ("get_layer", fastnn.Sequential.get_layer, keras.Sequential.get_layer, {}, {}),
    ("add", fastnn.Sequential.add, keras.Sequential.add, {}, {}),
    ("pop", fastnn.Sequential.pop, keras.Sequential.pop, {}, {}),
    ("build", fastnn.Sequential.build, keras.Sequential.build, {}, {}),
    ("get_weights", fastnn.Sequential.get_weights, keras.Sequential.get_weights, {}, {}),
    ("set_weights", fastnn.Sequential.set_weights, keras.Sequential.set_weights, {}, {}),
    ("count_params", fastnn.Sequential.count_params, keras.Sequential.count_params, {}, {}),
    ("save", fastnn.Sequential.save, keras.Sequential.save,
     {"overwrite": "always overwrites, atomically", "zipped": "one fastnn file"}, {}),
    ("save_weights", fastnn.Sequential.save_weights, keras.Sequential.save_weights, {}, {}),
    ("load_weights", fastnn.Sequential.load_weights, keras.Sequential.load_weights, {}, {}),
    ("Dense", fl.Dense, keras.layers.Dense,
     {"bias_regularizer": _NOT_YET, "activity_regularizer": _NOT_YET,
      "kernel_constraint": _NOT_YET, "bias_constraint": _NOT_YET,
      "lora_rank": "no LoRA", "lora_alpha": "no LoRA",
      "quantization_config": "no quantization"}, {}),
    ("Dropout", fl.Dropout, keras.layers.Dropout, {}, {}),
    ("Normalization", fl.Normalization, keras.layers.Normalization,
     {"invert": _NOT_YET}, {}),
    ("Normalization.adapt", fl.Normalization.adapt, keras.layers.Normalization.adapt, {}, {}),
    ("InputLayer", fl.InputLayer, keras.layers.InputLayer, {}, {}),
    ("Input", fl.Input, keras.Input, {}, {}),
    ("Layer.get_weights", fl.Layer.get_weights, keras.layers.Layer.get_weights, {}, {}),
    ("Layer.set_weights", fl.Layer.set_weights, keras.layers.Layer.set_weights, {}, {}),
    ("Layer.count_params", fl.Layer.count_params, keras.layers.Layer.count_params, {}, {}),
    ("BinaryCrossentropy", floss.BinaryCrossentropy, keras.losses.BinaryCrossentropy,
     _LOSS_EXTRAS, {}),
    ("CategoricalCrossentropy", floss.CategoricalCrossentropy,
     keras.losses.CategoricalCrossentropy, _LOSS_EXTRAS, {}),
    ("SparseCategoricalCrossentropy", floss.SparseCategoricalCrossentropy,
     keras.losses.SparseCategoricalCrossentropy, _LOSS_EXTRAS, {}),
    ("MeanSquaredError", floss.MeanSquaredError, keras.losses.MeanSquaredError,
     _LOSS_EXTRAS, {}),
    ("SGD", fopt.SGD, keras.optimizers.SGD, _OPT_EXTRAS, {}),
    ("Adam", fopt.Adam, keras.optimizers.Adam, _OPT_EXTRAS, {}),
    ("Callback", fcb.Callback, keras.callbacks.Callback, {}, {}),
    ("History", fcb.History, keras.callbacks.History, {}, {}),
    ("EarlyStopping", fcb.EarlyStopping, keras.callbacks.EarlyStopping, {}, {}),
    ("TerminateOnNaN", fcb.TerminateOnNaN, keras.callbacks.TerminateOnNaN, {}, {}),
    ("ModelCheckpoint", fcb.ModelCheckpoint, keras.callbacks.ModelCheckpoint, {}, {}),
    ("LearningRateScheduler", fcb.LearningRateScheduler,
     keras.callbacks.LearningRateScheduler, {}, {}),
    ("ReduceLROnPlateau", fcb.ReduceLROnPlateau, keras.callbacks.ReduceLROnPlateau, {}, {}),
    ("CSVLogger", fcb.CSVLogger, keras.callbacks.CSVLogger, {}, {}),
    ("to_categorical", futils.to_categorical, keras.utils.to_categorical, {}, {}),
    ("set_random_seed", futils.set_random_seed, keras.utils.set_random_seed, {}, {}),
]

# every Keras hook name exists on fastnn's Callback
HOOKS = [name for name in dir(keras.callbacks.Callback) if name.startswith("on_")]

# The activation layers, MAE/Huber, RMSprop/AdamW and the schedules arrive from other
# parts of issue 7; compare them as soon as they exist.
OPTIONAL = [
    ("Activation", fl, "Activation", keras.layers.Activation, {}),
    ("ReLU", fl, "ReLU", keras.layers.ReLU, {}),
    ("LeakyReLU", fl, "LeakyReLU", keras.layers.LeakyReLU, {}),
    ("Softmax", fl, "Softmax", keras.layers.Softmax, {}),
    ("MeanAbsoluteError", floss, "MeanAbsoluteError", keras.losses.MeanAbsoluteError,
     _LOSS_EXTRAS),
    ("Huber", floss, "Huber", keras.losses.Huber, _LOSS_EXTRAS),
    ("RMSprop", fopt, "RMSprop", keras.optimizers.RMSprop, _OPT_EXTRAS),
    ("AdamW", fopt, "AdamW", keras.optimizers.AdamW, _OPT_EXTRAS),
]


def _params(func):
    sig = inspect.signature(func)
    positional, keyword, var_kw = [], {}, False
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p)
        elif p.kind == p.KEYWORD_ONLY:
            keyword[p.name] = p
        elif p.kind == p.VAR_KEYWORD:
            var_kw = True
    return positional, keyword, var_kw


def _default(p):
    return "<required>" if p.default is inspect.Parameter.empty else p.default


def compare(label, ours, theirs, missing, defaults):
    f_pos, f_kw, _ = _params(ours)
    k_pos, k_kw, k_var = _params(theirs)
    problems = []
    f_names = [p.name for p in f_pos]
    k_names = [p.name for p in k_pos]
    if f_names != k_names[:len(f_names)]:
        problems.append(f"positional order {f_names} is not a prefix of Keras's {k_names}")
    ours_all = {p.name: p for p in f_pos} | f_kw
    for p in [*k_pos, *k_kw.values()]:
        if p.name not in ours_all:
            if p.name not in missing:
                problems.append(f"Keras parameter {p.name!r} is missing (and not listed)")
            continue
        want, got = _default(p), _default(ours_all[p.name])
        if want != got and p.name not in defaults:
            problems.append(f"{p.name!r} defaults to {got!r}, Keras {want!r}")
    for name in f_kw:
        if name not in k_kw and not k_var and name not in missing:
            problems.append(f"keyword-only extra {name!r} where Keras takes no **kwargs")
    assert not problems, f"{label}: " + "; ".join(problems)


@pytest.mark.parametrize("label, ours, theirs, missing, defaults", CASES,
                         ids=[c[0] for c in CASES])
def test_signature_matches_keras(label, ours, theirs, missing, defaults):
    compare(label, ours, theirs, missing, defaults)


@pytest.mark.parametrize("label, module, name, theirs, missing", OPTIONAL,
                         ids=[c[0] for c in OPTIONAL])
def test_signature_of_later_parts_matches_keras(label, module, name, theirs, missing):
    ours = getattr(module, name, None)
    if ours is None:
        pytest.skip(f"{name} is not in fastnn yet")
    compare(label, ours, theirs, missing, {})


@pytest.mark.parametrize("hook", HOOKS)
def test_every_keras_hook_exists(hook):
    assert callable(getattr(fcb.Callback, hook, None)), hook
    for name in ("model", "params"):
        assert hasattr(fcb.Callback(), name)


def test_a_drift_is_caught():
    """The comparison fails on the bug of issue 7: fit(x, y, epochs, batch_size, ...)."""

    def old_fit(self, x=None, y=None, epochs=1, batch_size=32):
        pass

    with pytest.raises(AssertionError, match="positional order"):
        compare("old fit", old_fit, keras.Sequential.fit, {}, {})
    with pytest.raises(AssertionError, match="defaults to"):
        compare("defaults", lambda x=None, y=None, batch_size=32: None, keras.Sequential.fit,
                {"epochs": "", "verbose": "", "callbacks": "", "validation_split": "",
                 "validation_data": "", "shuffle": "", "class_weight": "",
                 "sample_weight": "", "initial_epoch": "", "steps_per_epoch": "",
                 "validation_steps": "", "validation_batch_size": "", "validation_freq": ""},
                {})
