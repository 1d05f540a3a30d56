"""The console helpers: progress lines and the redirection of everything else."""
import io
import sys

from mmdet_isal.utils.console import Progress, quiet, terminal


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_rate_and_time_left_on_a_terminal():
    stream = FakeTerminal()
    bar = Progress('step_0 train', 4, unit='iterations', stream=stream, refresh=1e9)
    for _ in range(2):
        bar.update(1, images=8)
    assert bar.done == 2 and bar.images == 16
    line = bar.line()
    assert '[##########..........] 2/4' in line and 'img/s' in line and 'ETA' in line
    bar.update(2, images=16)
    bar.close()
    assert stream.getvalue().count('\r') >= 3
    last = stream.getvalue().split('\r')[-1]
    assert last.startswith('  step_0 train: 4 iterations, ') and last.endswith('\n')


def test_progress_writes_only_a_closing_line_elsewhere():
    stream = io.StringIO()
    bar = Progress('scoring', 3, stream=stream)
    bar.update(3)
    assert stream.getvalue() == ''
    bar.close()
    bar.close()  # once only
    assert stream.getvalue().count('\n') == 1 and 'scoring: 3 images' in stream.getvalue()


def test_quiet_sends_prints_to_the_log_and_keeps_the_terminal(tmp_path):
    outside = sys.stdout
    log = tmp_path / 'console.log'
    with quiet(str(log)):
        print('mmengine says a lot')
        print('a warning', file=sys.stderr)
        assert terminal() is outside
    assert sys.stdout is outside and terminal() is outside
    assert log.read_text() == 'mmengine says a lot\na warning\n'
    with quiet(None):
        assert sys.stdout is outside
