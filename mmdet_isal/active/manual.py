"""Manual annotation in the loop (``active_learning.annotator='manual'``): a pool without boxes,
labeled by a person between the loop's runs.

The pool (:class:`ManualPool`) is a COCO file of images only, plus the images already labeled
(``active_learning.labeled``, outside the pool), plus the labels merged so far. A **round** is
the set of images labeled at one step: round ``L`` is what step ``L`` trains on besides the
earlier rounds. Round 0 is the labeled set, or a random ``initial`` set that waits for its
labels in ``DIR/initial/to_annotate/``; round ``L >= 1`` is step ``L - 1``'s selection, written
to ``DIR/step_{L-1}/to_annotate/``. The loop stops before training a step whose round has no
labels yet (:meth:`ManualAnnotation.pending_round`), and ``--resume --annotations FILE``
merges them (:meth:`ManualAnnotation.merge`):

- the export is checked against the round (:func:`mmdet_isal.annotation.check_import`); a
  refusal changes nothing;
- the labels are written in the pool's terms (pool ids and categories) to
  ``to_annotate/imported.coco.json``, and the ledger records the file given, its SHA-256, the
  merged file and its SHA-256, the counts, and the skipped images (which leave the pool);
- the annotated box counts replace the unknown ones: the ledger's per-image counts, the
  selecting step's ``num_selected_boxes`` (the predicted count stays as
  ``num_selected_boxes_predicted``) and its selection diagnostics.

Merging the same file again is a no-op; another file for a round already merged is refused.
"""
import hashlib
import json
import os.path as osp
from collections import Counter
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from mmengine.dist import is_main_process

from mmdet_isal.active.diagnostics import selection_diagnostics
from mmdet_isal.active.subsets import CocoPool
from mmdet_isal.annotation import (PoolImage, check_import, labels_digest, read_labels,
                                   read_skipped)
from mmdet_isal.datasets.images import ImageEntry, check_image_entries, file_digest
from mmdet_isal.datasets.validate import AnnotationError, check_coco, load_coco
from mmdet_isal.utils.fileio import atomic_write_json

TO_ANNOTATE = 'to_annotate'
INITIAL = 'initial'
MERGED = 'imported.coco.json'


class ManualPool(CocoPool):
    """The pool of a manual run: the pool file's images (no boxes), the labeled set's images and
    boxes, and the boxes merged so far.

    Args:
        pool: the checked pool file (:func:`~mmdet_isal.active.subsets.build_pool`); it must
            hold no annotations.
        labeled: ``active_learning.labeled``: a COCO file of labeled images in the pool's image
            directory, or ``None``.
        classes: ``metainfo.classes`` of the training set.
        check_images: ``'header'`` or ``'decode'``, for the labeled set's images.

    Raises:
        AnnotationError: the labeled file cannot be used, uses a class the pool does not have,
            or shares image ids or file names with the pool (each named).
    """

    def __init__(self, pool: CocoPool, labeled: Optional[str], classes: Sequence[str],
                 check_images: str = 'header'):
        self.__dict__.update(pool.__dict__)  # the checked pool, as build_pool left it
        self._coco = dict(pool._coco, images=list(pool._coco['images']), annotations=[])
        self.labeled_file = osp.abspath(labeled) if labeled else None
        self.labeled_ids: List[Any] = []
        self.skipped: set = set()
        if labeled:
            self._add_labeled_set(self.labeled_file, classes, check_images)
        self.image_ids = [img['id'] for img in self._coco['images']]
        self.num_boxes = {i: 0 for i in self.image_ids}
        self.box_classes = {i: Counter() for i in self.image_ids}
        self._count(self._coco['annotations'])

    def _add_labeled_set(self, path: str, classes: Sequence[str], check_images: str) -> None:
        if not osp.isfile(path):
            raise FileNotFoundError(f'active_learning.labeled {path} does not exist; make it '
                                    f'with tools/make_pool.py --labeled ... --labeled-out')
        coco = load_coco(path)
        self.notes = self.notes + check_coco(coco, path, classes)
        self.notes = self.notes + check_image_entries(_entries(coco, self.img_dir), path,
                                                      check_images)
        pool_ids = {img['id'] for img in self._coco['images']}
        pool_names = {img['file_name'] for img in self._coco['images']}
        clash = [img['id'] for img in coco['images'] if img['id'] in pool_ids]
        same = [img['file_name'] for img in coco['images'] if img['file_name'] in pool_names]
        ids = {c['name']: c['id'] for c in self._coco['categories']}
        names = {c['id']: c['name'] for c in coco['categories']}
        unknown = sorted({names[a['category_id']] for a in coco['annotations']} - set(ids))
        if clash or same or unknown:
            raise AnnotationError(
                f'active_learning.labeled {path} cannot be used with the pool {self.ann_file}:'
                + (f'\n  - {len(clash)} image ids are also pool ids, e.g. {clash[:3]}'
                   if clash else '')
                + (f'\n  - {len(same)} images are also in the pool, e.g. {same[:3]}'
                   if same else '')
                + (f'\n  - classes the pool does not have: {unknown}' if unknown else '')
                + '\nMake both with tools/make_pool.py IMAGES --labeled ... --labeled-out ..., '
                  'which keeps them apart.')
        self._coco['images'] = list(coco['images']) + self._coco['images']
        self.labeled_ids = [img['id'] for img in coco['images']]
        self._coco['annotations'] = [
            dict(id=k + 1, image_id=a['image_id'], category_id=ids[names[a['category_id']]],
                 bbox=list(a['bbox']), area=a.get('area', a['bbox'][2] * a['bbox'][3]),
                 iscrowd=a.get('iscrowd', 0))
            for k, a in enumerate(coco['annotations'])]

    def _count(self, annotations) -> None:
        names = {c['id']: str(c['name']) for c in self._coco['categories']}
        for ann in annotations:
            self.num_boxes[ann['image_id']] += 1
            self.box_classes[ann['image_id']][names[ann['category_id']]] += 1

    @property
    def categories_by_name(self) -> Dict[str, Any]:
        return {str(c['name']): c['id'] for c in self._coco['categories']}

    def next_annotation_id(self) -> int:
        return 1 + max((a['id'] for a in self._coco['annotations']), default=0)

    def add_annotations(self, annotations: Sequence[Dict[str, Any]]) -> None:
        """Add merged annotations (pool image and category ids, their own ids)."""
        self._coco['annotations'].extend(annotations)
        self._count(annotations)

    def true_boxes(self, ids):
        return {i: [] for i in ids}  # the pool has no ground truth; labels come from people

    def write_split(self, labeled_ids, out_dir):
        labeled_ids = set(labeled_ids)
        self.check_ids(labeled_ids, 'labeled set')
        paths = self.subset_paths(osp.abspath(out_dir))
        head = {k: v for k, v in self._coco.items() if k not in ('images', 'annotations')}
        atomic_write_json(paths[0], dict(
            head, images=[im for im in self._coco['images'] if im['id'] in labeled_ids],
            annotations=[a for a in self._coco['annotations'] if a['image_id'] in labeled_ids]))
        atomic_write_json(paths[1], dict(
            head, images=[im for im in self._coco['images'] if im['id'] not in labeled_ids
                          and im['id'] not in self.skipped], annotations=[]))
        return paths


def _entries(coco, img_dir):
    return [ImageEntry(img['id'], osp.join(img_dir, img['file_name']), img.get('width'),
                       img.get('height')) for img in coco['images']]


class AnnotationRequest(NamedTuple):
    """What the loop asks of a person: annotate round ``round`` (``num_images`` images), whose
    files are in ``directory``; ``step`` selected them (``None``: the initial random set)."""
    round: int
    step: Optional[int]
    directory: str
    num_images: int
    classes: List[str]

    def message(self, resume_command: str) -> str:
        """The console text: what to annotate, where, and the command that continues."""
        who = (f'the initial set: {self.num_images} random images to annotate'
               if self.step is None else
               f'step_{self.step} selected {self.num_images} images to annotate')
        files = [('images.txt', 'their paths, one per line'),
                 ('selection.json', 'ids, file names, ranks, scores'),
                 ('prelabels.coco.json', 'pre-labels: CVAT "COCO 1.0", or any COCO tool'),
                 ('label_studio_tasks.json', 'Label Studio tasks with predictions '
                                             '(labeling config: label_studio_config.xml)'),
                 ('gallery.jpg', 'the picks, in rank order')]
        lines = '\n'.join(f'  {name:<24} {what}' for name, what in files
                          if osp.exists(osp.join(self.directory, name)))
        return (f'{who}, in {self.directory}/:\n{lines}\n'
                f'Draw a box around every object of the classes {", ".join(self.classes)}, '
                f'export the labels as COCO (or Pascal VOC), and continue with:\n'
                f'  {resume_command} --annotations EXPORT [--skipped FILE]\n'
                f'(--skipped: a file listing, one per line, the images you did not annotate.)')


class ManualAnnotation:
    """The manual-mode part of the loop: the rounds, their files, merging exports.

    Args:
        loop: the :class:`~mmdet_isal.active.loop.ActiveLearningLoop` (its ledger, pool,
            work_dir, config and logger are read when needed).
    """

    def __init__(self, loop):
        self.loop = loop

    # --- rounds -------------------------------------------------------------------------------
    def round_dir(self, round_: int) -> str:
        """``DIR/initial/to_annotate`` for round 0, ``DIR/step_{L-1}/to_annotate`` else."""
        parent = INITIAL if round_ == 0 else f'step_{round_ - 1}'
        return osp.join(self.loop.work_dir, parent, TO_ANNOTATE)

    def pending_round(self) -> Optional[int]:
        """The round whose images are picked but not labeled yet (at most one), or ``None``."""
        ledger = self.loop.ledger
        rounds = sorted({r['labeled_step'] for r in ledger.images.values()
                         if r['labeled_step'] is not None})
        return next((r for r in rounds if ledger.annotations(r) is None), None)

    def request(self, round_: int) -> AnnotationRequest:
        """The :class:`AnnotationRequest` of ``round_``."""
        ids = self.loop.ledger.selected_at(round_)
        return AnnotationRequest(round_, None if round_ == 0 else round_ - 1,
                                 self.round_dir(round_), len(ids), list(self.classes))

    @property
    def classes(self) -> List[str]:
        return list(self.loop.pool.categories_by_name)

    # --- a new run and a resumed one ----------------------------------------------------------
    def start(self) -> None:
        """A new run: record the labeled set as round 0, or leave the initial set pending."""
        pool = self.loop.pool
        if pool.labeled_file:
            self.loop.ledger.record_annotations(0, dict(
                source='active_learning.labeled', file=pool.labeled_file,
                sha256=file_digest(pool.labeled_file), images=len(pool.labeled_ids),
                boxes=pool.boxes_of(pool.labeled_ids)))

    def restore(self) -> None:
        """A resumed run: put every merged round's labels back into the pool, checking that
        each merged file is the one the ledger recorded."""
        ledger, pool = self.loop.ledger, self.loop.pool
        pool.skipped = {i for i, r in ledger.images.items() if r.get('skipped') is not None}
        for round_, rec in sorted(ledger.steps.items()):
            merged = (rec.get('annotations') or {}).get('merged')
            if not merged:
                continue
            path = osp.join(self.loop.work_dir, merged)
            if not osp.isfile(path) or file_digest(path) != rec['annotations']['merged_sha256']:
                raise ValueError(f'{path} (the labels merged into round {round_}) is missing or '
                                 f'changed since it was merged; restore it (the export it came '
                                 f'from: {rec["annotations"]["file"]}) or use another '
                                 f'--work-dir')
            pool.add_annotations(load_coco(path)['annotations'])

    # --- merging ------------------------------------------------------------------------------
    def merge(self, path: str, skipped: Optional[str] = None) -> str:
        """Merge the export ``path`` (a COCO file or a VOC folder) into the pending round;
        returns what was done, for the log.

        Raises:
            ImportRefused: the export (or ``skipped``) does not answer the pending round,
                naming every problem; nothing changes.
            ValueError: there is no round to merge into, or ``path`` differs from the file
                already merged into the last round.
        """
        ledger = self.loop.ledger
        path = osp.abspath(path)
        digest = labels_digest(path)
        for round_, rec in sorted(ledger.steps.items()):
            done = rec.get('annotations') or {}
            if done.get('sha256') == digest:
                return (f'{path} was merged into round {round_} already (sha256 '
                        f'{digest[:12]}...): nothing to do')
        round_ = self.pending_round()
        if round_ is None:
            last = max((r for r in ledger.steps if ledger.annotations(r)), default=None)
            done = ledger.annotations(last) if last is not None else {}
            raise ValueError(
                f'no selection awaits labels in {self.loop.work_dir}: the last one (round '
                f'{last}) was merged from {done.get("file")} (sha256 '
                f'{str(done.get("sha256"))[:12]}...); {path} is a different file. A merged '
                f'round is never replaced: to relabel, start a new --work-dir')
        what = 'the initial set' if round_ == 0 else f"step_{round_ - 1}'s selection"
        selected = ledger.selected_at(round_)
        images = self.pool_images(round_)
        skip = read_skipped(skipped, selected, images, what) if skipped else []
        fmt, labels = read_labels(path)
        boxes = check_import(labels, path, selected, images, self.loop.pool.categories_by_name,
                             skip, what)
        return self._commit(round_, path, digest, fmt, boxes, skip)

    def pool_images(self, round_: int) -> Dict[Any, PoolImage]:
        """Every pool image as an import sees it, with its status in the run."""
        ledger, pool = self.loop.ledger, self.loop.pool
        out = {}
        for img in pool._coco['images']:
            rec = ledger.images[img['id']]
            step = rec['labeled_step']
            status = ('selected' if step == round_ else
                      f'labeled at step {step}' if step is not None else
                      f'skipped at step {rec["skipped"]}' if rec.get('skipped') is not None
                      else 'in the pool, not selected')
            out[img['id']] = PoolImage(img['id'], img['file_name'], img['width'],
                                       img['height'], status)
        return out

    def _commit(self, round_: int, path: str, digest: str, fmt: str, boxes, skip) -> str:
        loop, ledger, pool = self.loop, self.loop.ledger, self.loop.pool
        first = pool.next_annotation_id()
        annotations = []
        for image_id, image_boxes in boxes.items():
            for bbox, cat in image_boxes:
                annotations.append(dict(id=first + len(annotations), image_id=image_id,
                                        category_id=cat, bbox=bbox, area=bbox[2] * bbox[3],
                                        iscrowd=0))
        merged = osp.join(self.round_dir(round_), MERGED)
        coco = dict(info=dict(description=f'labels of round {round_} from {path}'),
                    licenses=[], categories=pool.categories,
                    images=[pool.images[i] for i in boxes], annotations=annotations)
        if is_main_process():
            atomic_write_json(merged, coco)
        counts = {i: len(b) for i, b in boxes.items()}
        ledger.skip(skip, round_)
        pool.skipped |= set(skip)
        pool.add_annotations(annotations)
        ledger.set_num_boxes(counts)
        ledger.record_annotations(round_, dict(
            file=path, sha256=digest, format=fmt,
            merged=osp.relpath(merged, loop.work_dir), merged_sha256=_sha256_of(coco),
            images=len(counts), boxes=sum(counts.values()), skipped=list(skip)))
        if round_ > 0:
            self._annotated_selection(round_ - 1, counts)
        return (f'merged {path} into round {round_}: {len(counts)} images, '
                f'{sum(counts.values())} boxes' + (f', {len(skip)} skipped' if skip else ''))

    def _annotated_selection(self, step: int, counts: Dict[Any, int]) -> None:
        """The selection record of ``step`` with the annotated counts in place of the
        predicted ones."""
        ledger, pool = self.loop.ledger, self.loop.pool
        rec = ledger.step_record(step)
        ranked = ledger.ranking(step)
        images = ledger.images
        pseudo = {i: images[i]['details'][step]['num_pseudo_boxes'] for i in ranked
                  if 'num_pseudo_boxes' in images[i]['details'].get(step, {})}
        chosen = list(counts)
        rec.setdefault('num_selected_boxes_predicted', rec.get('num_selected_boxes'))
        rec['num_selected_boxes'] = sum(counts.values())
        rec['selection'] = selection_diagnostics(
            chosen, ranked, {i: images[i]['scores'].get(step) for i in ranked}, pseudo,
            dict(counts), {i: pool.box_classes[i] for i in chosen})

    # --- budgets ------------------------------------------------------------------------------
    def predicted_counts(self, step: int, ranked: Sequence[Any]) -> Dict[Any, int]:
        """The boxes a budget counts in manual mode: the pseudo boxes the strategy counted at
        ``step`` when it counted them for every ranked image, else the detections with
        ``score >= scorer.score_thr`` of the step's model (one detection pass)."""
        images = self.loop.ledger.images
        counted = {i: images[i]['details'].get(step, {}).get('num_pseudo_boxes') for i in ranked}
        if all(n is not None for n in counted.values()):
            return counted
        thr = self.loop.picks.pseudo_box_thr(step)
        predictions = self.loop.picks.predictions(step, list(ranked))
        if predictions is None:
            raise ValueError(
                f'active_learning.budget={self.loop.al.budget.to_dict()} counts boxes, which in '
                f'manual mode are predicted; the strategy counted none and the trainer predicts '
                f'none: use budget=dict(images=N)')
        return {i: int((predictions[i]['scores'] >= thr).sum()) if i in predictions else 0
                for i in ranked}


def _sha256_of(obj: Any) -> str:
    """SHA-256 of ``obj`` as :func:`atomic_write_json` writes it (to record before writing)."""
    return hashlib.sha256(json.dumps(obj, allow_nan=False).encode()).hexdigest()
