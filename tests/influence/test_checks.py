"""The one home of the option checks: bools are never integers, errors name option, value and
range."""
import pytest

from mmdet_isal.influence.checks import (check_bool, check_choice, check_int, check_keys,
                                         check_number, did_you_mean)


@pytest.mark.parametrize('value', [True, False])
def test_bools_are_not_integers_nor_numbers(value):
    with pytest.raises(ValueError, match=rf'^repeats must be an integer >= 0, got {value}$'):
        check_int(value, 'repeats', minimum=0)
    with pytest.raises(ValueError, match=rf'^damping must be a finite number >= 0, got {value}$'):
        check_number(value, 'damping', minimum=0)
    assert check_bool(value, 'include_bias') is value


@pytest.mark.parametrize('call, message', [
    (lambda: check_int(0, 'depth', minimum=1), 'depth must be an integer >= 1, got 0'),
    (lambda: check_int(2.0, 'depth', minimum=1), 'depth must be an integer >= 1, got 2.0'),
    (lambda: check_int('3', 'depth', minimum=1), "depth must be an integer >= 1, got '3'"),
    (lambda: check_int(None, 'depth', minimum=1), 'depth must be an integer >= 1, got None'),
    (lambda: check_int(0, 'depth', minimum=1, none_ok=True),
     'depth must be None or an integer >= 1, got 0'),
    (lambda: check_int(4, 'n', minimum=0, maximum=3, owner='k_center_greedy'),
     'k_center_greedy: n must be an integer in [0, 3], got 4'),
    (lambda: check_number(1.0, 'score_thr', minimum=0, maximum=1, open_max=True),
     'score_thr must be a number in [0, 1), got 1.0'),
    (lambda: check_number(0, 'target_ap', minimum=0, maximum=1, open_min=True),
     'target_ap must be a number in (0, 1], got 0'),
    (lambda: check_number(float('inf'), 'damping', minimum=0),
     'damping must be a finite number >= 0, got inf'),
    (lambda: check_number(0, 'tol', minimum=0, open_min=True, owner='ConjugateGradient'),
     'ConjugateGradient: tol must be a finite number > 0, got 0'),
    (lambda: check_bool(1, 'include_bias'), 'include_bias must be True or False, got 1'),
    (lambda: check_choice('scratc', 'retrain', ('scratch', 'finetune')),
     "retrain must be one of ('scratch', 'finetune'), got 'scratc' (did you mean 'scratch'?)"),
    (lambda: check_choice(['last'], 'no_pseudo_boxes', ('last', 'score')),
     "no_pseudo_boxes must be one of ('last', 'score'), got ['last']"),
])
def test_errors_name_the_option_the_range_and_the_value(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


def test_good_values_pass_through_unchanged():
    assert check_int(3, 'depth', minimum=1) == 3
    assert check_int(None, 'depth', minimum=1, none_ok=True) is None
    assert check_int(0, 'n', minimum=0, maximum=0) == 0
    assert check_number(0, 'score_thr', minimum=0, maximum=1, open_max=True) == 0
    assert check_number(2.5, 'scale', minimum=0, open_min=True) == 2.5
    assert check_choice('last', 'no_pseudo_boxes', ('last', 'score')) == 'last'
    check_keys(['a'], ['a', 'b'], 'x')  # nothing unknown: no error


def test_unknown_keys_are_one_error_with_guesses():
    with pytest.raises(KeyError) as err:
        check_keys(['stpes', 'zzz', 'steps'], ['steps', 'seed'], 'active_learning',
                   error=KeyError)
    assert err.value.args[0] == ('unknown key(s) in active_learning: stpes (did you mean '
                                 'steps?), zzz; allowed keys: seed, steps')
    assert did_you_mean('rnadom', ['random', 'isal']) == " (did you mean 'random'?)"
    assert did_you_mean('xyz', ['random', 'isal']) == ''


def test_influence_imports_only_torch_numpy_and_the_standard_library():
    """Why the checks live in influence/: nothing there may import the rest of the package
    (utils/ pulls in mmengine) or OpenMMLab."""
    import ast
    import glob
    import os.path as osp
    import sys

    import mmdet_isal.influence as influence
    allowed = set(sys.stdlib_module_names) | {'torch', 'numpy'}
    for path in glob.glob(osp.join(osp.dirname(influence.__file__), '*.py')):
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                roots = [a.name.split('.')[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split('.')[0]]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 1, f'{path} imports from outside influence/: {node.module}'
                continue
            else:
                continue
            assert set(roots) <= allowed, f'{path} imports {roots}'
