"""Which parameters take part in the influence: the final layers of each detection head.

ISAL differentiates only through the last classification and regression layers (paper, Sec. 3;
supplementary, Sec. 5.2). Which layers those are depends on the head class, so the preset is a
table keyed by head class name, looked up along the head's MRO (a subclass of ``AnchorHead``
without its own entry gets ``AnchorHead``'s). Users override it with
``scorer=dict(params=[names or regular expressions])``.
"""
from typing import List

# head attribute paths a detector may have, in the order their parameters are listed
HEAD_PATHS = ('rpn_head', 'bbox_head', 'roi_head.bbox_head')

# head class name -> its final layers (module names relative to the head)
HEAD_PRESETS = {
    'FCOSHead': ('conv_cls', 'conv_reg', 'conv_centerness'),
    'RPNHead': ('rpn_cls', 'rpn_reg'),
    'RetinaHead': ('retina_cls', 'retina_reg'),
    'ATSSHead': ('atss_cls', 'atss_reg', 'atss_centerness'),
    'GFLHead': ('gfl_cls', 'gfl_reg'),
    'FoveaHead': ('conv_cls', 'conv_reg'),
    'AnchorHead': ('conv_cls', 'conv_reg'),
    'BBoxHead': ('fc_cls', 'fc_reg'),
}


def get_path(model, path: str):
    """The sub-module (or attribute) of ``model`` at the dotted ``path``; None if absent."""
    obj = model
    for part in path.split('.'):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def parameter_preset(model, include_bias: bool = False) -> List[str]:
    """Names of the parameters ISAL uses for ``model``, from :data:`HEAD_PRESETS`.

    Args:
        model: an mmdet detector (unwrap DDP first).
        include_bias: also take the layers' biases. The paper's choice, and the default, is
            the weights only.

    Returns:
        Full parameter names such as ``'bbox_head.conv_cls.weight'``, in :data:`HEAD_PATHS`
        order. Raises ``TypeError`` naming the head when a head of the model has no preset.
    """
    names = []
    found_head = False
    for path in HEAD_PATHS:
        head = get_path(model, path)
        if head is None:
            continue
        found_head = True
        layers = next((HEAD_PRESETS[cls.__name__] for cls in type(head).__mro__
                       if cls.__name__ in HEAD_PRESETS), None)
        if layers is None:
            raise TypeError(
                f'no parameter preset for {path} of type {type(head).__name__}: name the '
                f'parameters yourself with scorer=dict(params=[...]) (names or regular '
                f'expressions), or add the head to mmdet_isal.detection.presets.HEAD_PRESETS')
        kinds = ('weight', 'bias') if include_bias else ('weight',)
        for layer in layers:
            names += [f'{path}.{layer}.{kind}' for kind in kinds
                      if getattr(get_path(model, f'{path}.{layer}'), kind, None) is not None]
    if not found_head:
        raise TypeError(f'{type(model).__name__} has none of the heads {HEAD_PATHS}: name the '
                        'parameters yourself with scorer=dict(params=[...])')
    return names
