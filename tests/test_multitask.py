"""Joint multi-task models (issue 17, item 1, one process): the objective's gradient against
finite differences; the squared-loss fit against the normal equations of the same joint
ridge; ``task_alpha -> inf`` equals one pooled model with per-task intercepts and
``alpha -> inf`` one ridge model per task (1e-5); sample weights, unknown tasks, bad input,
model files."""
import numpy as np
import pytest
import scipy.sparse as sp

import shardlearn
from shardlearn import MultiTaskLinearRegression, MultiTaskLogisticRegression
from shardlearn.core.errors import DataError
from shardlearn.models import multitask as mt


def _data(n=240, d=4, T=5, seed=0, classify=False):
    rng = np.random.default_rng(seed)
    X, t = rng.normal(size=(n, d)), rng.integers(T, size=n)
    W = rng.normal(size=d) + 0.5 * rng.normal(size=(T, d))
    z = np.einsum("ij,ij->i", X, W[t]) + rng.normal(size=T)[t]
    y = (z + rng.normal(size=n) > 0).astype(int) if classify else z + 0.3 * rng.normal(size=n)
    return X, y, t


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("sparse", [False, True])
def test_the_gradient_matches_finite_differences(loss, sparse):
    X, y, t = _data(classify=loss == "logistic")
    X = sp.csr_matrix(X) if sparse else X
    rng = np.random.default_rng(1)
    sw = rng.uniform(0.5, 2.0, size=y.size)
    tasks = mt.Tasks(t, 6)  # task 5 has no rows: its gradient is its penalty's alone
    theta = rng.normal(size=4 + 6 * 4 + 6)

    def f(th):
        return mt.loss_and_grad(loss, mt.unflat(th, 4, 6), X, y, tasks, alpha=0.3, task_alpha=0.7,
                                sample_weight=sw)

    _, g = f(theta)
    eps = 1e-6
    fd = np.array([(f(theta + eps * e)[0] - f(theta - eps * e)[0]) / (2 * eps) for e in np.eye(theta.size)])
    np.testing.assert_allclose(mt.flat(g), fd, rtol=1e-6, atol=1e-8)


def _design(X, t, T):
    """The joint model as one linear model: [X | X in task t's block | one-hot task]."""
    n, d = X.shape
    blocks = np.zeros((n, T * d))
    for i in range(n):
        blocks[i, t[i] * d:(t[i] + 1) * d] = X[i]
    return np.hstack([X, blocks, np.eye(T)[t]])


def _ridge(A, y, penalties, sw=None):
    """argmin mean_w 0.5 (A theta - y)^2 + 0.5 sum_j penalties_j theta_j^2 (normal equations)."""
    p = np.ones(len(y)) / len(y) if sw is None else sw / sw.sum()
    return np.linalg.solve(A.T @ (p[:, None] * A) + np.diag(penalties), A.T @ (p * y))


@pytest.mark.parametrize("alpha,task_alpha", [(0.1, 1.0), (1.0, 0.05), (0.0, 0.5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_squared_fit_equals_the_joint_ridge_solution(alpha, task_alpha, weighted):
    X, y, t = _data()
    sw = np.random.default_rng(2).uniform(0.5, 2.0, size=y.size) if weighted else None
    m = MultiTaskLinearRegression(alpha=alpha, task_alpha=task_alpha).fit(X, y, tasks=t, sample_weight=sw)
    want = _ridge(_design(X, t, 5), y, np.r_[[alpha] * 4, [task_alpha] * 20, [0.0] * 5], sw)
    got = np.r_[m.coef_shared_, m.coef_tasks_.ravel(), m.intercept_]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def _elastic_reference(loss, A, y, l2, l1, sw=None):
    """argmin of the mean loss of ``A theta`` plus ``0.5 sum l2 theta^2 + sum l1 |theta|``: scipy's
    L-BFGS-B on ``theta = p - q``, ``p, q >= 0`` (an independent solver and formulation)."""
    from scipy.optimize import minimize
    from scipy.special import expit

    p = np.ones(len(y)) / len(y) if sw is None else sw / sw.sum()
    k = A.shape[1]

    def f(pq):
        th = pq[:k] - pq[k:]
        z = A @ th
        if loss == "squared":
            value, dz = p @ (0.5 * (z - y) ** 2), p * (z - y)
        else:
            value, dz = p @ (np.logaddexp(0, z) - y * z), p * (expit(z) - y)
        g = A.T @ dz + l2 * th
        return value + 0.5 * l2 @ th ** 2 + l1 @ pq[:k] + l1 @ pq[k:], np.r_[g + l1, -g + l1]

    r = minimize(f, np.zeros(2 * k), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (2 * k),
                 options={"maxiter": 20000, "ftol": 1e-16, "gtol": 1e-12, "maxcor": 30})
    return r.x[:k] - r.x[k:], r.fun


@pytest.mark.parametrize("cls", [MultiTaskLinearRegression, MultiTaskLogisticRegression])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("solver", ["lbfgs", "gd"])
def test_elastic_net_fit_equals_an_independent_solver(cls, fit_intercept, solver):
    """OWL-QN (and steepest descent) on the penalties split by l1_ratio, with weights: the same
    minimiser as scipy's L-BFGS-B on the split-sign problem, zeros where it has zeros."""
    X, y, t = _data(classify=cls is MultiTaskLogisticRegression)
    sw = np.random.default_rng(5).uniform(0.5, 2.0, size=y.size)
    alpha, task_alpha, l1_ratio = 0.05, 0.2, 0.6
    m = cls(alpha=alpha, task_alpha=task_alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, solver=solver,
            max_iter=20000, tol=1e-10).fit(X, y, tasks=t, sample_weight=sw)
    A = _design(X, t, 5) if fit_intercept else _design(X, t, 5)[:, :-5]
    l2 = np.r_[[alpha * (1 - l1_ratio)] * 4, [task_alpha * (1 - l1_ratio)] * 20, [0.0] * (A.shape[1] - 24)]
    l1 = np.r_[[alpha * l1_ratio] * 4, [task_alpha * l1_ratio] * 20, [0.0] * (A.shape[1] - 24)]
    want, best = _elastic_reference(m.LOSS, A, y.astype(float), l2, l1, sw)
    got = np.r_[m.coef_shared_, m.coef_tasks_.ravel(), m.intercept_ if fit_intercept else []]
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert m.objective_ == pytest.approx(best, rel=1e-9, abs=1e-12)
    assert 4 <= (got == 0).sum() and ((got == 0) == (np.abs(want) < 1e-8)).all()  # exact zeros where L1 puts them
    if not fit_intercept:
        assert (m.intercept_ == 0).all()


def test_task_alpha_to_infinity_pools_and_alpha_to_infinity_separates():
    X, y, t = _data()
    pooled = MultiTaskLinearRegression(alpha=0.2, task_alpha=1e7).fit(X, y, tasks=t)
    want = _ridge(np.hstack([X, np.eye(5)[t]]), y, np.r_[[0.2] * 4, [0.0] * 5])  # one w, an intercept per task
    np.testing.assert_allclose(pooled.coef_shared_, want[:4], atol=1e-5)
    np.testing.assert_allclose(pooled.intercept_, want[4:], atol=1e-5)
    assert np.abs(pooled.coef_tasks_).max() < 1e-5
    separate = MultiTaskLinearRegression(alpha=1e6, task_alpha=0.5).fit(X, y, tasks=t)
    assert np.abs(separate.coef_shared_).max() < 1e-5
    for k in range(5):  # task k alone: its mean loss, with task_alpha scaled by n / n_k
        r = t == k
        own = _ridge(np.hstack([X[r], np.ones((r.sum(), 1))]), y[r], [0.5 * len(y) / r.sum()] * 4 + [0.0])
        np.testing.assert_allclose(np.r_[separate.coef_tasks_[k], separate.intercept_[k]], own, atol=1e-5)


def test_logistic_fit_reaches_a_stationary_point_and_predicts_per_task():
    X, y, t = _data(classify=True)
    labels = np.where(y == 1, "yes", "no")
    m = MultiTaskLogisticRegression(alpha=0.05, task_alpha=0.1).fit(X, labels, tasks=t)
    params = {"w0": m.coef_shared_, "V": m.coef_tasks_, "b": m.intercept_}
    _, g = mt.loss_and_grad("logistic", params, X, y, mt.Tasks(np.searchsorted(m.tasks_, t), 5), alpha=0.05,
                            task_alpha=0.1)
    assert np.abs(mt.flat(g)).max() < 1e-6
    assert m.classes_.tolist() == ["no", "yes"] and m.score(X, labels, tasks=t) > 0.75
    p = m.predict_proba(X, tasks=t)
    assert np.allclose(p.sum(axis=1), 1.0) and (m.predict(X, tasks=t) == np.where(p[:, 1] > 0.5, "yes", "no")).all()


def test_weights_equal_repeated_rows_and_no_intercept_keeps_it_zero():
    X, y, t = _data(n=60)
    w = np.random.default_rng(3).integers(1, 4, size=60)
    a = MultiTaskLinearRegression(alpha=0.1, task_alpha=0.3).fit(X, y, tasks=t, sample_weight=w.astype(float))
    b = MultiTaskLinearRegression(alpha=0.1, task_alpha=0.3).fit(np.repeat(X, w, axis=0), np.repeat(y, w),
                                                                 tasks=np.repeat(t, w))
    np.testing.assert_allclose(a.coef_tasks_, b.coef_tasks_, atol=1e-7)
    c = MultiTaskLinearRegression(alpha=0.1, task_alpha=0.3, fit_intercept=False).fit(X, y, tasks=t)
    assert (c.intercept_ == 0).all()


def test_unknown_tasks_bad_input_and_model_files(tmp_path):
    X, y, t = _data()
    names = np.array(["s%d" % k for k in range(5)])[t]
    m = MultiTaskLinearRegression(alpha=0.1, task_alpha=0.3).fit(X, y, tasks=names)
    unseen = m.predict(X[:3], tasks=np.array(["zz"] * 3))
    counts = np.bincount(t, minlength=5)
    np.testing.assert_allclose(unseen, X[:3] @ m.coef_shared_ + counts @ m.intercept_ / counts.sum())
    with pytest.raises(DataError, match="fit needs tasks="):
        MultiTaskLinearRegression().fit(X, y)
    with pytest.raises(DataError, match="predict needs tasks="):
        m.predict(X)
    with pytest.raises(DataError, match=r"tasks has shape \(3,\); expected \(240,\), one task per row of X"):
        MultiTaskLinearRegression().fit(X, y, tasks=t[:3])
    with pytest.raises(DataError, match="X has 2 features; the model was fitted on 4"):
        m.predict(X[:, :2], tasks=names)
    m.save(str(tmp_path / "m"))
    back = shardlearn.load(str(tmp_path / "m"))
    assert type(back) is MultiTaskLinearRegression and back.get_params() == m.get_params()
    np.testing.assert_array_equal(back.predict(X, tasks=names), m.predict(X, tasks=names))
