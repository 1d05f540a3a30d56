"""Stopping a long run cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, a job scheduler).

Inside :func:`stop_on_signals`, either signal raises :class:`StopRequested` in the main thread,
so that ``finally`` blocks run and the caller can say how to continue. Code that must not be
cut in the middle (mmengine writing a checkpoint during training) runs inside
:func:`deferred_stop`: a first signal is then only recorded, and :func:`check_stop` raises it
at the next safe point (``StopOnSignalHook`` calls it after each training iteration); a second
signal raises at once, for a run that hangs.
"""
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = dict(pid=None, pending=None, defer=False)


class StopRequested(KeyboardInterrupt):
    """A stop asked for by a signal.

    Attributes:
        signum: the signal number; ``name``: e.g. ``'SIGTERM'``; ``exit_code``: ``128 + signum``,
            what a shell reports for a process ended by the signal.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + self.signum
        super().__init__(f'stopped by {self.name}')


def _handle(signum, frame):
    if os.getpid() != _state['pid']:
        # a forked child (a data loader worker): behave as without the handler
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state['defer'] and _state['pending'] is None:
        _state['pending'] = signum
        return
    _state['pending'] = None
    raise StopRequested(signum)


@contextmanager
def stop_on_signals(signums: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, ``signums`` raise :class:`StopRequested` (in the main thread; elsewhere
    signal handlers cannot be set and the block runs unchanged). The previous handlers are
    restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handle) for s in signums}
    _state.update(pid=os.getpid(), pending=None, defer=False)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.update(pid=None, pending=None, defer=False)


def set_deferred(defer: bool) -> None:
    """Start (``True``) or end deferring stops; see :func:`deferred_stop`."""
    _state['defer'] = bool(defer)


@contextmanager
def deferred_stop() -> Iterator[None]:
    """Within the block, a first stop signal is recorded, not raised; :func:`check_stop`
    raises it. A pending stop is raised when the block ends."""
    set_deferred(True)
    try:
        yield
    finally:
        set_deferred(False)
    check_stop()


def check_stop() -> None:
    """Raise :class:`StopRequested` if a stop signal arrived while stops were deferred."""
    signum = _state['pending']
    if signum is not None:
        _state['pending'] = None
        raise StopRequested(signum)
