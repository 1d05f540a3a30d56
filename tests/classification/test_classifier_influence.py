"""ISAL for a classifier: the closed-form per-sample gradient of the last linear layer against
autograd, the influence against the exact formula and the core's scorer, and against
leave-one-in retraining on a tiny problem (float64 throughout)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmdet_isal.classification.influence import (LinearHead, classifier_influence,
                                                 closed_form_scores, linear_ce_grads,
                                                 model_influence)
from mmdet_isal.influence import ExactInverse, InfluenceScorer, SolverOptions


def _problem(seed=0, n=40, dim=4, classes=3):
    """Features with labels from a noisy linear teacher."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    teacher = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    noise = 0.8 * torch.randn(n, classes, generator=g, dtype=torch.float64)
    return x, (x @ teacher.T + noise).argmax(1)


def _linear(weight, bias):
    fc = nn.Linear(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        fc.weight.copy_(weight)
        fc.bias.copy_(bias)
    return fc


def test_closed_form_per_sample_gradient_matches_autograd():
    x, y = _problem(n=7, dim=5, classes=4)
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(4, 5, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    d_w, d_b = linear_ce_grads(x, weight, bias, y)
    assert d_w.shape == (7, 4, 5) and d_b.shape == (7, 4)
    s_w = torch.randn(4, 5, generator=g, dtype=torch.float64)
    s_b = torch.randn(4, generator=g, dtype=torch.float64)
    scores = closed_form_scores(x, weight, bias, y, s_w, s_b)
    for n in range(7):
        w = weight.clone().requires_grad_()
        b = bias.clone().requires_grad_()
        loss = F.cross_entropy((x[n:n + 1] @ w.T + b), y[n:n + 1])
        gw, gb = torch.autograd.grad(loss, (w, b))
        torch.testing.assert_close(d_w[n], gw, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(d_b[n], gb, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(scores[n], -((gw * s_w).sum() + (gb * s_b).sum()),
                                   rtol=1e-12, atol=1e-14)


def _exact_influence(fc, ref, lab, pool, damping):
    """-∇l(z)ᵀ (H + λI)⁻¹ ∇L(R) with H the Hessian of the mean CE over ``lab``, by hand."""
    def flat_loss(theta, x, y):
        k, d = fc.weight.shape
        w, b = theta[:k * d].view(k, d), theta[k * d:]
        return F.cross_entropy(x @ w.T + b, y)
    theta = torch.cat([fc.weight.detach().flatten(), fc.bias.detach()])
    hess = torch.autograd.functional.hessian(lambda t: flat_loss(t, *lab), theta)
    grad_ref = torch.autograd.functional.jacobian(lambda t: flat_loss(t, *ref), theta)
    s = torch.linalg.solve(hess + damping * torch.eye(len(theta), dtype=theta.dtype), grad_ref)
    pseudo = (pool @ fc.weight.T + fc.bias).argmax(1)
    out = []
    for n in range(len(pool)):
        g = torch.autograd.functional.jacobian(
            lambda t: flat_loss(t, pool[n:n + 1], pseudo[n:n + 1]), theta)
        out.append(-(g @ s))
    return torch.stack(out), pseudo


def test_influence_is_the_exact_formula_and_the_core_scorers():
    x, y = _problem(n=60)
    fc = _linear(*(torch.randn(3, 4, generator=torch.Generator().manual_seed(2),
                               dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
    before = [p.detach().clone() for p in fc.parameters()]
    ref, lab, pool = (x[:20], y[:20]), (x[20:45], y[20:45]), x[45:]
    result = classifier_influence(fc, ref, lab, pool, SolverOptions(solver='exact',
                                                                    damping=0.05),
                                  hessian_images=500, hessian_batch_size=4)
    expected, pseudo = _exact_influence(fc, ref, lab, pool, 0.05)
    assert result.hessian_samples == 25
    assert torch.equal(result.pseudo_labels, pseudo)
    torch.testing.assert_close(result.scores, expected, rtol=1e-9, atol=1e-12)
    # the core's own per-sample scores (layerwise and double backward) of the same s_test
    for mode in ('layerwise', 'backward'):
        scorer = InfluenceScorer(LinearHead(fc), ['fc.weight', 'fc.bias'],
                                 lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction='none'),
                                 ExactInverse(damping=0.05), score_mode=mode)
        core = scorer.score([(pool[:7], pseudo[:7]), (pool[7:], pseudo[7:])], result.s_test)
        torch.testing.assert_close(core, result.scores, rtol=1e-9, atol=1e-12)
    # at most hessian_images labeled samples form H; the scores stay finite and change
    fewer = classifier_influence(fc, ref, lab, pool, SolverOptions(solver='exact',
                                                                   damping=0.05),
                                 hessian_images=10)
    assert fewer.hessian_samples == 10
    assert not torch.allclose(fewer.scores, result.scores)
    # fc is not modified
    assert all(torch.equal(a, b) for a, b in zip(before, fc.parameters()))
    assert fc.weight.grad is None


def _train(x, y, damping, n, theta0, extra=None):
    """argmin (1/n)[Σ CE(x_i, y_i) + CE(extra)] + damping/2 |θ|², by Newton's method."""
    k, d = 3, x.shape[1]

    def objective(theta):
        w, b = theta[:k * d].view(k, d), theta[k * d:]
        total = F.cross_entropy(x @ w.T + b, y, reduction='sum')
        if extra is not None:
            total = total + F.cross_entropy(extra[0] @ w.T + b, extra[1], reduction='sum')
        return total / n + 0.5 * damping * theta.pow(2).sum()

    theta = theta0.clone()
    for _ in range(50):
        grad = torch.autograd.functional.jacobian(objective, theta)
        if grad.norm() < 1e-13:
            break
        hess = torch.autograd.functional.hessian(objective, theta)
        theta = theta - torch.linalg.solve(hess, grad)
    return theta


def _spearman(a, b):
    ra, rb = (np.argsort(np.argsort(np.asarray(v))) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_influence_ranks_like_leave_one_in_retraining():
    """Adding one pool sample (with its predicted class) to the training set and retraining to
    convergence changes the reference loss by about I(z) / n: the ranks agree (>= 0.9)."""
    x, y = _problem(seed=3, n=110, dim=4)
    train_x, train_y = x[:50], y[:50]
    ref_x, ref_y = x[50:80], y[50:80]
    pool = x[80:]
    damping, n = 0.1, 50
    theta = _train(train_x, train_y, damping, n, torch.zeros(15, dtype=torch.float64))
    fc = _linear(theta[:12].view(3, 4), theta[12:])
    result = classifier_influence(fc, (ref_x, ref_y), (train_x, train_y), pool,
                                  SolverOptions(solver='exact', damping=damping),
                                  hessian_images=500, hessian_batch_size=50)

    def ref_loss(t):
        return float(F.cross_entropy(ref_x @ t[:12].view(3, 4).T + t[12:], ref_y))

    base = ref_loss(theta)
    actual = []
    for k in range(len(pool)):
        z = (pool[k:k + 1], result.pseudo_labels[k:k + 1])
        actual.append(ref_loss(_train(train_x, train_y, damping, n, theta, extra=z)) - base)
    predicted = (result.scores / n).numpy()
    assert _spearman(predicted, actual) >= 0.9
    # and the first-order prediction is close in value, not only in rank
    assert np.corrcoef(predicted, actual)[0, 1] >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize('solver', ['cg', 'lissa'])
def test_other_solvers_agree_with_exact(solver):
    x, y = _problem(seed=4, n=90)
    fc = _linear(torch.randn(3, 4, generator=torch.Generator().manual_seed(5),
                             dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    args = ((x[:30], y[:30]), (x[30:70], y[30:70]), x[70:])
    exact = classifier_influence(fc, *args, SolverOptions(solver='exact', damping=0.1))
    options = dict(solver=solver, damping=0.1, depth=200)
    if solver == 'lissa':
        options.update(repeats=8, depth=400)
    other = classifier_influence(fc, *args, SolverOptions(**options), hessian_batch_size=40)
    assert _spearman(other.scores.numpy(), exact.scores.numpy()) >= 0.95


class _TinyClassifier(nn.Module):
    """A convolution, global average pooling and ``fc``: logits from images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def features(self, x):
        return torch.tanh(self.conv(x)).mean((2, 3))

    def forward(self, x):
        return self.fc(self.features(x))


def test_influence_through_the_images_is_the_closed_form_for_the_last_layer():
    torch.manual_seed(0)
    model = _TinyClassifier().double().eval()
    g = torch.Generator().manual_seed(6)
    images = torch.randn(50, 2, 5, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (50,), generator=g)
    ref, lab, pool = slice(0, 15), slice(15, 35), slice(35, 50)
    with torch.no_grad():
        feats = model.features(images)
    solver = SolverOptions(solver='exact', damping=0.05)
    closed = classifier_influence(model.fc, (feats[ref], labels[ref]),
                                  (feats[lab], labels[lab]), feats[pool], solver)

    def batches(part, y, size=6):
        x = images[part]
        return [(x[k:k + size], y[k:k + size]) for k in range(0, len(x), size)]

    scores, s_test = model_influence(model, ['fc'], batches(ref, labels[ref]),
                                     batches(lab, labels[lab]),
                                     batches(pool, closed.pseudo_labels), solver)
    torch.testing.assert_close(scores, closed.scores, rtol=1e-9, atol=1e-12)
    for a, b in zip(s_test, closed.s_test):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # with the convolution too, the influence is another one, and finite
    both, _ = model_influence(model, ['conv', 'fc'], batches(ref, labels[ref]),
                              batches(lab, labels[lab]), batches(pool, closed.pseudo_labels),
                              solver)
    assert torch.isfinite(both).all() and not torch.allclose(both, scores)


def test_pool_labels_replace_the_predicted_classes():
    """``pool_labels`` (the diagnostic with the true classes): the exact formula with those
    labels; a wrong count is named."""
    x, y = _problem(n=60)
    fc = _linear(*(torch.randn(3, 4, generator=torch.Generator().manual_seed(2),
                               dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
    ref, lab, pool, true = (x[:20], y[:20]), (x[20:45], y[20:45]), x[45:], y[45:]
    solver = SolverOptions(solver='exact', damping=0.05)
    result = classifier_influence(fc, ref, lab, pool, solver, pool_labels=true)
    predicted = classifier_influence(fc, ref, lab, pool, solver)
    assert torch.equal(result.pseudo_labels, true)
    assert not torch.equal(predicted.pseudo_labels, true)  # the labels matter here
    expected = closed_form_scores(pool, fc.weight.detach(), fc.bias.detach(), true,
                                  *result.s_test)
    torch.testing.assert_close(result.scores, expected, rtol=1e-12, atol=1e-14)
    same = predicted.pseudo_labels == true
    torch.testing.assert_close(result.scores[same], predicted.scores[same])
    assert not torch.allclose(result.scores[~same], predicted.scores[~same])
    with pytest.raises(ValueError, match='3 pool_labels for 15 pool samples'):
        classifier_influence(fc, ref, lab, pool, solver, pool_labels=true[:3])
