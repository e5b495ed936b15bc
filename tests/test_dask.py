"""Dask (issue 19, item 3): shardlearn's ranks run as tasks pinned to the Dask workers of a
real LocalCluster (one process each), fed the partitions Dask holds, and reach the
one-process optimum; too many ranks, a rank that cannot start, and bad input are
one-line errors within a bounded time; each rank's thread pools are pinned."""
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import shardlearn  # noqa: E402
import shardlearn.dask as sdask  # noqa: E402
from shardlearn.core.errors import ConfigError  # noqa: E402
from shardlearn.runtime.group import WorkerError  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _data(n=3000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5, size=d)
    z = X @ (rng.normal(size=d) / X.std(axis=0))
    return X, z, rng.uniform(0.5, 2.0, size=n)


@pytest.mark.parametrize("est,target", [
    (shardlearn.LogisticRegression(alpha=1e-3, tol=1e-10), "bin"),
    (shardlearn.LogisticRegression(alpha=1e-3, tol=1e-10), "multi"),
    (shardlearn.LinearRegression(alpha=0.1, l1_ratio=0.5, tol=1e-10), "reg"),
    (shardlearn.LinearSVC(alpha=1e-2, tol=1e-10, solver="gd"), "bin")])
@pytest.mark.parametrize("weighted", [False, True])
def test_dask_fit_equals_one_process(client, est, target, weighted):
    X, z, sw = _data()
    y = {"reg": z, "bin": np.where(z > 0, "yes", "no"), "multi": np.digitize(z, [-1.0, 1.0])}[target]
    sw = sw if weighted else None
    Xd, yd = da.from_array(X, chunks=(700, 3)), da.from_array(y, chunks=700)  # uneven row chunks, split columns
    swd = None if sw is None else da.from_array(sw, chunks=500)
    got = sdask.fit(type(est)(**est.get_params()), Xd, yd, client=client, sample_weight=swd)
    want = type(est)(**est.get_params()).fit(X, y, sample_weight=sw)
    assert got.objective(X, y, sample_weight=sw) == pytest.approx(want.objective(X, y, sample_weight=sw), rel=1e-6)
    np.testing.assert_allclose(got.coef_, want.coef_, rtol=1e-5, atol=1e-6)
    if target != "reg":
        assert got.classes_.tolist() == want.classes_.tolist()
    reports = got.fit_result_.reports
    assert len(reports) == 2 and sum(r["rows"] for r in reports) == len(X)
    assert all(r["threads"] == {"blas_openmp": 1, "numba": 1, "torch": 1} for r in reports)


def test_a_fit_whose_steps_overshoot_says_so(client):
    """The engines' fits warn as the estimators' do (``runtime.engines.fit_result``): plain
    SGD on a column in the millions ends its epochs far above a zero score's log 2."""
    X, z, _ = _data()
    X[:, 0] *= 1e6
    Xd, yd = da.from_array(X, chunks=(1500, 6)), da.from_array((z > 0).astype(int), chunks=1500)
    est = shardlearn.LogisticRegression(solver="sgd", optimizer="sgd", batch_size=1, max_iter=2, random_state=0)
    with pytest.warns(RuntimeWarning, match=r"over twice that of scoring every row 0 \(0.6931\): optimizer='sgd'"):
        sdask.fit(est, Xd, yd, client=client)
    assert est.fit_result_.final_loss > 2 * np.log(2)


def test_a_regression_whose_steps_overshoot_says_so_against_the_workers_labels(client):
    """A regression's bar is a zero score's loss on its labels, which stay on the workers: they
    report their mean square (0.5 x 4 = 2 here), and the warning holds the fit to it."""
    X, _, _ = _data()
    X[:, 0] *= 1e6
    y = np.where(np.arange(X.shape[0]) % 2, 2.0, -2.0)
    Xd, yd = da.from_array(X, chunks=(1500, 6)), da.from_array(y, chunks=1500)
    est = shardlearn.LinearRegression(solver="sgd", optimizer="adagrad", batch_size=1, learning_rate=1.0, max_iter=2,
                                      random_state=0)
    with pytest.warns(RuntimeWarning, match=r"over twice that of scoring every row 0 \(2\): optimizer='adagrad'"):
        sdask.fit(est, Xd, yd, client=client)
    assert est.fit_result_.final_loss > 4


def test_a_dataframe_with_its_label_column(client):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    X, z, _ = _data(n=1200)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(6)]).assign(target=(z > 0).astype(int))
    got = sdask.fit(shardlearn.LogisticRegression(tol=1e-10), dd.from_pandas(df, npartitions=4), label="target",
                    client=client)
    want = shardlearn.LogisticRegression(tol=1e-10).fit(X, (z > 0).astype(int))
    np.testing.assert_allclose(got.coef_, want.coef_, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="label column 'nope' is not in the dataframe"):
        sdask.fit(shardlearn.LogisticRegression(), dd.from_pandas(df, npartitions=2), label="nope", client=client)


def test_more_ranks_than_workers_is_refused_at_once(client):
    X, z, _ = _data(n=600)
    t = time.monotonic()
    with pytest.raises(ConfigError, match="dask: 3 ranks asked, but the cluster has 2 worker processes"):
        sdask.fit(shardlearn.LinearRegression(), da.from_array(X, chunks=100), da.from_array(z, chunks=100),
                  client=client, num_workers=3)
    assert time.monotonic() - t < 5


def test_a_rank_that_cannot_start_ends_the_fit_within_the_timeout(client):
    """Worker 1 is busy: rank 1 cannot start, rank 0 waits at the rendezvous and gives up."""
    X, z, _ = _data(n=600)
    busy_on = sorted(client.scheduler_info()["workers"])[1]
    busy = client.submit(time.sleep, 25, workers=[busy_on], pure=False)
    time.sleep(0.5)
    t = time.monotonic()
    with pytest.raises(WorkerError, match=r"dask: the 2 ranks did not all start within 5 s \(a worker busy"):
        sdask.fit(shardlearn.LinearRegression(), da.from_array(X, chunks=300), da.from_array(z, chunks=300),
                  client=client, timeout_s=5)
    assert time.monotonic() - t < 20, "the fit hung past its timeout"
    busy.cancel()
