"""Every model's gradient against central finite differences."""
import zlib

import numpy as np
import pytest
import scipy.sparse as sp

from shardlearn import models
from shardlearn.core import tree


def _problem(name, sparse, rng, n=40, d=5):
    X = rng.normal(size=(n, d))
    X[rng.random((n, d)) < 0.4] = 0.0
    n_out = {"softmax": 3, "hinge": 3, "squared_hinge": 1}.get(name, 1)
    if name == "linear":
        y = rng.normal(size=n)
    elif name == "logistic":
        y = rng.integers(0, 2, n).astype(float)
    else:
        y = rng.integers(0, max(n_out, 2), n)
    return (sp.csr_matrix(X) if sparse else X), y, n_out


@pytest.mark.parametrize("name", sorted(models.MODELS))
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("intercept", [False, True])
def test_gradient_matches_finite_differences(name, sparse, weighted, intercept):
    rng = np.random.default_rng(zlib.crc32(repr((name, sparse, weighted, intercept)).encode()))
    model = models.get(name)
    X, y, n_out = _problem(name, sparse, rng)
    sw = rng.uniform(0.1, 3.0, X.shape[0]) if weighted else None
    params = model.init(X.shape[1], n_out)
    params = {k: rng.normal(scale=0.3, size=np.shape(v)) for k, v in params.items()}
    if not intercept:
        params["b"] = np.zeros_like(params["b"])
    vec, unravel = tree.ravel(params)
    _, grads = model.loss_and_grad(params, X, y, sw)
    gvec, _ = tree.ravel(grads)
    h = 1e-6
    fd = np.array([
        (model.loss_and_grad(unravel(vec + h * e), X, y, sw)[0] - model.loss_and_grad(unravel(vec - h * e), X, y, sw)[0])
        / (2 * h)
        for e in np.eye(vec.size)
    ])
    # hinge is not differentiable at margin 1; random parameters avoid it almost surely
    np.testing.assert_allclose(gvec, fd, rtol=1e-5, atol=1e-8)


def test_dense_and_sparse_agree_and_float32_stays_close():
    rng = np.random.default_rng(1)
    X, y, _ = _problem("logistic", False, rng)
    model = models.get("logistic")
    p = {"w": rng.normal(size=5), "b": np.array(0.3)}
    l_dense, g_dense = model.loss_and_grad(p, X, y)
    l_sparse, g_sparse = model.loss_and_grad(p, sp.csr_matrix(X), y)
    l32, g32 = model.loss_and_grad(p, X.astype(np.float32), y)
    assert l_dense == pytest.approx(l_sparse, rel=1e-12)
    np.testing.assert_allclose(g_dense["w"], g_sparse["w"], rtol=1e-12)
    assert l32 == pytest.approx(l_dense, rel=1e-5)
    assert g32["w"].dtype == np.float64


def test_weights_equal_repetition():
    rng = np.random.default_rng(2)
    X, y, _ = _problem("logistic", False, rng, n=10)
    model = models.get("logistic")
    p = {"w": rng.normal(size=5), "b": np.array(-0.2)}
    sw = np.array([2, 1, 1, 1, 1, 1, 1, 1, 1, 3], dtype=float)
    rep = np.repeat(np.arange(10), sw.astype(int))
    l1, g1 = model.loss_and_grad(p, X, y, sw)
    l2, g2 = model.loss_and_grad(p, X[rep], y[rep])
    assert l1 == pytest.approx(l2, rel=1e-12)
    np.testing.assert_allclose(g1["w"], g2["w"], rtol=1e-12)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'probit'; expected one of linear"):
        models.get("probit")
