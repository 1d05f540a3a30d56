"""The layerwise per-sample derivative (one backward to the selected layers' outputs) against
per-sample gradients taken one sample at a time, in float64."""
import pytest
import torch
from influence_problems import make_batches
from torch import nn

from mmdet_isal.influence import ExactInverse, InfluenceScorer
from mmdet_isal.influence.layerwise import LayerwiseError, linear_layer_owners, sample_rows


class ConvNet(nn.Module):
    """A conv layer called twice per sample (on the image and on its mirror image), a frozen
    nonlinearity, and a linear head: selected layers with several calls and a bias left out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, stride=2)
        self.norm = nn.GroupNorm(1, 3)
        self.head = nn.Linear(3 * 3 * 3, 2)

    def forward(self, x):
        y = torch.tanh(self.norm(self.conv(x))) + torch.tanh(self.conv(x.flip(-1)))
        return self.head(y.flatten(1))


def conv_loss(model, batch):
    return ((model(batch['x']) - batch['y'])**2).sum(1) + torch.sigmoid(model(batch['x'])).prod(1)


@pytest.fixture
def convnet():
    torch.manual_seed(0)
    model = ConvNet().double()
    x = torch.randn(10, 2, 5, 5, dtype=torch.float64)
    y = torch.randn(10, 2, dtype=torch.float64)
    return model, make_batches(x, y, 4)


def one_at_a_time(model, params, loss, batches, s):
    """− ∇l_i · s, one backward per sample."""
    out = []
    for batch in batches:
        for i in range(len(batch['x'])):
            li = loss(model, {'x': batch['x'][i:i + 1], 'y': batch['y'][i:i + 1]}).sum()
            grads = torch.autograd.grad(li, params)
            out.append(-sum((g * v).sum() for g, v in zip(grads, s)))
    return torch.stack(out).detach()


def direction(params, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def test_layerwise_equals_per_sample_gradients(convnet):
    model, batches = convnet
    scorer = InfluenceScorer(model, ['conv', 'head.weight'], conv_loss, ExactInverse())
    assert scorer.param_names == ['conv.weight', 'conv.bias', 'head.weight']
    s = direction(scorer.params)
    scores = scorer.score(batches, s)
    assert scorer.score_mode_ == 'layerwise' and scorer.score_mode_reason_ is None
    expected = one_at_a_time(model, scorer.params, conv_loss, batches, s)
    torch.testing.assert_close(scores, expected, rtol=1e-12, atol=1e-12)
    backward = InfluenceScorer(model, ['conv', 'head.weight'], conv_loss, ExactInverse(),
                               score_mode='backward').score(batches, s)
    torch.testing.assert_close(scores, backward, rtol=1e-12, atol=1e-12)
    assert torch.equal(scorer.score_batch(batches[1], s), scores[4:8])


def grouped_loss(model, batch):
    """Calls the layers as a detector does: the backbone on the samples in another order
    (declared with sample_rows), the head on a row per box of one sample at a time."""
    x, y = batch['x'], batch['y']
    order = list(range(len(x)))[::-1]
    with sample_rows(order):
        feats = torch.tanh(model.conv(x[order]))
    feats = feats[torch.argsort(torch.tensor(order))]
    losses = []
    for i in range(len(x)):
        boxes = feats[i].flatten(1).t()[:4 + int(y[i, 0] > 0)]  # a few rows ("boxes")
        with sample_rows(i):
            out = model.head(boxes)
        losses.append(((out - y[i])**2).sum())
    return torch.stack(losses)


def test_sample_rows_attribute_rows_to_their_samples():
    torch.manual_seed(1)
    model = nn.ModuleDict(dict(conv=nn.Conv2d(2, 4, 3), head=nn.Linear(4, 2))).double()
    x = torch.randn(7, 2, 5, 5, dtype=torch.float64)
    batches = make_batches(x, torch.randn(7, 2, dtype=torch.float64), 3)
    scorer = InfluenceScorer(model, ['conv', 'head'], grouped_loss, ExactInverse(),
                             score_mode='layerwise')
    s = direction(scorer.params)
    expected = one_at_a_time(model, scorer.params, grouped_loss, batches, s)
    torch.testing.assert_close(scorer.score(batches, s), expected, rtol=1e-12, atol=1e-12)


def test_rows_outside_a_declaration_must_be_the_samples():
    """A layer called on more rows than samples, with nothing declared: not attributable."""
    model = nn.Linear(3, 1).double()

    def boxes_loss(model, batch):
        return model(batch['x'].reshape(-1, 3)).reshape(len(batch['x']), -1).sum(1)

    batches = [{'x': torch.randn(4, 2, 3, dtype=torch.float64)}]
    with pytest.raises(LayerwiseError, match='called on 8 rows for a batch of 4'):
        InfluenceScorer(model, ['weight'], boxes_loss, ExactInverse(),
                        score_mode='layerwise').score(batches, [torch.ones(1, 3)])
    auto = InfluenceScorer(model, ['weight'], boxes_loss, ExactInverse())
    scores = auto.score(batches, [torch.ones(1, 3, dtype=torch.float64)])
    assert auto.score_mode_ == 'backward' and '8 rows' in auto.score_mode_reason_
    torch.testing.assert_close(scores, -batches[0]['x'].sum((1, 2)))


def test_parameter_used_outside_its_layer_falls_back(logistic):
    """The test problems add a weight penalty on θ itself: not through the layer's output."""
    scorer = InfluenceScorer(logistic.model, ['weight', 'bias'], logistic.loss, ExactInverse())
    batches = make_batches(logistic.x, logistic.y, 7)
    s = direction(scorer.params)
    scores = scorer.score(batches, s)
    assert scorer.score_mode_ == 'backward'
    assert 'outside' in scorer.score_mode_reason_
    expected = InfluenceScorer(logistic.model, ['weight', 'bias'], logistic.loss,
                               ExactInverse(), score_mode='backward').score(batches, s)
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    with pytest.raises(LayerwiseError, match="'layerwise' does not apply.*outside"):
        InfluenceScorer(logistic.model, ['weight', 'bias'], logistic.loss, ExactInverse(),
                        score_mode='layerwise').score(batches, s)


def test_output_changed_in_place_falls_back():
    model = nn.Linear(3, 1).double()

    def in_place(model, batch):
        out = model(batch['x'])
        out.mul_(2.0)  # the recorded output is no longer what the loss saw
        return out.squeeze(-1)**2

    batches = make_batches(torch.randn(5, 3, dtype=torch.float64), torch.zeros(5), 5)
    s = direction(list(model.parameters()))
    auto = InfluenceScorer(model, ['weight', 'bias'], in_place, ExactInverse())
    scores = auto.score(batches, s)
    assert auto.score_mode_ == 'backward' and 'in place' in auto.score_mode_reason_
    expected = one_at_a_time(model, list(model.parameters()), in_place, batches, s)
    torch.testing.assert_close(scores, expected, rtol=1e-12, atol=1e-12)


def test_only_linear_and_conv_layers_qualify():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 1)).double()
    params = [model[0].weight, model[2].bias]
    owners = linear_layer_owners(model, params)
    assert owners == {model[0]: {'weight': 0}, model[2]: {'bias': 1}}
    assert linear_layer_owners(model, [model[1].weight]) is None
    with pytest.raises(ValueError, match=r"'layerwise' needs .*\['1.weight'\]"):
        InfluenceScorer(model, ['1.weight'], lambda m, b: m(b).sum(1), ExactInverse(),
                        score_mode='layerwise')
    auto = InfluenceScorer(model, ['1.weight'], lambda m, b: m(b).sum(1), ExactInverse())
    auto.score([torch.randn(2, 3, dtype=torch.float64)], [torch.ones(3, dtype=torch.float64)])
    assert auto.score_mode_ == 'backward'


def test_layerwise_hessian_vector_products_equal_the_double_backward(convnet):
    """The conv layer alone (called twice per sample, a nonlinearity and another layer after
    it): H = Jᵀ ∇²_y L J exactly, since its output is linear in its own parameters."""
    from mmdet_isal.influence.hvp import mean_hvp
    model, batches = convnet
    scorer = InfluenceScorer(model, ['conv'], conv_loss, ExactInverse())
    v = direction(scorer.params, seed=2)
    for _ in range(2):  # the first product is checked against the double backward
        got = scorer.hvp(v, batches)
        assert scorer.hvp_mode_ == 'layerwise' and scorer.hvp_mode_reason_ is None
        expected = mean_hvp(model, scorer.params, conv_loss, v, batches)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # and the whole solve: the exact inverse built from these products
    exact = InfluenceScorer(model, ['conv'], conv_loss, ExactInverse(damping=0.1),
                            score_mode='backward')
    fast = InfluenceScorer(model, ['conv'], conv_loss, ExactInverse(damping=0.1))
    for a, b in zip(fast.inverse_hvp(v, batches), exact.inverse_hvp(v, batches)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert fast.hvp_mode_ == 'layerwise'


def test_nested_selected_layers_use_the_double_backward():
    """A selected layer feeding another: the outputs are not linear in the parameters."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    batches = make_batches(torch.randn(6, 3, dtype=torch.float64),
                           torch.randn(6, dtype=torch.float64), 3)

    def loss(model, batch):
        return (model(batch['x']).squeeze(-1) - batch['y'])**2

    scorer = InfluenceScorer(model, ['0', '2'], loss, ExactInverse())
    v = direction(scorer.params)
    got = scorer.hvp(v, batches)
    assert scorer.hvp_mode_ == 'backward' and 'depends on' in scorer.hvp_mode_reason_
    from mmdet_isal.influence.hvp import mean_hvp
    for a, b in zip(got, mean_hvp(model, scorer.params, loss, v, batches)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # first-order scores are still layerwise (the chain rule holds for nested layers)
    s = scorer.score(batches, v)
    assert scorer.score_mode_ == 'layerwise'
    torch.testing.assert_close(s, one_at_a_time(model, scorer.params, loss, batches, v),
                               rtol=1e-12, atol=1e-12)


class SiblingHeads(nn.Module):
    """FCOS-like siblings: layers called on the same input. ``reg`` and ``ctr`` (the same
    convolution; ``ctr`` without a selected bias) and the two linear layers can run as one
    call each; ``cls`` (another kernel size) and ``grouped`` (groups=2) cannot."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Conv2d(2, 4, 3, padding=1)
        self.reg = nn.Conv2d(4, 3, 3, padding=1)
        self.ctr = nn.Conv2d(4, 1, 3, padding=1, bias=False)
        self.cls = nn.Conv2d(4, 2, 1)
        self.grouped = nn.Conv2d(4, 2, 3, padding=1, groups=2)
        self.fc_a = nn.Linear(4, 2)
        self.fc_b = nn.Linear(4, 3)

    def forward(self, x):
        f = torch.tanh(self.trunk(x))
        maps = [self.reg(f), self.ctr(f), self.cls(f), self.grouped(f)]
        pooled = f.mean((2, 3))
        return torch.cat([m.flatten(1) for m in maps] + [self.fc_a(pooled), self.fc_b(pooled)],
                         1)


def sibling_loss(model, batch):
    out = model(batch['x'])
    return torch.sigmoid(out).pow(2).sum(1) + batch['y'].sum(1) * out.sum(1)


@pytest.mark.parametrize('which', ['derivative', 'hvp'])
def test_layers_sharing_their_input_are_evaluated_together(monkeypatch, which):
    from mmdet_isal.influence import layerwise
    from mmdet_isal.influence.hvp import mean_hvp
    torch.manual_seed(3)
    model = SiblingHeads().double()
    batches = make_batches(torch.randn(5, 2, 4, 4, dtype=torch.float64),
                           torch.randn(5, 2, dtype=torch.float64), 3)
    selected = ['reg', 'ctr', 'cls', 'grouped', 'fc_a', 'fc_b.weight']
    applied = []
    real_apply = layerwise._apply
    monkeypatch.setattr(layerwise, '_apply',
                        lambda layer, *args: applied.append(layer) or real_apply(layer, *args))
    scorer = InfluenceScorer(model, selected, sibling_loss, ExactInverse(),
                             score_mode='layerwise')
    v = direction(scorer.params, seed=4)
    if which == 'derivative':
        got = scorer.score(batches, v)
        expected = one_at_a_time(model, scorer.params, sibling_loss, batches, v)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    else:
        got = scorer.hvp(v, batches)
        assert scorer.hvp_mode_ == 'layerwise'
        for a, b in zip(got, mean_hvp(model, scorer.params, sibling_loss, v, batches)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # per batch: reg+ctr, cls, grouped, fc_a+fc_b (the hvp's first product is also checked
    # the usual way, which does not evaluate the layers)
    assert len(applied) == 4 * len(batches)
