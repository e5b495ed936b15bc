"""The compiled column statistics (``kernels.columns``) against scipy and numpy: weighted sums
of x and x^2, the active-column mask and the renumbering, for float32 and float64 data, empty
matrices and rows; and the D2-shaped path they serve (the compacted
preconditioned fit) against scipy's own products."""
import numpy as np
import pytest
import scipy.sparse as sp

from shardlearn.kernels import columns


def _matrix(dtype, rows=500, cols=300, density=0.03, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = rng.normal(0, 50, X.data.size)  # badly scaled, signs mixed
    X = sp.diags((np.arange(rows) != 7).astype(float)) @ X  # row 7 empty
    X.eliminate_zeros()
    return sp.csr_matrix(X, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_column_sums_equal_scipys_products(dtype, weighted):
    X = _matrix(dtype)
    sw = np.random.default_rng(1).uniform(0, 3, X.shape[0]) if weighted else np.ones(X.shape[0])
    X64 = X.astype(np.float64)
    s1, s2 = columns.column_sums(X, sw)
    np.testing.assert_allclose(s1, X64.T @ sw, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s2, X64.multiply(X64).T @ sw, rtol=1e-12, atol=1e-9)
    assert s1.dtype == s2.dtype == np.float64 and s1.shape == (X.shape[1],)


def test_column_sums_of_no_rows_are_zero():
    s1, s2 = columns.column_sums(sp.csr_matrix((0, 5), dtype=np.float32), np.ones(0))
    assert s1.tolist() == s2.tolist() == [0.0] * 5


def test_present_and_renumber_equal_numpy():
    X = _matrix(np.float32, cols=2000, density=0.001)
    mask = np.zeros(X.shape[1], dtype=bool)
    mask[X.indices] = True
    got = columns.present(X.indices, X.shape[1])
    assert got.dtype == bool and (got == mask).all() and 0 < mask.sum() < X.shape[1]
    active = np.flatnonzero(mask)
    new = columns.renumber(X.indices, active, X.shape[1])
    assert new.dtype == np.int32
    assert (active[new] == X.indices).all()  # every stored value points at its own column
    assert columns.present(np.zeros(0, dtype=np.int32), 4).tolist() == [False] * 4


@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("alpha", [1e-2, 1e-5])
def test_compacted_fit_equals_the_full_width_one(intercept, alpha):
    """The estimator trains on the active columns (renumbered by the kernel) with the
    preconditioner's statistics from the kernel; scattered back, the model equals scipy's
    L-BFGS on the full-width objective."""
    from scipy.optimize import minimize

    from shardlearn.sklearn import LogisticRegression

    X = _matrix(np.float64, rows=400, cols=600, density=0.02, seed=3)
    X.data /= 50
    X = sp.hstack([X[:, :300], sp.csr_matrix((400, 40)), X[:, 300:]], format="csr")  # 40 empty columns
    y = (np.asarray(X.sum(axis=1)).ravel() + np.random.default_rng(4).normal(0, 0.3, 400) > 0).astype(int)
    est = LogisticRegression(alpha=alpha, fit_intercept=intercept, max_iter=500, tol=1e-12, workers=1).fit(X, y)
    n, d = X.shape

    def f(v):
        w, b = v[:d], (v[d] if intercept else 0.0)
        z = X @ w + b
        loss = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * alpha * w @ w
        r = (1 / (1 + np.exp(-z)) - y) / n
        g = np.r_[X.T @ r + alpha * w, [r.sum()] if intercept else []]
        return loss, g

    ref = minimize(f, np.zeros(d + intercept), jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15,
                                                                                        "maxiter": 5000}).x
    np.testing.assert_allclose(est.coef_.ravel(), ref[:d], atol=2e-5 * max(1, np.abs(ref).max()))
    assert np.count_nonzero(est.coef_) < d  # columns without a value stay exactly zero


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [np.array([7, 3, 499, 0, 3]), np.array([7]), np.array([], dtype=np.int64),
                                  np.arange(500)[::-1]])
def test_batch_is_the_rows_on_their_sorted_columns(dtype, rows):
    """A parameter-server step's compacted batch equals numpy/scipy's ``X[rows]`` on
    ``np.unique`` of its columns, with a row repeated, an empty row, no row at all, and the
    scratch left all -1 for the next batch."""
    X = _matrix(dtype)
    pos = np.full(X.shape[1], -1, dtype=np.int32)
    for _ in range(2):  # the second call reuses the scratch
        keys, Xc = columns.batch(X, rows, pos)
        ref = X[rows]
        np.testing.assert_array_equal(keys, np.unique(ref.indices))
        assert keys.dtype == np.int64 and Xc.dtype == dtype and Xc.shape == (rows.size, keys.size)
        np.testing.assert_array_equal(Xc.toarray(), ref[:, keys].toarray())
        np.testing.assert_array_equal(np.diff(Xc.indptr), np.diff(ref.indptr))  # each row's entries, in order
        assert np.all(pos == -1)


def test_batch_keeps_a_rows_repeated_column():
    X = sp.csr_matrix((np.array([1.0, 2.0, 5.0]), np.array([4, 4, 1]), np.array([0, 2, 3])), shape=(2, 6))
    keys, Xc = columns.batch(X, np.array([1, 0]), np.full(6, -1, dtype=np.int32))
    assert keys.tolist() == [1, 4] and Xc.indices.tolist() == [0, 1, 1] and Xc.data.tolist() == [5.0, 1.0, 2.0]


@pytest.mark.parametrize("rows", [[3, 7, 3, 0], [], [7], list(range(500))])
def test_touched_is_numpys_unique_columns_of_the_rows(rows):
    X, seen = _matrix(np.float32), np.zeros(300, dtype=bool)
    got = columns.touched(X, np.array(rows, dtype=np.int64), seen)
    want = np.unique(X[np.array(rows, dtype=np.int64)].indices) if rows else np.zeros(0)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64 and not seen.any()  # the scratch is left all False


@pytest.mark.parametrize("n", [0, 1, 63, 64, 5000])
@pytest.mark.parametrize("top", [2, 2**11, 2**22, 2**45])
def test_the_radix_order_sorts_distinct_keys_like_argsort(n, top):
    """The batch's keys are sorted by a radix pass per 11 bits: the permutation equals a stable
    argsort's for keys of one digit, of two (a 4M-wide model), of five, and below the size
    where a comparison sort is used instead."""
    rng = np.random.default_rng(n + top)
    keys = rng.choice(top, size=min(n, top), replace=False).astype(np.int64)
    np.testing.assert_array_equal(columns._radix_order(keys), np.argsort(keys, kind="stable"))
