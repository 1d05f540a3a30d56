"""Which parameters take part in the influence: the final layers of each detection head.

ISAL differentiates only through the last classification and regression layers (paper, Sec. 3;
supplementary, Sec. 5.2). Which layers those are depends on the head class: each head family's
spec names them (:attr:`~.specs.HeadSpec.preset`, one file per family in :mod:`.specs`). Users
override them with ``scorer=dict(params=[names or regular expressions])``.
"""
from typing import List

from .specs import HEAD_PATHS, get_path, head_spec


def parameter_preset(model, include_bias: bool = False) -> List[str]:
    """Names of the parameters ISAL uses for ``model``: every head's spec's preset layers.

    Args:
        model: an mmdet detector (unwrap DDP first).
        include_bias: also take the layers' biases. The paper's choice, and the default, is
            the weights only.

    Returns:
        Full parameter names such as ``'bbox_head.conv_cls.weight'``, in
        :data:`~.specs.HEAD_PATHS` order. Raises ``TypeError`` naming the head when a head of
        the model has no preset, or lacks a layer of its spec's preset.
    """
    names = []
    found_head = False
    for path in HEAD_PATHS:
        head = get_path(model, path)
        if head is None:
            continue
        found_head = True
        spec = head_spec(head)
        if spec is None or not spec.preset:
            raise TypeError(
                f'no parameter preset for {path} of type {type(head).__name__}: name the '
                f'parameters yourself with scorer=dict(params=[...]) (names or regular '
                f'expressions), or add a HeadSpec with a preset for the head in '
                f'mmdet_isal/detection/specs/')
        kinds = ('weight', 'bias') if include_bias else ('weight',)
        for layer in spec.preset:
            module = get_path(model, f'{path}.{layer}')
            if module is None:
                raise TypeError(
                    f'{path} of type {type(head).__name__} has no layer {layer!r} of the '
                    f'preset {spec.preset} of {type(spec).__name__} (for {spec.covers}): name '
                    f'the parameters yourself with scorer=dict(params=[...]), or add a '
                    f'HeadSpec for {type(head).__name__} in mmdet_isal/detection/specs/')
            names += [f'{path}.{layer}.{kind}' for kind in kinds
                      if getattr(module, kind, None) is not None]
    if not found_head:
        raise TypeError(f'{type(model).__name__} has none of the heads {HEAD_PATHS}: name the '
                        'parameters yourself with scorer=dict(params=[...])')
    return names
