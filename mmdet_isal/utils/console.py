"""A console a person can read: one progress line per long stage, the rest to a log file.

mmengine prints a great deal while a Runner lives (environment, the whole config, one line per
logging interval, warnings). :func:`quiet` sends all of it (``sys.stdout``, ``sys.stderr`` and
every logging handler created meanwhile) to a file, while :class:`Progress` keeps drawing on the
terminal the loop started with.
"""
import contextlib
import sys
import time
from typing import IO, Iterator, List, Optional

from mmengine.dist import is_main_process

# The streams people watch, saved by the outermost :func:`quiet` block still open.
_terminals: List[IO] = []


def terminal() -> IO:
    """The stream a person watches: ``sys.stdout`` as it was outside every :func:`quiet` block."""
    return _terminals[0] if _terminals else sys.stdout


@contextlib.contextmanager
def quiet(log_path: Optional[str]) -> Iterator[Optional[IO]]:
    """Send everything printed inside the block to ``log_path`` (appended); None: no change.

    Python-level redirection: loggers created inside the block (mmengine's Runner logger)
    bind their console handler to the file, so their later lines go there too; the file is
    therefore left open (closed with the process), since such loggers may outlive the block.
    :func:`terminal` still gives the stream outside, for progress lines.
    """
    if log_path is None:
        yield None
        return
    stream = open(log_path, 'a', buffering=1)
    _terminals.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield stream
    finally:
        _terminals.pop()
        stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f'{h}:{rest // 60:02d}:{rest % 60:02d}' if h else f'{rest // 60:02d}:{rest % 60:02d}'


class Progress:
    """A one-line progress bar with images per second and the time left.

    On a terminal the line is redrawn in place at most ``refresh`` times per second; elsewhere
    (a CI log, a pipe) only the closing line is written, so logs stay short. In a distributed
    run only the main process draws (the others count silently).

    Args:
        title: what is running, e.g. ``'step_1 train'``.
        total: units of work (iterations or images).
        unit: the name of the units, for the closing line.
        stream: where to draw; default :func:`terminal`.
    """

    def __init__(self, title: str, total: int, unit: str = 'images',
                 stream: Optional[IO] = None, refresh: float = 2.0):
        self.title, self.total, self.unit = title, max(int(total), 0), unit
        self.stream = (stream or terminal()) if is_main_process() else None
        self.done = 0
        self.images = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._min_gap = 1.0 / refresh
        isatty = getattr(self.stream, 'isatty', None)
        self.live = bool(isatty and isatty())

    def update(self, units: int = 1, images: Optional[int] = None) -> None:
        """Count ``units`` of work done, covering ``images`` images (default: ``units``)."""
        self.done += units
        self.images += units if images is None else images
        now = time.perf_counter()
        if self.live and self.stream is not None and (now - self._last_draw >= self._min_gap or self.done >= self.total):
            self._last_draw = now
            self.stream.write('\r' + self.line(now))
            self.stream.flush()

    def line(self, now: Optional[float] = None) -> str:
        """The progress line: bar, count, images/s, elapsed and estimated time left."""
        elapsed = (now or time.perf_counter()) - self.start
        frac = self.done / self.total if self.total else 1.0
        bar = '#' * int(20 * frac) + '.' * (20 - int(20 * frac))
        rate = self.images / elapsed if elapsed > 0 else 0.0
        left = elapsed * (self.total - self.done) / self.done if self.done else 0.0
        return (f'  {self.title} [{bar}] {self.done}/{self.total} {rate:.1f} img/s '
                f'{_clock(elapsed)} elapsed, ETA {_clock(left)}   ')

    def close(self) -> None:
        """Write the closing line (once)."""
        if self.stream is None:
            return
        elapsed = time.perf_counter() - self.start
        rate = self.images / elapsed if elapsed > 0 else 0.0
        end = '\r' if self.live else ''
        self.stream.write(f'{end}  {self.title}: {self.done} {self.unit}, {rate:.1f} img/s, '
                          f'{_clock(elapsed)}' + ' ' * 30 + '\n')
        self.stream.flush()
        self.stream = None
