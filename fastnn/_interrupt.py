"""Ctrl-C during fit: stop between engine calls, never inside one.

The compiled engine runs chunks of mini-batch steps without the GIL; a SIGINT that
arrives meanwhile would otherwise surface as KeyboardInterrupt right after the call
returns -- possibly before fit has recorded the steps the engine just took
(``optimizer.iterations``).  While fit runs, a handler defers the interrupt while the
engine is busy and raises it at the next safe point; outside engine calls it raises
at once, as Python's default handler does.  Only the main thread's default handler
is replaced, and only for the duration of fit.
"""
import signal
import threading


class InterruptGuard:
    """Context manager: ``busy`` marks an engine call; ``check()`` raises a deferred
    KeyboardInterrupt."""

    def __init__(self):
        self.busy = False
        self.pending = False
        self._previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.busy:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def check(self):
        """Raise the KeyboardInterrupt that arrived during the last engine call."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self.pending and exc_type is None:
            self.pending = False
            raise KeyboardInterrupt
        return False
