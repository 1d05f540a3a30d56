"""Fixtures: the tiny float64 problems of ``influence_problems``."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from influence_problems import (logistic_grads, logistic_hessian, logistic_loss, logistic_problem,
                                ridge_grads, ridge_hessian, ridge_loss, set_theta, theta_of)
from torch import nn


@pytest.fixture
def ridge():
    """A ridge problem: 42 samples, 3 features, θ not at the optimum (the math holds anywhere)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(42, 3, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.3 * torch.randn(
        42, generator=gen, dtype=torch.float64)
    model = nn.Linear(3, 1).double()
    set_theta(model, np.array([0.2, -0.1, 0.4, 0.05]))
    hessian = ridge_hessian(x.numpy())
    grads = ridge_grads(x.numpy(), y.numpy(), theta_of(model))
    return SimpleNamespace(x=x, y=y, model=model, loss=ridge_loss, hessian=hessian, grads=grads)


@pytest.fixture
def logistic():
    """A logistic problem: 42 samples, 3 features, θ not at the optimum."""
    x, y, model = logistic_problem()
    hessian = logistic_hessian(x.numpy(), theta_of(model))
    grads = logistic_grads(x.numpy(), y.numpy(), theta_of(model))
    return SimpleNamespace(x=x, y=y, model=model, loss=logistic_loss, hessian=hessian,
                           grads=grads)


@pytest.fixture(params=['ridge', 'logistic'])
def problem(request):
    return request.getfixturevalue(request.param)
