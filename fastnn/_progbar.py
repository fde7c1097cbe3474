"""Progress output of fit/evaluate/predict.

verbose=1 on a terminal or in Jupyter: a Keras-style bar for the epoch, redrawn in
place (``\\r``) at most every `interval` seconds: steps done/total, the bar, ETA
(elapsed once the epoch ends), time per step and the running loss and metrics.
verbose=2, or verbose=1 when the output is not a terminal (logs, CI, pipes): one line
per epoch.
Plain ASCII, no dependency: writes go to the current ``sys.stdout``.
"""
import sys
import time


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


def format_time(seconds):
    """Keras's unit choice: whole seconds, else milliseconds, else microseconds."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


def is_terminal(stream):
    """A terminal, or a Jupyter output stream: it renders ``\\r`` redraws although its
    isatty() is False, so course notebooks get the live bar, as with Keras."""
    if type(stream).__module__.startswith("ipykernel"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:   # a closed stream
        return False


class Progbar:
    """Progress of one loop of `steps` steps (an epoch, an evaluation).

    Parameters
    ----------
    steps : int
    verbose : 0, 1 or 2
    title : str, optional
        Printed before the steps, e.g. "Epoch 3/10".
    """

    WIDTH = 30
    interval = 0.1

    def __init__(self, steps, verbose, title=None):
        self.steps = steps
        self.verbose = verbose
        self.title = title
        self.stream = sys.stdout
        self.live = verbose == 1 and is_terminal(self.stream)
        self.start = time.perf_counter()
        self._last_draw = self.start
        self._last_len = 0
        if self.live and title:
            self._write(title + "\n")

    def wants_update(self):
        """True when a redraw is due (the caller then computes the logs)."""
        return self.live and time.perf_counter() - self._last_draw >= self.interval

    def update(self, done, logs):
        """Redraw the live bar after `done` steps."""
        now = time.perf_counter()
        self._last_draw = now
        elapsed = now - self.start
        per_step = elapsed / done if done else 0.0
        eta = per_step * (self.steps - done)
        self._draw(done, f"ETA {format_time(eta)}", per_step, logs)

    def finish(self, logs):
        """End the loop: final bar (live) or the one summary line."""
        if not self.verbose:
            return
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / self.steps if self.steps else 0.0
        if self.live:
            self._draw(self.steps, format_time(elapsed), per_step, logs)
            self._write("\n")
            return
        head = f"{self.title} - " if self.title else ""
        line = (f"{head}{self.steps}/{self.steps} - {format_time(elapsed)} "
                f"{format_time(per_step)}/step")
        self._write(line + (" - " + format_logs(logs) if logs else "") + "\n")

    def _draw(self, done, timing, per_step, logs):
        digits = len(str(self.steps))
        filled = self.WIDTH * done // self.steps if self.steps else self.WIDTH
        bar = "=" * filled
        if filled < self.WIDTH:
            bar = (bar + ">" if done else bar).ljust(self.WIDTH, ".")
        text = (f"{done:>{digits}}/{self.steps} [{bar}] - {timing} "
                f"{format_time(per_step)}/step")
        if logs:
            text += " - " + format_logs(logs)
        pad = max(self._last_len - len(text), 0)
        self._last_len = len(text)
        self._write("\r" + text + " " * pad)

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()
