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
from typing import Iterator, Optional, Sequence

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = dict(previous={}, pending=None, defer=False)


def _restore_in_child() -> None:
    # A forked child (a data loader worker, VOCMetric's process pool) gets the handlers the
    # process had before: multiprocessing ends its pool workers with SIGTERM, and a worker
    # blocked in a lock would never run a Python-level handler.
    for s, handler in _state['previous'].items():
        signal.signal(s, handler)
    _state.update(previous={}, pending=None, defer=False)


os.register_at_fork(after_in_child=_restore_in_child)


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
    _state.update(previous=previous, pending=None, defer=False)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.update(previous={}, pending=None, defer=False)


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


def pending_stop() -> int:
    """The signal number of a stop recorded while deferred, or 0."""
    return int(_state['pending'] or 0)


def check_stop(signum: Optional[int] = None) -> None:
    """Raise :class:`StopRequested` for ``signum`` (default: the stop recorded while stops were
    deferred, if any); the recorded stop is cleared."""
    signum = pending_stop() if signum is None else signum
    if signum:
        _state['pending'] = None
        raise StopRequested(signum)
