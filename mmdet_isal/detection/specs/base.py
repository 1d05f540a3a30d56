"""Detector families: what mmdet-isal knows about each kind of mmdet detector and head.

A spec describes one mmdet class and, unless they have their own, its subclasses:

- a :class:`DetectorSpec` (one per kind of detector: :mod:`.single_stage`, :mod:`.two_stage`)
  knows how one image's loss comes out of the detector's heads: their outputs for a group of
  images, their detections, one image's loss, and optionally every image's loss of the group
  at once;
- a :class:`HeadSpec` (one per head family: :mod:`.fcos`, :mod:`.retina`, ...) knows the
  head's final layers (the parameters ISAL differentiates,
  :func:`~mmdet_isal.detection.presets.parameter_preset`), its classification and regression
  branches (the pooled features of core-set,
  :func:`~mmdet_isal.detection.features.feature_modules`) and, optionally, a vectorised loss
  for all images of a group (:mod:`~mmdet_isal.detection.batched`).

:func:`register` files a spec under the name of the mmdet class it describes; :func:`lookup`
finds it along the MRO of an object's class, most specific class first (a subclass of
``RetinaHead`` without a spec of its own gets ``RetinaHead``'s).

Adding a family is one file in this package, imported in its ``__init__``: a registered
subclass of :class:`HeadSpec` (or :class:`DetectorSpec`) with a :attr:`Spec.tiny` detector,
which ``tests/detection/test_specs.py`` builds to check that every image's loss, and its
gradient, do not depend on the batch. RetinaNet's, whole::

    @register
    class RetinaSpec(HeadSpec):
        covers = 'RetinaHead'                   # the mmdet class (and its subclasses)
        preset = ('retina_cls', 'retina_reg')   # its final layers
        taps = BRANCH_TAPS                      # its towers, pooled by core-set
        tiny = dict(base='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
                    model=dict(bbox_head=dict(num_classes=8, in_channels=32,
                                              feat_channels=32, stacked_convs=2)))
"""
from typing import Callable, Dict, Optional, Tuple, Type

from torch import Tensor

#: mmdet class name -> its spec (one instance per registered spec class)
SPECS: Dict[str, 'Spec'] = {}

#: head attribute paths a detector may have, in the order their parameters are listed
HEAD_PATHS = ('rpn_head', 'bbox_head', 'roi_head.bbox_head')

#: the backbone and neck of every family's tiny detector (:attr:`Spec.tiny`): ResNet-18 with 16
#: base channels, trained from scratch, and a 32-channel FPN, as in ``configs/toy``
TINY_MODEL = dict(
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32))
#: group norm for the tiny heads' 32-channel towers: 8 groups of 4 channels (mmdet's 32 groups
#: would be 1 channel each, and a 1 x 1 FPN level would leave one value per group)
GN8 = dict(type='GN', num_groups=8, requires_grad=True)

#: the towers of mmdet's dense heads (``AnchorFreeHead`` and its FCOS and FoveaBox,
#: ``RetinaHead``, ``ATSSHead``, ``GFLHead``): the classification and regression branches whose
#: last outputs core-set pools (:attr:`HeadSpec.taps`)
BRANCH_TAPS = ('cls_convs', 'reg_convs')

SUPPORTED_HINT = ('mmdet-isal supports single-stage detectors with a dense bbox_head and '
                  'two-stage detectors with an RPN and a standard RoI head')


class Spec:
    """What mmdet-isal knows about one mmdet class and its subclasses without a spec.

    Attributes:
        covers: the name of the mmdet class described (matched by name along the MRO).
        tiny: a tiny detector containing the class, for the test suite (and as a worked
            example): ``dict(base='mmdet::<config>.py', model={...})``, the model of mmdet's
            config with :data:`TINY_MODEL` and then ``model`` merged over it (the test feeds
            it the synthetic shapes set: 8 classes, 128-pixel images), optionally with
            ``dtype='float32'`` where an op of the family has no float64 kernel (the default
            is float64). ``None`` where another spec's tiny detector contains this class (the
            test checks that every registered spec is in one).
    """
    covers: str = ''
    tiny: Optional[dict] = None

    def __repr__(self):
        return f'{type(self).__name__}({self.covers})'


class HeadSpec(Spec):
    """A detection head family.

    Attributes:
        preset: the head's final layers (module names relative to the head): by default ISAL
            differentiates only their weights (paper, Sec. 3; supplementary, Sec. 5.2).
            Empty: no preset, the user names the parameters.
        taps: ``(classification branch, regression branch)``, module names relative to the
            head whose outputs core-set pools; a ``ModuleList`` stands for its last module.
            Each is called once per FPN level. ``None``: no pooled features.
        reproduces: the methods of the described class that :meth:`vectorised_loss`
            reproduces; a subclass that overrides one of them keeps mmdet's per-image path.
    """
    preset: Tuple[str, ...] = ()
    taps: Optional[Tuple[str, str]] = None
    reproduces: Tuple[str, ...] = ()

    def vectorisable(self, head) -> bool:
        """Whether :meth:`vectorised_loss` applies to this instance (its loss modules, box
        coder, ...). Heads without a vectorised loss: ``False``."""
        return False

    def vectorised_loss(self, head, prefix: str, outs, gts: list, normalizer) -> Tensor:
        """Every image's ``loss_by_feat`` of a group in one call.

        Args:
            head: the head, an instance of the described class.
            prefix: the head's path in the model with a dot (``'bbox_head.'``), which names
                its loss modules in ``normalizer``.
            outs: the head's training outputs for the group (batch first).
            gts: one ``InstanceData`` (``bboxes``, ``labels``) per image.
            normalizer: a :class:`~mmdet_isal.detection.normalizer.LossNormalizer` whose
                fixed counts replace each image's own, or ``None``.

        Returns:
            ``(B,)``: each image's loss, as its own ``loss_by_feat`` would sum it.
        """
        raise NotImplementedError(f'{type(self).__name__} has no vectorised loss')


class DetectorSpec(Spec):
    """A kind of detector: how one image's loss comes out of its heads.

    ``feats`` are the backbone and neck outputs of a group of images, ``outs`` the first
    head's outputs for them (both batch first), ``i`` an image's position in the group.
    """

    def head_outputs(self, model, feats):
        """The first head's outputs for the group (training outputs within
        :func:`~mmdet_isal.detection.patches.loss_mode`)."""
        raise NotImplementedError

    def predict(self, model, feats, outs, img_metas: list) -> list:
        """The test-time detections of every image (``InstanceData`` with ``bboxes`` in
        network-input pixels, ``scores``, ``labels``) from ``outs`` computed in inference
        mode."""
        raise NotImplementedError

    def image_loss(self, model, feats, outs, i: int, gt, gt_ignore, img_meta: dict) -> Tensor:
        """Image ``i``'s detection loss on its own (a scalar): the sum of its loss terms
        against ``gt`` (``InstanceData``), ``gt_ignore`` ignored."""
        raise NotImplementedError

    def group_losses(self, model, outs, gts: list, normalizer,
                     per_image: Callable[[], Tensor]) -> Optional[Tensor]:
        """Every image's loss of the group in one vectorised call, ``(B,)``, or ``None`` to
        compute them image by image (``per_image()`` does, for a check)."""
        return None

    def loss_path(self, model) -> str:
        """How the losses are computed: ``'vectorised'`` or ``'per_image (reason)'``
        (reported as ``summary.loss_path``)."""
        raise NotImplementedError


def register(cls: Type[Spec]) -> Type[Spec]:
    """Class decorator: file an instance of the spec class ``cls`` under ``cls.covers``."""
    if not cls.covers:
        raise ValueError(f'{cls.__name__}: set covers to the mmdet class name it describes')
    known = SPECS.get(cls.covers)
    if known is not None and type(known) is not cls:
        raise ValueError(f'{cls.__name__}: {cls.covers} already has the spec '
                         f'{type(known).__name__}')
    SPECS[cls.covers] = cls()
    return cls


def lookup(obj, kind: Type[Spec] = Spec) -> Tuple[Optional[Spec], Optional[type]]:
    """The spec of ``kind`` of the most specific class in the MRO of ``obj``'s class that has
    one, and that class; ``(None, None)`` if none has."""
    for cls in type(obj).__mro__:
        spec = SPECS.get(cls.__name__)
        if isinstance(spec, kind):
            return spec, cls
    return None, None


def head_spec(head) -> Optional[HeadSpec]:
    """The :class:`HeadSpec` of ``head`` (an mmdet head instance), or ``None``."""
    return lookup(head, HeadSpec)[0]


def detector_spec(model) -> DetectorSpec:
    """The :class:`DetectorSpec` of ``model`` (an mmdet detector, not wrapped), or a
    ``TypeError`` naming its type and what to do."""
    spec = lookup(model, DetectorSpec)[0]
    if spec is None:
        known = sorted(name for name, s in SPECS.items() if isinstance(s, DetectorSpec))
        raise TypeError(f'no per-image loss for detector type {type(model).__name__}: '
                        f'{SUPPORTED_HINT} (registered: {", ".join(known)}); add a '
                        f'DetectorSpec for it in mmdet_isal/detection/specs/.')
    return spec


def vectorised_loss_of(head) -> Optional[Callable]:
    """The vectorised loss of ``head`` (:meth:`HeadSpec.vectorised_loss` of its spec), or
    ``None``: where the spec has none, the head is not :meth:`~HeadSpec.vectorisable`, or its
    class overrides one of the methods the loss :attr:`~HeadSpec.reproduces`."""
    spec, cls = lookup(head, HeadSpec)
    # only the spec class that writes the loss vouches for it: a spec inheriting it from
    # another family's spec describes another class, whose methods it was not checked against
    if spec is None or 'vectorised_loss' not in vars(type(spec)):
        return None
    if all(getattr(type(head), m, None) is getattr(cls, m, None) for m in spec.reproduces) \
            and spec.vectorisable(head):
        return spec.vectorised_loss
    return None


def get_path(model, path: str):
    """The sub-module (or attribute) of ``model`` at the dotted ``path``; None if absent."""
    obj = model
    for part in path.split('.'):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj
