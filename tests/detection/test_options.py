"""The scorer options: one flat dict for the user, three frozen groups inside, parsed once."""
import dataclasses

import pytest

from mmdet_isal.detection import (DetectionOptions, FeatureCache, LossNormalizer, PseudoLabeler,
                                  ScorerOptions, ScoringOptions)
from mmdet_isal.influence import SOLVERS, SolverOptions
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies import SelectionContext

#: the flat dict's keys, order and defaults as users' configs know them (the contract)
CONTRACT = dict(
    params=None, score_thr=0.1, hessian_images=500, solver='lissa', damping=0.01,
    scale='auto', hessian_batch_size=8, depth=None, repeats=4, power_iters=10,
    power_batches=20, batch_size=4, include_bias=False, no_pseudo_boxes='last',
    loss_normalizer='per_image', rank_by='influence', feature_cache_mb=1024)
INTEGER_OPTIONS = ['hessian_images', 'hessian_batch_size', 'depth', 'repeats', 'power_iters',
                   'power_batches', 'batch_size', 'feature_cache_mb']


def test_the_defaults_and_the_flat_keys_are_the_contract():
    assert list(ScorerOptions().to_dict().items()) == list(CONTRACT.items())
    groups = [DetectionOptions.keys(), ScoringOptions.keys(), SolverOptions.keys()]
    # every flat key belongs to exactly one group
    assert sorted(k for g in groups for k in g) == sorted(CONTRACT)


def test_the_flat_dict_round_trips():
    given = dict(score_thr=0.3, repeats=2, params=['bbox_head.conv_cls.weight'],
                 solver='cg', depth=7, scale=5, rank_by='influence_per_box',
                 include_bias=True)
    opts = ScorerOptions.from_dict(given)
    assert opts.to_dict() == dict(CONTRACT, **given)
    assert ScorerOptions.from_dict(opts.to_dict()) == opts
    # the groups hold what they are about
    assert opts.detection == DetectionOptions(score_thr=0.3, batch_size=4)
    assert (opts.inverse_hvp.solver, opts.inverse_hvp.depth, opts.inverse_hvp.scale) == \
        ('cg', 7, 5)
    assert opts.scoring.params == ('bbox_head.conv_cls.weight', )  # frozen, like the rest
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.scoring.hessian_images = 3
    assert ScorerOptions.from_dict(None) == ScorerOptions.from_dict({}) == ScorerOptions()
    assert ScorerOptions.from_dict(opts) is opts  # parsed already


def test_unknown_keys_are_one_error_naming_each_with_a_guess():
    with pytest.raises(ValueError) as err:
        ScorerOptions.from_dict(dict(dampnig=0.1, reapeats=2, colour='red'),
                                where='active_learning.scorer')
    message = str(err.value)
    assert message.startswith('unknown key(s) in active_learning.scorer: colour, dampnig '
                              '(did you mean damping?), reapeats (did you mean repeats?); '
                              'allowed keys: batch_size, damping, depth, ')


@pytest.mark.parametrize('key, value, match', [
    ('score_thr', 1.0, r"score_thr must be a number in \[0, 1\) or 'auto', got 1.0"),
    ('score_thr', '0.1', r"score_thr must be a number in \[0, 1\) or 'auto', got '0.1'"),
    ('damping', -0.5, r'damping must be a finite number >= 0, got -0.5'),
    ('damping', float('nan'), r'damping must be a finite number >= 0, got nan'),
    ('scale', 'automatic', r"scale must be 'auto' or a finite number > 0, got 'automatic'"),
    ('scale', 0.0, r"scale must be 'auto' or a finite number > 0, got 0.0"),
    ('solver', 'cgg', r"solver must be one of the registered solvers \(.*\), got 'cgg' "
                      r"\(did you mean 'cg'\?\)"),
    ('repeats', 0, r'repeats must be an integer >= 1, got 0'),
    ('depth', 2.0, r'depth must be None or an integer >= 1, got 2.0'),
    ('feature_cache_mb', -1, r'feature_cache_mb must be an integer >= 0, got -1'),
    ('params', 'bbox_head', r"params must be None or a non-empty list .*, got 'bbox_head'"),
    ('params', [], r'params must be None or a non-empty list .*, got \[\]'),
    ('include_bias', 1, r'include_bias must be True or False, got 1'),
    ('rank_by', 'influence_per_image', r"rank_by must be one of \('influence', "
                                       r"'influence_per_box', 'influence_per_cost'\), got "
                                       r"'influence_per_image' "
                                       r"\(did you mean 'influence_per_box'\?\)"),
    ('loss_normalizer', 'batch', r"loss_normalizer must be one of .*, got 'batch'"),
    ('no_pseudo_boxes', None, r"no_pseudo_boxes must be one of \('last', 'score'\), got None"),
])
def test_bad_values_are_errors_naming_option_value_and_range(key, value, match):
    with pytest.raises(ValueError, match=r'^ISALHook: scorer: ' + match):
        ScorerOptions.from_dict({key: value}, where='ISALHook: scorer')
    # the same check when a strategy lays its own options over the run's
    with pytest.raises(ValueError, match=r'^isal: scorer: ' + match):
        ScorerOptions().replace({key: value}, where='isal: scorer')


@pytest.mark.parametrize('key', INTEGER_OPTIONS)
@pytest.mark.parametrize('flag', [True, False])
def test_bools_are_refused_for_every_integer_option(key, flag):
    with pytest.raises(ValueError, match=rf'{key} must be .*integer.*, got {flag}'):
        ScorerOptions.from_dict({key: flag})


def test_replace_checks_the_changes_and_keeps_the_rest():
    base = ScorerOptions.from_dict(dict(repeats=2, score_thr=0.2))
    changed = base.replace(dict(score_thr=0.3, batch_size=2))
    assert changed.to_dict() == dict(base.to_dict(), score_thr=0.3, batch_size=2)
    assert base.detection.score_thr == 0.2  # the original is untouched
    # only the changed group is rebuilt: the others are the very same objects
    assert changed.scoring is base.scoring and changed.inverse_hvp is base.inverse_hvp
    assert base.replace({}) is base and base.replace(None) is base
    with pytest.raises(ValueError, match=r'unknown key\(s\) in scorer: scor_thr \(did you mean '
                                         r'score_thr\?\)'):
        base.replace(dict(scor_thr=0.3))
    with pytest.raises(ValueError, match='must be a dict'):
        base.replace([('score_thr', 0.3)])


def test_a_baseline_does_not_need_valid_solver_options(monkeypatch):
    # with no solver registered, no SolverOptions (and no ScorerOptions) can be built ...
    for name in list(SOLVERS):
        monkeypatch.delitem(SOLVERS, name)
    with pytest.raises(ValueError, match='registered solvers'):
        ScorerOptions()
    with pytest.raises(ValueError, match='registered solvers'):
        STRATEGIES.build(dict(type='isal', _scope_=STRATEGIES.scope))
    # ... and a baseline builds and gets its detection-pass options all the same
    strategy = STRATEGIES.build(dict(type='entropy', score_thr=0.3, _scope_=STRATEGIES.scope))
    context = SelectionContext(model=None, cfg=None, unlabeled_ann_file='u.json',
                               labeled_ann_file='l.json', reference_ann_file='r.json',
                               work_dir='.')
    assert context.detection_options(strategy.options) == DetectionOptions(score_thr=0.3)
    with pytest.raises(ValueError, match=r'^entropy: batch_size must be an integer >= 1'):
        STRATEGIES.build(dict(type='entropy', batch_size=0, _scope_=STRATEGIES.scope))


def test_a_strategys_own_options_lie_over_the_runs():
    run = ScorerOptions.from_dict(dict(score_thr=0.2, batch_size=8, repeats=1))
    context = SelectionContext(model=None, cfg=None, unlabeled_ann_file='u.json',
                               labeled_ann_file='l.json', reference_ann_file='r.json',
                               work_dir='.', scorer=run)
    fewest = STRATEGIES.build(dict(type='fewest_detections', score_thr=0.5,
                                   _scope_=STRATEGIES.scope))
    assert context.detection_options(fewest.options) == DetectionOptions(score_thr=0.5,
                                                                         batch_size=8)
    coreset = STRATEGIES.build(dict(type='coreset', _scope_=STRATEGIES.scope))
    assert context.detection_options(coreset.options) is run.detection
    # the context takes the parsed options, not the config's dict
    with pytest.raises(TypeError, match='ScorerOptions.from_dict'):
        SelectionContext(model=None, cfg=None, unlabeled_ann_file='u.json',
                         labeled_ann_file='l.json', reference_ann_file='r.json', work_dir='.',
                         scorer=dict(score_thr=0.2))


def test_every_flat_key_has_its_help_text():
    texts = ScorerOptions.help()
    assert list(texts) == list(CONTRACT)
    assert all(isinstance(t, str) and len(t) > 20 for t in texts.values()), texts


@pytest.mark.parametrize('build, message', [
    (lambda: PseudoLabeler(False), r'^pseudo-label: score_thr must be a number in \[0, 1\), got False$'),
    (lambda: FeatureCache(True), r'^FeatureCache: max_bytes must be an integer >= 0, got True$'),
    (lambda: LossNormalizer({'bbox_head.loss_cls': 2.0}, num_images=True),
     r'^LossNormalizer: num_images must be an integer >= 0, got True$'),
    (lambda: LossNormalizer({'bbox_head.loss_cls': True}, num_images=2),
     r"^LossNormalizer: avg_factor of 'bbox_head.loss_cls' must be a finite number > 0, got True$"),
])
def test_the_detection_objects_refuse_bools_as_numbers_with_the_shared_check(build, message):
    with pytest.raises(ValueError, match=message):
        build()
