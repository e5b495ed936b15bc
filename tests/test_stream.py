"""Out-of-core training (``stream=True`` / ``--stream``): each worker reads its shard
again at every pass and never holds it. Equal to the in-memory fit; and under a memory
cap (RLIMIT_DATA) on the workers, the in-memory fit of a file runs out of memory where
the streamed one trains."""
import dataclasses
import json
import os
import shutil
import resource
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file

from shardlearn import ConfigError
from shardlearn.runtime import checkpoint as ck, distributed
from shardlearn.runtime.config import TrainConfig
from tests.conftest import data_path


@pytest.mark.parametrize("kw", [
    dict(solver="lbfgs", tol=1e-10, max_iter=500),
    dict(solver="gd", max_iter=40, tol=0.0, l1_ratio=0.5),
    dict(solver="sgd", max_iter=2, shuffle=False, tol=None),
    dict(solver="sgd", strategy="local_sgd", optimizer="adagrad", max_iter=2, shuffle=False, tol=None,
         fit_intercept=False),
    dict(solver="sgd", strategy="local_sgd", optimizer="normalized", max_iter=2, shuffle=False, tol=None),
    dict(solver="sgd", strategy="local_sgd", max_iter=2, shuffle=False, tol=None, sync_every=9, alpha=1e-3,
         l1_ratio=0.5),
    dict(solver="sgd", strategy="bsp", max_iter=2, shuffle=False, tol=None, alpha=1e-3, l1_ratio=0.5),
    dict(solver="sgd", strategy="bsp", servers=1, max_iter=2, shuffle=False, tol=None, alpha=1e-3, l1_ratio=0.5),
    dict(solver="sgd", strategy="local_sgd", max_iter=2, shuffle=False, tol=None, sync_every=9, compression="sign"),
])
def test_a_streamed_fit_equals_the_in_memory_one(kw):
    path = data_path("a9a", "a9a")
    cfg = TrainConfig(**dict(dict(alpha=1e-4, workers=2, batch_size=64, random_state=0), **kw))
    held = distributed.train_file("logistic", cfg, {"data": path})
    streamed = distributed.train_file("logistic", TrainConfig(**dict(cfg.__dict__, stream=True)), {"data": path})
    assert streamed.n_iter == held.n_iter
    readers = [r for r in streamed.reports if r.get("role") != "server"]  # a dedicated server reads no rows
    assert len(readers) == 2 and all(r["passes"] >= 2 for r in readers) and "passes" not in held.reports[0]
    assert [r["rows"] for r in readers] == [r["rows"] for r in held.reports if r.get("role") != "server"]
    np.testing.assert_allclose(streamed.params["w"], held.params["w"], rtol=1e-6, atol=1e-8)
    assert float(streamed.params["b"]) == pytest.approx(float(held.params["b"]), abs=1e-8)


def test_streaming_is_refused_where_it_is_not_built():
    with pytest.raises(ConfigError, match="stream=True \\(out of core\\) runs gd, lbfgs, bsp, local_sgd, ssp, asp and "
                                          "hogwild, not 'average'$"):
        TrainConfig(strategy="average", workers=2, stream=True).validate()
    with pytest.raises(ConfigError, match="runs hogwild per example \\(optimizer='normalized', or adagrad/ftrl/sgd with "
                                          "batch_size=1\\), not mini-batches of 256 with optimizer='adagrad'$"):
        TrainConfig(solver="sgd", strategy="hogwild", optimizer="adagrad", workers=2, stream=True).validate()
    with pytest.raises(ConfigError, match="runs asp over the parameter server per example .* not mini-batches of 64 "
                                          "with optimizer='adam'$"):
        TrainConfig(solver="sgd", strategy="asp", optimizer="adam", batch_size=64, workers=2, stream=True).validate()


def _held_out_loss(params, Xt, yt):
    z = Xt @ params["w"][: Xt.shape[1]] + float(params["b"])
    return float(np.mean(np.logaddexp(0.0, z) - yt * z))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("strategy", ["hogwild", "asp", "ssp"])
def test_asynchronous_strategies_stream_their_blocks(strategy, workers):
    """Per-example hogwild, asp and ssp out of core: each worker learns its blocks' rows, into
    the one shared state or through the shards, a step's batch cut from the stream. One worker is
    its in-memory fit exactly (the same rows in the same order); two race differently from run to
    run, so they are held to the in-memory fit's held-out loss."""
    from sklearn.datasets import load_svmlight_file

    path = data_path("a9a", "a9a")
    cfg = TrainConfig(solver="sgd", strategy=strategy, workers=workers, max_iter=2, shuffle=False, tol=None,
                      alpha=1e-4, l1_ratio=0.3, random_state=0)
    held = distributed.train_file("logistic", cfg, {"data": path})
    streamed = distributed.train_file("logistic", TrainConfig(**dict(cfg.__dict__, stream=True)), {"data": path})
    assert streamed.n_iter == held.n_iter == 2
    assert [r["passes"] for r in streamed.reports] == [2] * workers and "passes" not in held.reports[0]
    assert [r["rows"] for r in streamed.reports] == [r["rows"] for r in held.reports]
    assert sum(r["rows"] for r in streamed.reports) == 32561
    if workers == 1:
        np.testing.assert_array_equal(streamed.params["w"], held.params["w"])
        assert float(streamed.params["b"]) == float(held.params["b"])
    else:
        Xt, yt = load_svmlight_file(data_path("a9a", "a9a.t"), n_features=123)
        Xt, yt = Xt.tocsr(), (yt > 0).astype(float)
        # 8 fits each way on a quiet machine spread 0.04% (asp, ssp) and 0.09% (hogwild); a loaded one races more
        assert _held_out_loss(streamed.params, Xt, yt) == pytest.approx(_held_out_loss(held.params, Xt, yt), rel=0.005)


def _big_file(path, rows=400_000, per_row=40, width=1 << 14):
    rng = np.random.default_rng(0)
    cols = np.arange(per_row) * (width // per_row) + rng.integers(0, width // per_row, size=(rows, per_row))
    X = sp.csr_matrix((np.ones(rows * per_row, dtype=np.float32), cols.ravel().astype(np.int32),
                       np.arange(0, rows * per_row + 1, per_row)), shape=(rows, width))
    dump_svmlight_file(X, (rng.random(rows) < 0.3).astype(int), path, zero_based=True)


CAP_MB = 600  # a worker (python, numpy, torch, gloo) takes ~350 MB of it before reading any data


def test_under_a_memory_cap_only_the_streamed_fit_trains(tmp_path):
    # 118 MB of LIBSVM text (400k rows x 40 features) parses to ~260 MB of arrays and more while
    # parsing: more than the ~250 MB the cap leaves the worker. Streamed, a block is 8 MB of text.
    path = str(tmp_path / "big.svm")
    _big_file(path)

    def cap():  # the CLI and the worker it starts (rlimits are inherited)
        resource.setrlimit(resource.RLIMIT_DATA, (CAP_MB << 20, CAP_MB << 20))

    def train(*extra):
        return subprocess.run([sys.executable, "-m", "shardlearn", "train", path, "--workers", "1", "--solver", "sgd",
                               "--max-iter", "1", "--out", str(tmp_path / "m"), *extra],
                              capture_output=True, text=True, preexec_fn=cap, timeout=600)

    held = train()
    assert held.returncode == 2 and ("MemoryError" in held.stderr or "Unable to allocate" in held.stderr), held.stderr
    streamed = train("--stream")
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    assert json.loads(streamed.stdout.strip().splitlines()[-1])["rows"] == 400_000
    assert os.path.getsize(path) > 100e6


def test_a_streamed_parameter_server_fit_resumes_mid_epoch(tmp_path):
    """A streamed asp fit's checkpoint mid-epoch holds the steps taken: resumed, the worker reads
    past those batches of its stream (the same shuffle) and ends where the uninterrupted fit does."""
    path = data_path("a9a", "a9a")
    cfg = TrainConfig(solver="sgd", strategy="asp", workers=1, max_iter=1, shuffle=True, tol=None, alpha=1e-4,
                      random_state=0, stream=True, batch_size=64, sync_every=4)  # 128 steps of 256 rows
    clean = distributed.train_file("logistic", cfg, {"data": path})
    saving = dataclasses.replace(cfg, checkpoint_dir=str(tmp_path), checkpoint_every=37)
    distributed.train_file("logistic", saving, {"data": path})
    last, mid = ck.steps_on_disk(str(tmp_path))
    assert (last, mid) == (128, 111)
    shutil.rmtree(tmp_path / f"ckpt-{last:09d}")  # as if the run had died in its last 17 steps
    again = distributed.train_file("logistic", dataclasses.replace(saving, resume=True), {"data": path})
    assert again.reports[0]["resumed_from"] == 111
    np.testing.assert_allclose(again.params["w"], clean.params["w"], rtol=1e-9, atol=1e-12)
    assert float(again.params["b"]) == pytest.approx(float(clean.params["b"]), abs=1e-12)
