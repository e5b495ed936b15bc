"""Ray (issue 19, item 2): shardlearn's ranks as actors of a real local Ray instance
(``ray.init(num_cpus=2)``), on arrays and on a ``ray.data`` Dataset, reach the one-process
optimum; too many ranks is refused at once, and a killed actor ends the fit with one line
naming its rank within 30 s, never a hang."""
import os
import signal
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

import shardlearn  # noqa: E402
import shardlearn.ray as sray  # noqa: E402
from shardlearn.core.errors import ConfigError  # noqa: E402
from shardlearn.runtime.group import WorkerError  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _data(n=3000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 5, size=d)
    z = X @ (rng.normal(size=d) / X.std(axis=0))
    return X, z, rng.uniform(0.5, 2.0, size=n)


@pytest.mark.parametrize("est,target", [(shardlearn.LogisticRegression(alpha=1e-3, tol=1e-10), "bin"),
                                        (shardlearn.LinearRegression(alpha=0.1, tol=1e-10), "reg")])
def test_ray_fit_on_arrays_equals_one_process(est, target):
    X, z, sw = _data()
    y = z if target == "reg" else np.where(z > 0, "yes", "no")
    got = sray.fit(type(est)(**est.get_params()), X, y, sample_weight=sw, num_workers=2)
    want = type(est)(**est.get_params()).fit(X, y, sample_weight=sw)
    assert got.objective(X, y, sample_weight=sw) == pytest.approx(want.objective(X, y, sample_weight=sw), rel=1e-6)
    np.testing.assert_allclose(got.coef_, want.coef_, rtol=1e-5, atol=1e-6)
    assert [r["rows"] for r in got.fit_result_.reports] == [1500, 1500]
    assert all(r["threads"]["torch"] == 1 and r["threads"]["numba"] == 1 for r in got.fit_result_.reports)


def test_ray_fit_on_a_dataset_reads_each_shard_where_it_lives():
    import pandas as pd

    X, z, _ = _data(n=2001)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(6)]).assign(target=(z > 0).astype(int))
    got = sray.fit(shardlearn.LogisticRegression(tol=1e-10), ray.data.from_pandas(frame), label="target",
                   num_workers=2)
    want = shardlearn.LogisticRegression(tol=1e-10).fit(X, (z > 0).astype(int))
    np.testing.assert_allclose(got.coef_, want.coef_, rtol=1e-5, atol=1e-6)
    assert sorted(r["rows"] for r in got.fit_result_.reports) == [1000, 1001]  # every row once
    with pytest.raises(ConfigError, match="a ray.data Dataset needs label= naming one of its columns"):
        sray.fit(shardlearn.LogisticRegression(), ray.data.from_pandas(frame), label="nope")


def test_more_ranks_than_cpus_is_refused_at_once():
    X, z, _ = _data(n=300)
    t = time.monotonic()
    with pytest.raises(ConfigError, match="ray: 3 ranks asked, but the cluster has 2 CPUs"):
        sray.fit(shardlearn.LinearRegression(), X, z, num_workers=3)
    assert time.monotonic() - t < 5


def _rank_actor_pids():
    me = psutil.Process()
    return [p.pid for p in psutil.process_iter(["cmdline"]) if p.pid != me.pid
            and any("_RankActor" in part for part in (p.info["cmdline"] or []))]


def test_a_killed_actor_ends_the_fit_with_one_line():
    X, z, _ = _data(n=20000)
    outcome = {}
    gone = time.monotonic() + 30
    while _rank_actor_pids() and time.monotonic() < gone:  # the earlier tests' actors, ended, are leaving
        time.sleep(0.2)
    old = set(_rank_actor_pids())

    def long_fit():
        try:
            sray.fit(shardlearn.LinearRegression(solver="sgd", tol=None, max_iter=10**6), X, z, num_workers=2)
        except Exception as e:  # noqa: BLE001 - the test reads it
            outcome["error"] = e

    t = threading.Thread(target=long_fit, daemon=True)
    t.start()
    deadline = time.monotonic() + 120
    while len(set(_rank_actor_pids()) - old) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = sorted(set(_rank_actor_pids()) - old)
    assert len(pids) == 2, "the two rank actors never started"
    time.sleep(3.0)  # both are training now
    os.kill(pids[0], signal.SIGKILL)
    killed_at = time.monotonic()
    t.join(timeout=30)
    assert not t.is_alive(), "the fit hung after an actor was killed"
    assert time.monotonic() - killed_at < 30
    e = outcome["error"]
    assert isinstance(e, WorkerError) and "actor died" in str(e) and "the fit stopped" in str(e), repr(e)
