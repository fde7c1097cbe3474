"""Callbacks with Keras 3's hooks and semantics.

Every Keras 3 hook exists on `Callback`; fit, evaluate and predict call a hook only
when some callback overrides it.  The per-batch training hooks make fit run the
compiled engine one batch at a time; without them, fit runs chunks of batches (whole
epochs for small data) per engine call.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import csv
    from collections.abc import Callable, Iterable
    from typing import IO, Any, Literal

    from fastnn._typing import FloatArray, Logs, PathLike
    from fastnn.models import Sequential

_HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
          "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
          "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
          "on_predict_batch_begin", "on_predict_batch_end")
_TRAIN_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin",
                      "on_batch_end")


class Callback:
    """Base class.  ``self.model`` and ``self.params`` (``{"epochs", "steps",
    "verbose"}``) are set by fit; override any hook.

    ``on_batch_begin`` / ``on_batch_end`` are Keras's aliases of
    ``on_train_batch_begin`` / ``on_train_batch_end``.
    """

    # The model that fit / evaluate / predict runs (None until set_model; every hook runs
    # after it), so a hook can write ``self.model.stop_training = True``.
    model: Sequential

    def __init__(self) -> None:
        self.model = None  # type: ignore[assignment]
        self.params: dict[str, Any] = {}

    def set_model(self, model: Sequential) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_predict_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def _overrides(self, hook: str) -> bool:
        return getattr(type(self), hook) is not getattr(Callback, hook)


class CallbackList:
    """Calls each overridden hook on every callback, in order.

    ``wants(hook)`` tells the loops whether any callback overrides `hook` (the batch
    aliases count for the train-batch hooks), so that unused hooks cost nothing.
    """

    def __init__(self, callbacks: Iterable[Callback], model: Sequential,
                 params: dict[str, Any]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self._active = {hook: [cb for cb in self.callbacks if cb._overrides(hook)
                               or (hook in ("on_train_batch_begin", "on_train_batch_end")
                                   and cb._overrides(hook.replace("train_", "")))]
                        for hook in _HOOKS}

    def wants(self, hook: str) -> bool:
        return bool(self._active[hook])

    @property
    def wants_train_batches(self) -> bool:
        return self.wants("on_train_batch_begin") or self.wants("on_train_batch_end")

    def call(self, hook: str, *args: Any) -> None:
        for cb in self._active[hook]:
            getattr(cb, hook)(*args)


class History(Callback):
    """Records the logs of every epoch: ``history[key]`` is a list, ``epoch`` the indices."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


_MINIMISED = ("loss", "mse", "mae", "mean_squared_error", "mean_absolute_error")
_MAXIMISED = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy",
              "sparse_categorical_accuracy")


class _Monitor(Callback):
    """A monitored quantity and its direction (Keras 3's MonitorCallback rules).

    mode="auto" knows the direction of "loss" and of the compiled metrics (accuracies
    up, errors down), with or without the "val_" prefix; any other name raises
    ValueError at the first epoch end, as Keras 3 does.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str, got {type(monitor).__name__}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)):
            raise TypeError(f"min_delta must be a number, got {min_delta!r}")
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self._direction: int | None = None   # +1 maximise, -1 minimise; set at the 1st epoch end

    def _resolve_direction(self) -> int:
        if self.mode != "auto":
            return 1 if self.mode == "max" else -1
        name = self.monitor.removeprefix("val_")
        compiled = getattr(self.model, "_metric_names", [])
        if name in _MINIMISED and (name == "loss" or name in compiled):
            return -1
        if name in _MAXIMISED and name in compiled:
            return 1
        raise ValueError(
            f"{type(self).__name__} callback received monitor={self.monitor}, but fastnn "
            "cannot tell whether that quantity should be maximized or minimized. Pass "
            "mode='max' to monitor the highest value, or mode='min' for the lowest.")

    def _improved(self, value: float, reference: float | None) -> bool:
        """NaN never improves; the first finite value always does."""
        if math.isnan(value):
            return False
        if reference is None:
            return True
        if self._direction > 0:  # type: ignore[operator]  # resolved by _current first
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def _current(self, logs: Logs | None, what: str) -> float | None:
        if self._direction is None:
            self._direction = self._resolve_direction()
        value = (logs or {}).get(self.monitor)
        if value is None:
            available = ",".join(logs or {})
            warnings.warn(f"{what} conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {available}", stacklevel=3)
        return value


class EarlyStopping(_Monitor):
    """Stop training when a monitored quantity has stopped improving (Keras 3).

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float, default 0
        An improvement must exceed this (in absolute value).
    patience : int, default 0
        Epochs without improvement after which training stops.
    verbose : int, default 0
        1 prints the epoch at which training stopped.
    mode : {"auto", "min", "max"}, default "auto"
        "auto" minimises the loss and error metrics and maximises accuracies; any other
        monitored name raises ValueError (Keras 3).
    baseline : float, optional
        The patience counter only resets on an improvement that also beats `baseline`.
    restore_best_weights : bool, default False
        Restore the best epoch's weights at the end of training, whether or not it
        stopped early (Keras 3).  NaN is never an improvement.
    start_from_epoch : int, default 0
        Epochs to wait before monitoring starts.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        if isinstance(start_from_epoch, bool) or not isinstance(start_from_epoch, int) \
                or start_from_epoch < 0:
            raise ValueError(f"start_from_epoch must be an int >= 0, got {start_from_epoch!r}")
        if baseline is not None and (isinstance(baseline, bool)
                                     or not isinstance(baseline, (int, float))):
            raise TypeError(f"baseline must be a number or None, got {baseline!r}")
        self.patience = patience
        self.verbose = verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best: float | None = None
        self.best_weights: list[FloatArray] | None = None
        self.wait = 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        value = self._current(logs, "Early stopping")
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._improved(value, self.best):
            self.best = value
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training when the loss is NaN or infinite.

    Keras checks after every batch; fastnn checks the epoch's loss, so that whole epochs
    keep running in one compiled call.  A NaN batch makes the epoch loss NaN, so training
    stops after that epoch instead of after that batch (the weights are NaN either way).

    Parameters
    ----------
    raise_error : bool, default False
        Raise RuntimeError instead of stopping quietly (Keras 3.10+).
    """

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"loss is {loss} at epoch {epoch + 1}; training stopped")
            self.model.stop_training = True


class ModelCheckpoint(_Monitor):
    """Save the model (or its weights) at the end of every epoch, or only when the
    monitored quantity improved.

    Parameters
    ----------
    filepath : str or os.PathLike
        May hold ``{epoch}`` (1-based) and any log key, with format specs:
        ``"ckpt-{epoch:02d}-{val_loss:.2f}.fastnn"``.  Written with ``model.save`` or
        ``model.save_weights`` (fastnn's one-file format, at exactly that path).
    monitor : str, default "val_loss"
    verbose : int, default 0
        1 prints a line per save.
    save_best_only : bool, default False
        Save only when `monitor` improved on the best value seen.
    save_weights_only : bool, default False
    mode : {"auto", "min", "max"}, default "auto"
    save_freq : "epoch" or int, default "epoch"
        An int saves every that many batches (runs fit batch by batch).
    initial_value_threshold : float, optional
        With save_best_only, the value to beat before the first save.
    """

    def __init__(self, filepath: PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq: Literal["epoch"] | int = "epoch",
                 initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, 0)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or an int >= 1, got {save_freq!r}")
        self.save_freq = save_freq
        self.best: float | None = (None if initial_value_threshold is None
                                   else float(initial_value_threshold))
        self._batches_since_save = 0
        self._epoch = 0

    def _overrides(self, hook: str) -> bool:
        # only a batch-frequency checkpoint needs fit to stop after every batch
        if hook in ("on_train_batch_end", "on_batch_end"):
            return self.save_freq != "epoch"
        return super()._overrides(hook)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:  # type: ignore[operator]  # an int here
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self._direction is None and self.save_best_only:
            self._direction = self._resolve_direction()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch: int, batch: int | None, logs: Logs | None) -> str:
        fields: dict[str, Any] = dict(logs or {})
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(epoch=epoch + 1, **fields)
        except KeyError as exc:
            raise KeyError(f"ModelCheckpoint: filepath {self.filepath!r} refers to "
                           f"{exc.args[0]!r}, which is not in the logs "
                           f"({', '.join(fields)})") from None

    def _save(self, epoch: int, batch: int | None, logs: Logs | None) -> None:
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            value = self._current(logs, "Can save best model only with "
                                        f"{self.monitor} available, skipping. Checkpoint")
            if value is None or not self._improved(value, self.best):
                return
            self.best = value
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of every epoch.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new_lr`` (0-based epoch, current rate); a one-argument
        ``schedule(epoch)`` also works, as in Keras.
    verbose : int, default 0
        1 prints the rate set at each epoch.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        optimizer = self.model.optimizer
        current = _current_rate(optimizer)
        try:
            lr = self.schedule(epoch, current)
        except TypeError:   # the old one-argument form
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
            raise ValueError(f'The output of the "schedule" function should be a float, '
                             f"got {lr!r}")
        lr = float(lr)
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"LearningRateScheduler: schedule returned {lr}")
        optimizer.learning_rate = lr
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = _current_rate(self.model.optimizer)


def _current_rate(optimizer: Any) -> float:
    lr = optimizer.learning_rate
    if callable(lr):
        raise ValueError("this callback sets the learning rate, but the optimizer's "
                         "learning_rate is a schedule (a callable); pass a float")
    return float(lr)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by `factor` when `monitor` stopped improving for
    `patience` epochs (Keras 3).

    Parameters
    ----------
    monitor : str, default "val_loss"
    factor : float, default 0.1
        In (0, 1).
    patience : int, default 10
    verbose : int, default 0
    mode : {"auto", "min", "max"}, default "auto"
    min_delta : float, default 1e-4
    cooldown : int, default 0
        Epochs to wait after a reduction before counting again.
    min_lr : float, default 0
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        self.factor = float(factor)
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = float(min_lr)
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = _current_rate(optimizer)
        value = self._current(logs, "Learning rate reduction is")
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value, self.best):
            self.best = value
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = _current_rate(optimizer)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    optimizer.learning_rate = new
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                              f"rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Write every epoch's logs as one CSV row (header from the first epoch's keys,
    sorted; ``epoch`` first).

    Parameters
    ----------
    filename : str or os.PathLike
    separator : str, default ","
    append : bool, default False
        Append to an existing file (no second header if it already has one).
    """

    def __init__(self, filename: PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self.writer: csv.DictWriter[str] | None = None
        # open between on_train_begin and on_train_end (the hooks that use it run between)
        self.csv_file: IO[str] = None  # type: ignore[assignment]
        self._header = True

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                self._header = not f.readline()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = None
        self.writer = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            # Keras: rows of a run without validation still get val_ columns
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            import csv  # only CSVLogger needs it; kept out of `import fastnn`

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch", *self.keys],
                                         delimiter=self.sep)
            if self._header:
                self.writer.writeheader()
        row = {"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}}
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None
