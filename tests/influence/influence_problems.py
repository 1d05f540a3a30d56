"""Tiny float64 problems with closed-form gradients and Hessians.

Both models are ``nn.Linear(D, 1)`` with per-sample losses that include an L2 term
``alpha/2·‖θ‖²`` on all parameters (weight and bias), so that the mean Hessian is positive
definite. Vectors flatten as ``[weight..., bias]`` (the ``named_parameters`` order), which is
also how the closed forms below order θ. Batches are dicts: the scorer must treat them as
opaque.
"""

import numpy as np
import torch
from torch import nn

ALPHA = 0.1


def make_batches(x, y, batch_size):
    """Split samples into a list of ``{'x': [B, D], 'y': [B]}`` dicts, in order."""
    return [{'x': x[i:i + batch_size], 'y': y[i:i + batch_size]}
            for i in range(0, len(x), batch_size)]


def augment(x):
    """Rows ``[x, 1]``: the closed forms treat the bias as a weight on a constant feature."""
    x = np.asarray(x)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def theta_of(model):
    return np.concatenate([model.weight.detach().numpy().ravel(),
                           model.bias.detach().numpy().ravel()])


def set_theta(model, theta):
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(theta[:-1]).view_as(model.weight))
        model.bias.copy_(torch.as_tensor(theta[-1:]).view_as(model.bias))


def to_vector(flat, model):
    """A flat numpy θ-vector as the scorer's list ``[weight, bias]``."""
    flat = torch.as_tensor(np.asarray(flat), dtype=model.weight.dtype)
    return [flat[:-1].view_as(model.weight).clone(), flat[-1:].view_as(model.bias).clone()]


def flat(vector):
    return torch.cat([v.reshape(-1) for v in vector]).detach().cpu().double().numpy()


def l2(model):
    return sum((p**2).sum() for p in model.parameters())


def ridge_loss(model, batch):
    """½(wᵀx + b − y)² + ALPHA/2·‖θ‖² per sample."""
    residual = model(batch['x']).squeeze(-1) - batch['y']
    return 0.5 * residual**2 + 0.5 * ALPHA * l2(model)


def logistic_loss(model, batch):
    """Binary cross-entropy with logits plus ALPHA/2·‖θ‖² per sample (labels in {0, 1})."""
    z = model(batch['x']).squeeze(-1)
    return nn.functional.softplus(z) - batch['y'] * z + 0.5 * ALPHA * l2(model)


def ridge_hessian(x):
    """Mean Hessian ``[P, P]`` (independent of θ and y)."""
    xa = augment(x)
    return xa.T @ xa / len(xa) + ALPHA * np.eye(xa.shape[1])


def ridge_grads(x, y, theta):
    """Per-sample gradients ``[N, P]``."""
    xa = augment(x)
    return (xa @ theta - np.asarray(y))[:, None] * xa + ALPHA * theta


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def logistic_grads(x, y, theta):
    xa = augment(x)
    return (sigmoid(xa @ theta) - np.asarray(y))[:, None] * xa + ALPHA * theta


def logistic_hessian(x, theta):
    xa = augment(x)
    p = sigmoid(xa @ theta)
    return (xa * (p * (1 - p))[:, None]).T @ xa / len(xa) + ALPHA * np.eye(xa.shape[1])


def logistic_mean_loss(x, y, theta):
    z = augment(x) @ theta
    return float(np.mean(np.logaddexp(0, z) - np.asarray(y) * z) + 0.5 * ALPHA * theta @ theta)


def logistic_problem():
    """The logistic problem of the tests: 42 samples, 3 features, θ not at the optimum.

    Returns ``(x, y, model)``; the closed forms above give its gradients and Hessians.
    """
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(42, 3, generator=gen, dtype=torch.float64)
    logits = x @ torch.tensor([1.5, -1.0, 0.5], dtype=torch.float64)
    y = (torch.rand(42, generator=gen, dtype=torch.float64) < torch.sigmoid(logits)).double()
    model = nn.Linear(3, 1).double()
    set_theta(model, np.array([0.7, -0.4, 0.3, -0.2]))
    return x, y, model
