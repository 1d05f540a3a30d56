"""The refit check (mmdet_isal.classification.refit) on tiny float64 problems: the last layer's
fit is the objective's optimum, and the first-order prediction of adding one image matches the
refit."""
import pytest
import torch

from mmdet_isal.classification.refit import fit_last_layer, refit_check


def blobs(n, generator):
    """Three classes in 2-D, overlapping Gaussian blobs."""
    y = torch.randint(0, 3, (n,), generator=generator)
    centres = torch.tensor([[0., 0.], [1.5, 0.], [0., 1.5]], dtype=torch.float64)
    return torch.randn(n, 2, generator=generator, dtype=torch.float64) + centres[y], y


def test_fit_last_layer_is_the_optimum():
    g = torch.Generator().manual_seed(0)
    x, y = blobs(300, g)
    fc = fit_last_layer(x, y, 3, l2=0.01)
    weight, bias = fc.weight.detach().requires_grad_(), fc.bias.detach().requires_grad_()
    loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y) + \
        0.005 * (weight.pow(2).sum() + bias.pow(2).sum())
    grads = torch.autograd.grad(loss, (weight, bias))
    assert max(t.abs().max().item() for t in grads) < 1e-7
    # strictly convex: another start reaches the same layer
    start = torch.nn.Linear(2, 3).double()
    again = fit_last_layer(x, y, 3, l2=0.01, init=start)
    assert torch.allclose(again.weight, fc.weight, atol=1e-6)
    assert torch.allclose(again.bias, fc.bias, atol=1e-6)


def test_first_order_prediction_of_one_added_image_matches_the_refit():
    g = torch.Generator().manual_seed(0)
    labeled, pool, reference = blobs(400, g), blobs(60, g), blobs(200, g)
    base, rows = refit_check(labeled, pool, reference, [1, 30], l2=0.01, random_draws=3)
    assert base > 0
    assert [(r.name, r.size) for r in rows] == [
        ('isal', 1), ('isal_true_labels', 1), ('random', 1),
        ('isal', 30), ('isal_true_labels', 30), ('random', 30)]
    for row in rows[:3]:  # one image of 401: the first-order term is within a few %
        assert row.change == pytest.approx(row.predicted, rel=0.15)
    # the true-label influence's single best image lowers the reference loss, and its top 30
    # lower it more than random sets of 30 on average
    assert rows[1].change < 0
    assert rows[4].change < rows[5].change
    assert rows[5].draws == 3 and rows[5].change_std > 0


def test_bad_arguments_are_named():
    g = torch.Generator().manual_seed(0)
    data = blobs(20, g)
    with pytest.raises(ValueError, match='sizes must be in 1 .. 20'):
        refit_check(data, data, data, [21])
    with pytest.raises(ValueError, match='l2 must be > 0'):
        fit_last_layer(*data, 3, l2=0)
