"""ISAL for a classifier, as the paper does it: the influence of each unlabeled image, with its
predicted class as pseudo-label, on the cross-entropy of the reference set, through the
classifier's last linear layer.

With the backbone fixed, the last layer ``y = W x + b`` sees every image only through its
pooled features ``x``, and the per-sample gradient of the cross-entropy ``l = CE(y, c)`` has a
closed form: ``∂l/∂y = softmax(y) - onehot(c)`` (the output gradient ``g``), ``∂l/∂W = g ⊗ x``
and ``∂l/∂b = g`` (:func:`linear_ce_grads`). So the pool pass is one forward to the features
(:func:`~.outputs.classify_list`) and, for every image at once, ``∇l · s = ⟨g, s_W x + s_b⟩``
(:func:`closed_form_scores`): no per-sample backward.

``s_test = (H + λI)⁻¹ ∇L(R)`` comes from the model-agnostic influence core
(:class:`~mmdet_isal.influence.InfluenceScorer` on the last layer alone, float64): the mean
reference gradient over the reference set R (the val set), H the Hessian of the mean
cross-entropy of at most ``hessian_images`` labeled images, the solver of the scorer options
(LiSSA, CG or exact). With more parameters than the last layer (the paper's option of the last
block too), :func:`model_influence` runs the influence core on the images themselves. Imports
torch, numpy, the influence core and the package's random streams only.
"""
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmdet_isal.influence import InfluenceScorer, SolverOptions, build_solver
from mmdet_isal.utils.rng import hessian_subset_rng

__all__ = ['linear_ce_grads', 'closed_form_scores', 'LinearHead', 'classifier_influence',
           'ClassifierInfluence', 'model_influence']


def _output_grads(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``softmax(logits) - onehot(labels)``: the gradient of each sample's cross-entropy with
    respect to its logits, [N, K]."""
    grad = logits.softmax(1)
    grad[torch.arange(len(labels)), labels] -= 1
    return grad


def linear_ce_grads(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradients of ``CE(W x + b, c)`` in closed form.

    Args:
        features: [N, C] the inputs ``x`` of the linear layer.
        weight, bias: [K, C] and [K], the layer's parameters.
        labels: [N] the classes ``c`` (long).

    Returns:
        ``(dW [N, K, C], db [N, K])``: ``g_n ⊗ x_n`` and ``g_n``, ``g_n = softmax(y_n) -
        onehot(c_n)``.
    """
    grad = _output_grads(features @ weight.T + bias, labels)
    return grad[:, :, None] * features[:, None, :], grad


def closed_form_scores(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       labels: torch.Tensor, s_weight: torch.Tensor,
                       s_bias: torch.Tensor) -> torch.Tensor:
    """``I(z_n) = -∇l_n · s`` for every sample, ``∇l_n = (g_n ⊗ x_n, g_n)`` as in
    :func:`linear_ce_grads`: ``-⟨g_n, s_W x_n + s_b⟩``, [N], without forming the gradients.

    Args:
        features, weight, bias, labels: as :func:`linear_ce_grads`.
        s_weight, s_bias: [K, C] and [K], the direction ``s`` (s_test).
    """
    grad = _output_grads(features @ weight.T + bias, labels)
    return -(grad * (features @ s_weight.T + s_bias)).sum(1)


class LinearHead(nn.Module):
    """A classifier's last linear layer on its own, run on pooled features: what the influence
    core differentiates (``fc.weight``, ``fc.bias``)."""

    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


def _ce_losses(model: LinearHead, batch) -> torch.Tensor:
    features, labels = batch
    return F.cross_entropy(model(features), labels, reduction='none')


def _batches(features: torch.Tensor, labels: torch.Tensor, size: int):
    return [(features[k:k + size], labels[k:k + size]) for k in range(0, len(labels), size)]


class ClassifierInfluence(NamedTuple):
    """What :func:`classifier_influence` returns.

    Attributes:
        scores: [N] the influence of each pool sample on the reference loss (negative: adding
            it lowers the loss), float64.
        pseudo_labels: [N] the predicted classes the scores assume.
        s_test: ``(s_W, s_b)``, float64.
        hessian_samples: how many labeled samples formed H.
    """
    scores: torch.Tensor
    pseudo_labels: torch.Tensor
    s_test: Tuple[torch.Tensor, torch.Tensor]
    hessian_samples: int


def classifier_influence(fc: nn.Linear, reference: Tuple[torch.Tensor, torch.Tensor],
                         labeled: Tuple[torch.Tensor, torch.Tensor], pool: torch.Tensor,
                         solver: Optional[SolverOptions] = None, hessian_images: int = 500,
                         hessian_batch_size: int = 8, seed: int = 0,
                         batch_size: int = 4096,
                         pool_labels: Optional[torch.Tensor] = None) -> ClassifierInfluence:
    """ISAL's influence of every pool sample, with its predicted class as label, through the
    last linear layer ``fc`` (float64 throughout; ``fc`` is not modified).

    Args:
        fc: the classifier's last layer.
        reference: ``(features [R, C], labels [R])`` of the reference set.
        labeled: ``(features [L, C], labels [L])`` of the labeled set; at most
            ``hessian_images`` of them, drawn with ``seed``, form H.
        pool: [N, C] features of the pool samples.
        solver: the inverse-HVP solver options (default :class:`SolverOptions`: LiSSA).
        hessian_images: the most labeled samples in H (paper: 500).
        hessian_batch_size: samples per Hessian batch (LiSSA's unit of one iteration).
        seed: draws the Hessian samples and seeds the solver.
        batch_size: samples per batch of the reference gradient and the pool pass (the
            numbers do not depend on it).
        pool_labels: [N] labels to score the pool samples with instead of their predicted
            classes (a diagnostic in simulation: the true classes); returned as
            ``pseudo_labels``.
    """
    solver = solver or SolverOptions()
    if pool_labels is not None and len(pool_labels) != len(pool):
        raise ValueError(f'classifier_influence: {len(pool_labels)} pool_labels for '
                         f'{len(pool)} pool samples')
    head = LinearHead(nn.Linear(fc.in_features, fc.out_features).double())
    with torch.no_grad():
        head.fc.weight.copy_(fc.weight.detach())
        head.fc.bias.copy_(fc.bias.detach())
    ref_x, ref_y = reference[0].double(), reference[1].long()
    lab_x, lab_y = labeled[0].double(), labeled[1].long()
    take = min(int(hessian_images), len(lab_y))
    # the Hessian images are drawn as the detection scorer draws them
    chosen = np.sort(hessian_subset_rng(seed).choice(len(lab_y), take, replace=False))
    index = torch.as_tensor(chosen, dtype=torch.long)
    hessian = _batches(lab_x[index], lab_y[index], hessian_batch_size)
    ihvp = build_solver(solver, seed=seed, num_batches=len(hessian))
    scorer = InfluenceScorer(head, ['fc.weight', 'fc.bias'], _ce_losses, ihvp)
    head.eval()
    v = scorer.reference_gradient(_batches(ref_x, ref_y, batch_size), reduction='mean')
    s_w, s_b = scorer.inverse_hvp(v, hessian)
    pool_x = pool.double()
    with torch.no_grad():
        weight, bias = head.fc.weight, head.fc.bias
        pseudo = (pool_x @ weight.T + bias).argmax(1) if pool_labels is None else \
            torch.as_tensor(pool_labels).long()
        parts = [closed_form_scores(pool_x[k:k + batch_size], weight, bias,
                                    pseudo[k:k + batch_size], s_w, s_b)
                 for k in range(0, len(pool_x), batch_size)]
    scores = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    return ClassifierInfluence(scores, pseudo, (s_w.detach(), s_b.detach()), take)


def _image_losses(model: nn.Module, batch) -> torch.Tensor:
    inputs, labels = batch[0], batch[1]
    return F.cross_entropy(model(inputs), labels, reduction='none')


def model_influence(model: nn.Module, params: Sequence[str], reference: Iterable,
                    hessian: Sequence, pool: Iterable, solver: SolverOptions,
                    seed: int = 0) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """ISAL's influence through any parameters of a classifier (e.g. its last block and its last
    layer), on images: the influence core's :class:`~mmdet_isal.influence.InfluenceScorer`
    with the per-sample cross-entropy of ``model(inputs)`` (logits), in the model's dtype.

    Args:
        model: the classifier in eval mode (``model(inputs)`` gives the logits).
        params: parameter or module names or patterns
            (:func:`~mmdet_isal.influence.select_parameters`), e.g.
            ``['backbone.layer4.1', 'fc']``.
        reference: ``(inputs, labels)`` batches of the reference set (read once).
        hessian: ``(inputs, labels)`` batches of the Hessian images (re-iterable).
        pool: ``(inputs, pseudo labels)`` batches of the pool (read once).
        solver: the inverse-HVP solver options (``'exact'`` only for a few thousand
            parameters).
        seed: seeds the solver.

    Returns:
        ``(scores [N], s_test)``.
    """
    ihvp = build_solver(solver, seed=seed, num_batches=len(hessian))
    scorer = InfluenceScorer(model, list(params), _image_losses, ihvp)
    v = scorer.reference_gradient(reference, reduction='mean')
    s_test = scorer.inverse_hvp(v, hessian)
    return scorer.score(pool, s_test), s_test
