"""The refit check: does a classifier's influence ranking pick images that lower the reference
loss when they are added and the last layer is fitted again?

ISAL ranks pool images by their first-order influence on the reference loss. Whether a ranking
keeps that promise can be measured where influence is exact for small changes: the backbone
fixed (its pooled features), the last layer a multinomial logistic regression with an L2 term,
fitted to its optimum (:func:`fit_last_layer`). Then, for each set size ``m``, the top ``m`` of
ISAL's ranking (pseudo-label = the predicted class, as ISAL scores them), the top ``m`` of the
same influence with the pool's true classes, and random sets are added to the labeled set with
their true classes, the layer is refitted, and the reference loss is measured again
(:func:`refit_check`). Beside each the first-order prediction of that change.

A simulation instrument: the refit uses the pool's true classes, which a real run has only
after annotation. Imports torch, numpy, the influence core and :mod:`.influence`.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmdet_isal.influence import SolverOptions
from .influence import classifier_influence, closed_form_scores

__all__ = ['fit_last_layer', 'reference_loss', 'RefitRow', 'refit_check']

Data = Tuple[torch.Tensor, torch.Tensor]


def _objective(weight, bias, features, labels, l2):
    return F.cross_entropy(features @ weight.T + bias, labels) + \
        0.5 * l2 * (weight.pow(2).sum() + bias.pow(2).sum())


def fit_last_layer(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                   l2: float, init: Optional[nn.Linear] = None, max_iter: int = 1000,
                   tol: float = 1e-9) -> nn.Linear:
    """The minimiser of ``mean CE(W x + b, y) + l2/2 (|W|² + |b|²)``, float64 (L-BFGS).

    Args:
        features: [N, C] the inputs of the layer.
        labels: [N] classes in ``0 .. num_classes - 1``.
        num_classes: K.
        l2: the L2 weight, > 0 (the objective is then strictly convex: one optimum).
        init: the start (e.g. the optimum of a smaller set); default zeros.
        max_iter: most L-BFGS iterations.
        tol: the gradient norm (max-abs) to stop at.

    Raises:
        ArithmeticError: the optimiser stopped with the gradient above ``100 · tol``.
    """
    if not l2 > 0:
        raise ValueError(f'fit_last_layer: l2 must be > 0 (a strictly convex objective), got '
                         f'{l2!r}')
    x, y = features.double(), labels.long()
    fc = nn.Linear(x.shape[1], num_classes).double()
    with torch.no_grad():
        if init is None:
            fc.weight.zero_()
            fc.bias.zero_()
        else:
            fc.weight.copy_(init.weight)
            fc.bias.copy_(init.bias)
    opt = torch.optim.LBFGS([fc.weight, fc.bias], lr=1, max_iter=max_iter,
                            tolerance_grad=tol, tolerance_change=0, history_size=50,
                            line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = _objective(fc.weight, fc.bias, x, y, l2)
        loss.backward()
        return loss

    opt.step(closure)
    closure()
    grad = max(fc.weight.grad.abs().max().item(), fc.bias.grad.abs().max().item())
    if grad > 100 * tol:
        raise ArithmeticError(f'fit_last_layer: L-BFGS stopped after {max_iter} iterations '
                              f'with gradient {grad:.3g} (> {100 * tol:.3g}); raise max_iter')
    fc.weight.grad = fc.bias.grad = None
    return fc


def reference_loss(fc: nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    """The mean cross-entropy of ``fc`` on ``(features, labels)`` (float64)."""
    with torch.no_grad():
        return F.cross_entropy(fc(features.double()), labels.long()).item()


class RefitRow(NamedTuple):
    """One added set of :func:`refit_check`.

    Attributes:
        name: ``'isal'`` (ISAL's top ``size``, scored with the predicted class),
            ``'isal_true_labels'`` (scored with the true class) or ``'random'``.
        size: the images added.
        change: the reference loss after the refit minus before (negative: lowered).
        predicted: the first-order prediction of ``change`` (influence of the set's images
            with their true classes, plus the shift of adding ``size`` images at all).
        accuracy: the refitted layer's accuracy on the reference set.
        draws: how many sets the row averages (random: several draws; else 1).
        change_std: the sample std of ``change`` over the draws (0 for one).
    """
    name: str
    size: int
    change: float
    predicted: float
    accuracy: float
    draws: int = 1
    change_std: float = 0.0


def refit_check(labeled: Data, pool: Data, reference: Data, sizes: Sequence[int],
                l2: float = 0.01, random_draws: int = 5, seed: int = 0
                ) -> Tuple[float, List[RefitRow]]:
    """Refit the last layer with ISAL's top sets and with random sets; see the module.

    Args:
        labeled, pool, reference: ``(features [N, C], labels [N])`` each; the pool's labels
            are its true classes (used to refit, and for ``isal_true_labels``).
        sizes: the set sizes ``m`` to add (each at most the pool's size).
        l2: the L2 weight of the refit objective; ISAL's s_test is ``(H + l2·I)⁻¹ ∇L(R)``
            with H the mean Hessian of all labeled images at the labeled set's optimum, i.e.
            the exact inverse Hessian of that objective.
        random_draws: random sets per size.
        seed: draws the random sets.

    Returns:
        ``(reference loss of the labeled set's optimum, rows)``, rows in the order isal,
        isal_true_labels, random for each size.
    """
    lab_x, lab_y = labeled[0].double(), labeled[1].long()
    pool_x, pool_y = pool[0].double(), pool[1].long()
    ref_x, ref_y = reference[0].double(), reference[1].long()
    sizes = [int(m) for m in sizes]
    if any(m < 1 or m > len(pool_y) for m in sizes):
        raise ValueError(f'refit_check: sizes must be in 1 .. {len(pool_y)} (the pool), got '
                         f'{sizes}')
    num_classes = int(max(lab_y.max(), pool_y.max(), ref_y.max())) + 1
    fc0 = fit_last_layer(lab_x, lab_y, num_classes, l2)
    base = reference_loss(fc0, ref_x, ref_y)
    n = len(lab_y)
    predicted = classifier_influence(
        fc0, (ref_x, ref_y), (lab_x, lab_y), pool_x,
        solver=SolverOptions(solver='exact', damping=l2), hessian_images=n,
        hessian_batch_size=n)
    s_w, s_b = predicted.s_test
    with torch.no_grad():  # the same s_test, with the pool's true classes
        true_scores = closed_form_scores(pool_x, fc0.weight, fc0.bias, pool_y, s_w, s_b)
    # adding m images reweights the old ones n/(n+m); the gradient of the new objective at the
    # old optimum is (Σ_S ∇l + m·l2·θ0)/(n+m), so the first-order change of the reference loss
    # is (Σ_S I(z) - m·l2·s·θ0)/(n+m)
    with torch.no_grad():
        shift = l2 * float((s_w * fc0.weight).sum() + (s_b * fc0.bias).sum())

    def refit(index: np.ndarray):
        picks = torch.as_tensor(index, dtype=torch.long)
        fc = fit_last_layer(torch.cat([lab_x, pool_x[picks]]),
                            torch.cat([lab_y, pool_y[picks]]), num_classes, l2, init=fc0)
        m = len(picks)
        with torch.no_grad():
            accuracy = (fc(ref_x).argmax(1) == ref_y).double().mean().item()
        first = (true_scores[picks].sum().item() - m * shift) / (n + m)
        return reference_loss(fc, ref_x, ref_y) - base, first, accuracy

    rng = np.random.default_rng(seed)
    rows = []
    for m in sizes:
        for name, scores in (('isal', predicted.scores), ('isal_true_labels', true_scores)):
            change, first, accuracy = refit(np.argsort(scores.numpy(), kind='stable')[:m])
            rows.append(RefitRow(name, m, change, first, accuracy))
        draws = np.array([refit(rng.choice(len(pool_y), m, replace=False))
                          for _ in range(random_draws)])
        rows.append(RefitRow('random', m, float(draws[:, 0].mean()), float(draws[:, 1].mean()),
                             float(draws[:, 2].mean()), random_draws,
                             float(draws[:, 0].std(ddof=1)) if random_draws > 1 else 0.0))
    return base, rows
