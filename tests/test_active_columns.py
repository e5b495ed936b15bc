"""Per-example parameter-server and hogwild fits learn on the columns some worker's rows
hold (``runtime.active``): the same model as on all columns, at the full width, with the
empty columns exactly 0, and a checkpoint that knows which columns it was written for."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

import shardlearn
from shardlearn import models
from shardlearn.core.errors import ConfigError
from shardlearn.runtime import active, distributed
from shardlearn.runtime.config import TrainConfig
from tests.conftest import scaled_rows as _data

WIDTH = 40


def _widened(X, seed=0):
    """``(X with its columns at sorted random places among WIDTH, the places)``: the rest empty."""
    at = np.sort(np.random.default_rng(seed).choice(WIDTH, X.shape[1], replace=False))
    X = sp.csr_matrix(X)
    return sp.csr_matrix((X.data, at[X.indices], X.indptr), shape=(X.shape[0], WIDTH)), at


@pytest.mark.parametrize("strategy", ["asp", "ssp", "hogwild", "bsp"])
def test_one_worker_on_the_active_columns_is_the_one_process_pass_on_all(strategy):
    """One worker narrows its rows to their columns; the one-process pass keeps all 40: equal to
    the last bit (the per-example update of a column never reads another's)."""
    X, y, sw = _data(400, sparse=True)
    wide, at = _widened(X)
    opts = dict(max_iter=2, tol=None, alpha=1e-3, l1_ratio=0.3, random_state=1)
    alone = shardlearn.LogisticRegression(solver="sgd", **opts).fit(wide, y, sample_weight=sw)
    one = shardlearn.LogisticRegression(workers=1, strategy=strategy, servers=1 if strategy == "bsp" else 0,
                                        **opts).fit(wide, y, sample_weight=sw)
    assert one.coef_.shape == (1, WIDTH)
    np.testing.assert_allclose(one.coef_, alone.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one.intercept_, alone.intercept_, rtol=1e-9, atol=1e-12)
    empty = np.setdiff1d(np.arange(WIDTH), at)
    assert np.count_nonzero(one.coef_[0, at]) == at.size and not np.any(one.coef_[0, empty])
    if strategy != "hogwild":  # the shards hold a key per active column, the intercept's and the scalars'
        assert one.fit_result_.info["ps"]["keys"] == at.size + 2


@pytest.mark.parametrize("extra", [dict(servers=1), dict(servers=2, slicer="hash"), dict(servers=0)])
def test_bsp_over_servers_on_wide_rows_is_bsp_on_their_columns(extra):
    """Two workers whose rows hold different columns (worker 0's rows none of the last six):
    the columns agreed are the union, and the model is the one learned on it."""
    X, y, sw = _data(500, d=12, sparse=True)
    X = X.tolil()
    X[:250, 6:] = 0.0  # the first half's rows (worker 0's under the contiguous split) hold 6 columns
    X = X.tocsr()
    X.eliminate_zeros()
    wide, at = _widened(X, seed=2)
    cfg = TrainConfig(solver="sgd", strategy="bsp", workers=2, max_iter=2, tol=None, random_state=3, batch_size=24,
                      alpha=1e-3, l1_ratio=0.5, partition="contiguous", **extra)
    m = models.get("logistic")
    got = distributed.train_arrays(m, wide, y, sw, cfg, 1)
    want = distributed.train_arrays(m, X, y, sw, cfg, 1)
    assert got.params["w"].shape == (WIDTH,)
    np.testing.assert_allclose(got.params["w"][at], want.params["w"], rtol=1e-9, atol=1e-12)
    assert not np.any(np.delete(got.params["w"], at))
    np.testing.assert_allclose(got.params["b"], want.params["b"], rtol=1e-9, atol=1e-12)


def test_hogwild_on_two_workers_returns_the_full_width():
    X, y, _ = _data(4000, d=12, seed=6, sparse=True)
    wide, at = _widened(X, seed=1)
    est = shardlearn.LogisticRegression(strategy="hogwild", workers=2, max_iter=2, random_state=0).fit(wide, y)
    ref = shardlearn.LogisticRegression(solver="sgd", max_iter=2, random_state=0).fit(wide, y)
    assert est.coef_.shape == (1, WIDTH) and not np.any(np.delete(est.coef_[0], at))
    assert abs(est.score(wide, y) - ref.score(wide, y)) < 0.02  # races aside, the same fit


@pytest.mark.parametrize("strategy", ["asp", "local_sgd"])  # the shards' keys; the allreduce loop's columns
def test_a_checkpoint_of_other_active_columns_is_refused(tmp_path, strategy):
    """Same rows, width and number of active columns, other columns: resuming would read every
    weight at another column's place, so the checkpoint names its columns and is refused."""
    X, y, _ = _data(600, sparse=True)
    a, at_a = _widened(X, seed=0)
    b, at_b = _widened(X, seed=1)
    assert at_a.size == at_b.size and not np.array_equal(at_a, at_b)
    cfg = TrainConfig(solver="sgd", strategy=strategy, workers=2, max_iter=1, tol=None, random_state=0,
                      checkpoint_dir=str(tmp_path), checkpoint_every=1)
    m = models.get("logistic")
    distributed.train_arrays(m, a, y, None, cfg, 1)
    with pytest.raises(ConfigError, match=f"belongs to another run: columns was '{active.digest(at_a)}' there and "
                                          f"is '{active.digest(at_b)}' here"):
        distributed.train_arrays(m, b, y, None, dataclasses.replace(cfg, resume=True), 1)
    again = distributed.train_arrays(m, a, y, None, dataclasses.replace(cfg, resume=True), 1)
    assert again.reports[0]["resumed_from"] >= 1  # the same columns resume


def test_wider_than_the_scratch_or_dense_rows_stay_as_they_are():
    dense = np.ones((3, 4))
    assert active.narrow(dense)[1] is None
    wide = sp.csr_matrix((np.ones(2), np.array([0, active.WIDEST]), np.array([0, 1, 2])), shape=(2, active.WIDEST + 1))
    X, at = active.narrow(wide)
    assert at is None and X is wide
    X, at = active.narrow(wide[:, : active.WIDEST])
    assert at.tolist() == [0] and X.shape == (2, 1)


def test_a_workers_own_rows_are_narrowed_in_place_and_nobody_elses():
    """A worker's copy of its rows is renumbered in place (no second array of the stored
    values' size); a read-only or caller's array never is, and a fit leaves the caller's rows as
    they were: lbfgs on 2 workers (the allreduce loop compacts its copy in place) equals the
    one-process fit, which compacts a new array."""
    X, y, sw = _data(600, d=10, seed=4, sparse=True)
    wide, at = _widened(X, seed=3)
    before = wide.copy()
    want = active.compact(wide, at)
    assert not np.shares_memory(want.indices, wide.indices)
    mine = wide.copy()
    got = active.compact(mine, at, owned=True)
    assert np.shares_memory(got.indices, mine.indices)
    np.testing.assert_array_equal(got.toarray(), want.toarray())
    frozen = wide.copy()
    frozen.indices.flags.writeable = False  # as a worker's rows mapped from a read-only file would be
    kept = active.compact(frozen, at, owned=True)
    assert not np.shares_memory(kept.indices, frozen.indices)
    np.testing.assert_array_equal(kept.toarray(), want.toarray())
    opts = dict(alpha=1e-3, tol=1e-10, max_iter=200)
    two = shardlearn.LogisticRegression(workers=2, **opts).fit(wide, y, sample_weight=sw)
    one = shardlearn.LogisticRegression(workers=1, **opts).fit(wide, y, sample_weight=sw)
    np.testing.assert_allclose(two.coef_, one.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(two.intercept_, one.intercept_, rtol=1e-6, atol=1e-8)
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(wide, name), getattr(before, name))
