"""Every optimizer reaches the known optimum of a quadratic and of a small
logistic problem (the reference optimum from scipy's L-BFGS)."""
import numpy as np
import pytest
from scipy.optimize import minimize

from shardlearn import models, optim
from shardlearn.core import tree
from shardlearn.models import penalty

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1),
    "sgd_invscaling": lambda: optim.sgd(optim.inverse_scaling(0.3, power_t=0.1)),
    "momentum": lambda: optim.sgd(0.05, momentum=0.9),
    "nesterov": lambda: optim.sgd(0.05, momentum=0.9, nesterov=True),
    "adagrad": lambda: optim.adagrad(0.5),
    "adam": lambda: optim.chain(optim.adam(0.05)),
    "ftrl": lambda: optim.ftrl(alpha=0.5, beta=1.0),
    "clipped_sgd": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.1)),
}


def _run(opt, grad_fn, params, steps):
    state = opt.init(params)
    for _ in range(steps):
        updates, state = opt.update(grad_fn(params), state, params)
        params = optim.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_quadratic_optimum(name):
    # f(w) = 0.5 (w - c)^T A (w - c); optimum c
    A = np.diag([1.0, 3.0, 0.5])
    c = np.array([1.0, -2.0, 0.5])
    out = _run(OPTIMIZERS[name](), lambda p: {"w": A @ (p["w"] - c)}, {"w": np.zeros(3)}, 3000)
    np.testing.assert_allclose(out["w"], c, atol=1e-3)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_logistic_optimum(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X @ np.array([1.0, -1.0, 0.5]) + 0.3 + rng.normal(size=200) > 0).astype(float)
    model, alpha = models.get("logistic"), 0.05

    def grad(p):
        _, g = model.loss_and_grad(p, X, y)
        return {"w": g["w"] + alpha * p["w"], "b": g["b"]}

    def f(v):
        p = {"w": v[1:], "b": v[0]}
        return penalty.objective(model, p, X, y, alpha=alpha)

    ref = minimize(f, np.zeros(4), method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15}).x
    out = _run(OPTIMIZERS[name](), grad, model.init(3), 4000)
    vec, _ = tree.ravel(out)
    np.testing.assert_allclose(vec, ref, atol=2e-3)


def test_l1_prox_reaches_lasso_optimum():
    # min 0.5||w - c||^2 + lam ||w||_1 has the solution soft_threshold(c, lam)
    c, lam = np.array([2.0, -0.3, 0.05, -1.0]), 0.5
    opt = optim.chain(optim.sgd(0.1), optim.prox_l1(lam, 0.1))
    out = _run(opt, lambda p: {"w": p["w"] - c}, {"w": np.zeros(4)}, 500)
    np.testing.assert_allclose(out["w"], [1.5, 0.0, 0.0, -0.5], atol=1e-8)


def test_ftrl_l1_gives_exact_zeros():
    # a linear loss with constant gradient g: after t steps z = t * g (while w = 0) against a
    # per-round threshold t * l1, so a coordinate stays exactly zero for good while |g_j| <= l1
    g = np.array([-1.0, 0.1, 0.0])
    opt = optim.ftrl(alpha=0.5, l1=0.5)
    out = _run(opt, lambda p: {"w": g}, {"w": np.zeros(3)}, 400)
    assert out["w"][1] == 0.0 and out["w"][2] == 0.0
    assert out["w"][0] > 0.0
    out = _run(optim.ftrl(alpha=0.5, l1=0.05), lambda p: {"w": g}, {"w": np.zeros(3)}, 4)  # |g_1| > l1
    assert out["w"][1] < 0.0


# learning rates at which each rule settles within a few thousand full-batch steps
RATES = {"sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "adagrad": 1.0, "adam": 0.01, "ftrl": 1.0}


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_rule_reaches_the_elastic_net_optimum(name):
    # min 0.5 ||A w - c||^2 / n + l1 ||w||_1 + l2/2 ||w||^2 with a free (unpenalised) coordinate:
    # the fixed point of make(name, l1=..., l2=...) must be the optimum, whatever the rule's steps
    rng = np.random.default_rng(3)
    A = rng.normal(size=(40, 5)) * np.array([0.5, 1.0, 2.0, 1.0, 3.0])
    c = A @ np.array([1.0, 0.0, -0.5, 0.05, 0.3]) + 0.1 * rng.normal(size=40)
    l1 = {"w": np.array([0.0, 0.2, 0.2, 0.2, 0.2])}
    l2 = {"w": np.array([0.0, 0.1, 0.1, 0.1, 0.1])}

    def f(v):
        return 0.5 * np.mean((A @ v - c) ** 2) + np.sum(l1["w"] * np.abs(v)) + 0.5 * np.sum(l2["w"] * v * v)

    ref = minimize(f, np.zeros(5), method="Powell", options={"xtol": 1e-12, "ftol": 1e-15, "maxiter": 100000}).x
    grad = lambda p: {"w": A.T @ (A @ p["w"] - c) / A.shape[0]}
    out = _run(optim.make(name, RATES[name], l1=l1, l2=l2), grad, {"w": np.zeros(5)}, 6000)
    np.testing.assert_allclose(out["w"], ref, atol=1e-6)
    assert out["w"][1] == 0.0  # L1 gives exact zeros under every rule


def test_add_l2_and_clip():
    p = {"w": np.array([3.0, 4.0])}
    t = optim.add_l2(0.5)
    u, _ = t.update({"w": np.zeros(2)}, t.init(p), p)
    np.testing.assert_allclose(u["w"], [1.5, 2.0])
    c = optim.clip_by_global_norm(1.0)
    u, _ = c.update(p, c.init(p), p)
    assert tree.global_norm(u) == pytest.approx(1.0)


def test_make_rejects_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        optim.make("rmsprop", 0.1)
