"""What the loop writes about a selection besides the ledger: the gallery of the picks (every
mode, ``DIR/step_K/strategy/gallery.jpg``) and, in manual mode, the files to annotate them with
(``DIR/step_K/to_annotate/``).

Both draw on one detection pass of the step's model over the picks
(:meth:`~mmdet_isal.active.trainer.Trainer.predict`): the gallery's pseudo boxes are its
detections with ``score >= scorer.score_thr`` (what the strategies see), the pre-labels those
with ``score >= prelabel_thr``.
"""
import os.path as osp
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.dist import broadcast_object_list, is_main_process

from mmdet_isal.annotation import Pick, draw_gallery, gallery_tiles, write_to_annotate

GALLERY = 'gallery.jpg'


def picks_of(pool, ids: Sequence[Any], ranks: Mapping[Any, int],
             scores: Mapping[Any, Optional[float]]) -> List[Pick]:
    """:class:`~mmdet_isal.annotation.Pick` of each of ``ids`` (in that order), with its rank
    (1 = first choice; ``ranks`` holds the ledger's 0-based ranks, ``None`` for none) and
    score."""
    described = pool.describe(ids)
    picks = []
    for n, i in enumerate(ids):
        file_name, path, width, height = described[i]
        rank = ranks.get(i)
        picks.append(Pick(i, file_name, path, width, height,
                          n + 1 if rank is None else rank + 1, scores.get(i)))
    return picks


def write_gallery(out_dir: str, picks: Sequence[Pick],
                  predictions: Optional[Dict[Any, Dict[str, Any]]], score_thr: float,
                  true_boxes: Optional[Dict[Any, List]] = None, title: str = '') -> str:
    """Draw ``picks`` into ``out_dir/gallery.jpg`` (and ``gallery.json``) under a legend
    titled ``title``; returns its path."""
    path = osp.join(out_dir, GALLERY)
    legend = (title, f'pseudo boxes: the detector\'s, score >= {score_thr:g}'
              if predictions is not None else 'no model yet: no pseudo boxes',
              'true boxes' if true_boxes is not None else None)
    draw_gallery(gallery_tiles(picks, predictions, score_thr, true_boxes), path, legend=legend)
    return path


def write_round(out_dir: str, picks: Sequence[Pick],
                predictions: Optional[Dict[Any, Dict[str, Any]]], classes: Sequence[str],
                categories: Sequence[Dict[str, Any]], prelabel_thr: float,
                header: Mapping[str, Any], gallery: Optional[str] = None) -> Dict[str, str]:
    """Write the files to annotate ``picks`` with into ``out_dir``
    (:func:`~mmdet_isal.annotation.write_to_annotate`) and a copy of the selection's
    ``gallery`` (with its ``gallery.json``) if there is one."""
    paths = write_to_annotate(out_dir, picks, predictions, classes, categories, prelabel_thr,
                              header)
    if gallery is not None and osp.isfile(gallery):
        for name in (GALLERY, 'gallery.json') if osp.dirname(gallery) != out_dir else ():
            shutil.copyfile(osp.join(osp.dirname(gallery), name), osp.join(out_dir, name))
        paths['gallery'] = osp.join(out_dir, GALLERY)
    return paths


class PickFiles:
    """The loop's files about its selections: galleries, and in manual mode ``to_annotate/``.

    Args:
        loop: the :class:`~mmdet_isal.active.loop.ActiveLearningLoop` (its ledger, pool,
            trainer, config and directories are read when needed).
    """

    def __init__(self, loop):
        self.loop = loop
        self._predicted: Tuple[Optional[int], Dict[Any, Any]] = (None, {})

    def pseudo_box_thr(self, step: int) -> float:
        """The score from which a detection is a pseudo box at ``step``: the scorer's
        ``score_thr``, or (a threshold chosen per step) the one the strategy reported."""
        loop = self.loop
        thr = loop.al.scorer.detection.score_thr
        if isinstance(thr, (int, float)):
            return float(thr)
        info = loop.ledger.steps.get(step, {}).get('strategy_info') or {}
        return float(info.get('score_thr', loop.al.prelabel_thr))

    def predictions(self, step: int, ids: Sequence[Any]) -> Optional[Dict[Any, Dict[str, Any]]]:
        """The detections of step ``step``'s model on the images ``ids``
        (:meth:`~mmdet_isal.active.trainer.Trainer.predict`; every process calls it), kept for
        the rest of the step; ``None`` if the trainer predicts no boxes."""
        loop = self.loop
        kept_step, kept = self._predicted
        todo = [i for i in ids if kept_step != step or i not in kept]
        if todo:
            ann_file = osp.join(loop.step_dir(step), 'strategy', 'predicted_images')
            if is_main_process():
                ann_file = loop.pool.write_images(todo, ann_file)
            box = [ann_file]
            broadcast_object_list(box)  # every process reads the file the main process wrote
            found = loop.trainer.predict(loop.job(step), box[0])
            if found is None:
                return None
            kept = {**(kept if kept_step == step else {}), **found}
            self._predicted = (step, kept)
        return {i: kept[i] for i in ids if i in kept}

    def write(self, step: int, chosen: Sequence[Any]) -> None:
        """The gallery of step ``step``'s selection ``chosen`` (its first
        ``active_learning.gallery`` picks, in ``step_K/strategy/``) and, in manual mode,
        ``step_K/to_annotate/``."""
        loop = self.loop
        shown = list(chosen[:loop.al.gallery])
        needed = list(chosen) if loop.manual is not None else shown
        if not needed:
            return
        predictions = self.predictions(step, needed)
        if not is_main_process():
            return
        images = loop.ledger.images
        picks = picks_of(loop.pool, needed, {i: images[i]['ranks'].get(step) for i in needed},
                         {i: images[i]['scores'].get(step) for i in needed})
        gallery = None
        if shown:
            truth = None if loop.manual is not None else loop.pool.true_boxes(shown)
            gallery = write_gallery(
                osp.join(loop.step_dir(step), 'strategy'), picks[:len(shown)], predictions,
                self.pseudo_box_thr(step), truth,
                f'step_{step} ({loop.al.strategy_name}): the first {len(shown)} of '
                f'{len(chosen)} picks, rank and score')
        if loop.manual is not None:
            write_round(loop.manual.round_dir(step + 1), picks, predictions, loop.classes,
                        loop.pool.categories, loop.al.prelabel_thr,
                        dict(step=step, round=step + 1, strategy=loop.al.strategy,
                             seed=loop.al.seed, budget=loop.al.budget.to_dict()), gallery)

    def write_initial(self, chosen: Sequence[Any]) -> None:
        """Manual mode without a labeled set: ``DIR/initial/to_annotate/`` for the random
        initial set (no model yet: no pre-labels; the gallery shows the images)."""
        loop = self.loop
        if not is_main_process():
            return
        out_dir = loop.manual.round_dir(0)
        picks = picks_of(loop.pool, chosen, {}, {})
        gallery = write_gallery(out_dir, picks[:loop.al.gallery], None, 1.0, None,
                                f'the initial random set: {min(len(picks), loop.al.gallery)} '
                                f'of {len(picks)} images') if loop.al.gallery else None
        write_round(out_dir, picks, None, loop.classes, loop.pool.categories,
                    loop.al.prelabel_thr, dict(step=None, round=0, seed=loop.al.seed,
                                               strategy='random (the initial set)',
                                               budget=loop.al.initial.to_dict()), gallery)
