"""Checkpoints and restarts: atomic, checksummed checkpoints; a worker killed with
SIGKILL at a random step makes the group restart from the newest valid checkpoint,
and the run ends where an uninterrupted one ends, every example used once per epoch."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from shardlearn import ConfigError, models
from shardlearn.runtime import checkpoint as ck
from shardlearn.runtime import distributed, launch
from shardlearn.runtime.config import TrainConfig
from shardlearn.runtime.loop import train_local
from tests.conftest import fit_killing


def _data(n=3000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + 0.5 * rng.normal(size=n) > 0).astype(float)
    return X, y


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


# --- the checkpoint files -----------------------------------------------------

def test_save_keeps_the_newest_two_and_loads_the_newest(tmp_path):
    c = ck.Checkpointer(str(tmp_path), every=1)
    for step in (1, 2, 3):
        c.save(step, {"w": np.full(3, float(step))}, {"epoch": step})
    assert ck.steps_on_disk(str(tmp_path)) == [3, 2]
    step, arrays, meta = c.load()
    assert step == 3 and arrays["w"].tolist() == [3.0, 3.0, 3.0] and meta["epoch"] == 3
    assert not [e for e in os.listdir(tmp_path) if e.startswith(".tmp")]


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_a_damaged_newest_checkpoint_is_rejected_and_the_previous_used(tmp_path, damage):
    c = ck.Checkpointer(str(tmp_path), every=1)
    c.save(1, {"w": np.arange(1000.0)})
    c.save(2, {"w": np.arange(1000.0) * 2})
    folder = tmp_path / "ckpt-000000002"
    part = folder / ("manifest.json" if damage == "manifest" else "rank-0.npz")
    blob = bytearray(part.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob[len(blob) // 2] ^= 0x01
    part.write_bytes(bytes(blob))
    with pytest.warns(RuntimeWarning, match=r"ckpt-000000002.*(SHA-256|unreadable).*using the previous one"):
        step, arrays, _ = c.load()
    assert step == 1 and arrays["w"][999] == 999.0
    assert ck.steps_on_disk(str(tmp_path)) == [1]  # the damaged one is moved aside
    assert any(e.startswith("damaged-ckpt-000000002") for e in os.listdir(tmp_path))


def test_an_unfinished_write_is_not_a_checkpoint(tmp_path):
    c = ck.Checkpointer(str(tmp_path), every=1)
    c.save(1, {"w": np.ones(2)})
    os.makedirs(tmp_path / ".tmp-ckpt-000000002")  # a run killed before its rename
    (tmp_path / ".tmp-ckpt-000000002" / "rank-0.npz").write_bytes(b"PK\x03\x04partial")
    assert c.load()[0] == 1
    assert not (tmp_path / ".tmp-ckpt-000000002").exists()


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    ck.Checkpointer(str(tmp_path), fingerprint={"rows": 100}).save(5, {"w": np.ones(2)})
    with pytest.raises(ConfigError, match=r"ckpt-000000005 belongs to another run: rows was 100 there and is 200"):
        ck.Checkpointer(str(tmp_path), fingerprint={"rows": 200}).load()


@pytest.mark.parametrize("change, said", [
    (dict(partition="contiguous"), "partition was 'random' there and is 'contiguous' here"),
    (dict(optimizer="adam"), "optimizer was 'normalized' there and is 'adam' here"),
    (dict(alpha=0.5), "alpha was 0.01 there and is 0.5 here"),
    (dict(shuffle=False), "shuffle was True there and is False here"),
    (dict(l1_ratio=0.3), "l1_ratio was 0.0 there and is 0.3 here"),
])
def test_resume_refuses_a_changed_job_naming_the_difference(tmp_path, change, said):
    X, y = _data(400)
    m = models.get("logistic")
    cfg = TrainConfig(solver="sgd", alpha=0.01, max_iter=2, batch_size=64, random_state=1, tol=None,
                      checkpoint_dir=str(tmp_path), checkpoint_every=3)
    train_local(m, X, y, None, cfg, show=False)
    with pytest.raises(ConfigError, match="belongs to another run: " + said.replace("(", r"\(")):
        train_local(m, X, y, None, dataclasses.replace(cfg, resume=True, **change), show=False)
    # what may change: a resumed run can go on for more epochs
    train_local(m, X, y, None, dataclasses.replace(cfg, resume=True, max_iter=3), show=False)


def test_a_time_based_checkpoint_is_agreed_at_few_probe_steps(tmp_path):
    # asking rank 0's clock at every step made every step a collective (issue 12, item 3)
    class Counting:
        rank, size = 0, 2

        def __init__(self):
            self.calls = 0

        def allreduce(self, x, op="sum"):
            self.calls += 1
            return x

        def allgather(self, x):  # the shared-directory check at construction: both "ranks" see this folder
            return [x] * self.size

    comm = Counting()
    c = ck.Checkpointer(str(tmp_path), every="30s", comm=comm)
    assert not any(c.due(s) for s in range(1, 2001))
    assert comm.calls <= 12  # probes at doubling gaps, then near the deadline by the step rate
    c.last_time -= 31.0  # the interval has passed: due at the next probe, and only then
    hits = [s for s in range(2001, 40001) if c.due(s)]
    assert hits and hits[0] < 40000


@pytest.mark.parametrize("strategy", ["asp", "local_sgd"])
def test_checkpoint_every_30s_adds_no_collective_per_step(tmp_path, strategy):
    X, y = _data(4000)
    base = TrainConfig(solver="sgd", strategy=strategy, workers=2, batch_size=20, max_iter=2, random_state=0,
                       sync_every=1000 if strategy == "local_sgd" else None, optimizer="adagrad")  # mini-batch steps
    r = distributed.train_arrays(models.get("logistic"), X, y, None, base, 1)
    plain = [r.get("collectives", r.get("calls")) for r in r.reports]
    r = distributed.train_arrays(models.get("logistic"), X, y, None,
                                 dataclasses.replace(base, checkpoint_dir=str(tmp_path), checkpoint_every="30s"), 1)
    timed = [r.get("collectives", r.get("calls")) for r in r.reports]
    steps = 2 * 2000 // 20  # per worker
    assert all(t - p <= 20 for t, p in zip(timed, plain)), (plain, timed)  # a few probes and the final save
    assert all(p < steps / 2 for p in plain), plain


@pytest.mark.parametrize("bad", ["0", "-3", "1.5", "ten", "5d"])
def test_checkpoint_every_is_validated(bad):
    with pytest.raises(ConfigError, match="checkpoint_every=.*expected a positive step count"):
        ck.parse_every(bad)


def test_resume_needs_a_directory():
    with pytest.raises(ConfigError, match="resume needs a checkpoint directory"):
        TrainConfig(resume=True).validate()


# --- resuming in one process is exact ------------------------------------------

class _Stop(Exception):
    pass


def _failing(model, call):
    count = [0]

    def loss_and_grad(*a, **k):
        count[0] += 1
        if count[0] == call:
            raise _Stop
        return model.loss_and_grad(*a, **k)

    return model._replace(loss_and_grad=loss_and_grad)


@pytest.mark.parametrize("solver,extra", [("gd", {}), ("lbfgs", {}), ("lbfgs", {"l1_ratio": 0.5}),
                                          ("sgd", {"batch_size": 64, "max_iter": 4, "optimizer": "adagrad"})])
def test_one_process_resume_continues_bit_for_bit(tmp_path, solver, extra):
    X, y = _data(800)
    m = models.get("logistic")
    base = TrainConfig(**dict(dict(solver=solver, alpha=1e-2, tol=1e-12, max_iter=25, random_state=4), **extra))
    first = train_local(m, X, y, None, base, show=False)
    clean, n_clean, clean_steps = first.params, first.n_iter, first.steps
    cfg = dataclasses.replace(base, checkpoint_dir=str(tmp_path), checkpoint_every=4)
    with pytest.raises(_Stop):
        train_local(_failing(m, 9 if solver == "lbfgs" else 30), X, y, None, cfg, show=False)  # sgd: mid-epoch 3
    report = {}
    again = train_local(m, X, y, None, dataclasses.replace(cfg, resume=True), show=False, report=report)
    resumed, n_resumed = again.params, again.n_iter
    assert report["resumed_from"] > 0
    assert n_resumed == n_clean and _max_diff(resumed, clean) == 0.0
    assert [r["step"] for r in again.steps] == [r["step"] for r in clean_steps]
    assert [r["examples"] for r in again.steps] == [800] * len(clean_steps)


# --- real processes, real SIGKILL -----------------------------------------------

@pytest.mark.parametrize("strategy,seed", [("gd", 1), ("lbfgs", 2), ("bsp", 3), ("local_sgd", 4)])
def test_a_worker_killed_at_a_random_step_resumes_exactly(tmp_path, strategy, seed):
    X, y = _data(3000, seed=seed)
    sgd = strategy in ("bsp", "local_sgd")
    base = TrainConfig(solver="sgd" if sgd else strategy, strategy=strategy if sgd else None, alpha=1e-3,
                       tol=1e-12, max_iter=4 if sgd else 25, batch_size=64, random_state=seed, workers=2,
                       optimizer="adagrad" if sgd else None)  # mini-batch steps: the kill counts gradient calls
    m = models.get("logistic")
    first = distributed.train_arrays(m, X, y, None, base, 1)
    clean, n_clean, clean_steps = first.params, first.n_iter, first.steps
    rng = np.random.default_rng(seed)
    calls = {"gd": 40, "lbfgs": 10}.get(strategy, 4 * 24)  # a worker's gradient evaluations before the end
    fault = {"rank": int(rng.integers(2)), "call": int(rng.integers(3, calls))}
    cfg = dataclasses.replace(base, checkpoint_dir=str(tmp_path), checkpoint_every=3, max_restarts=2)
    with pytest.warns(RuntimeWarning, match=f"worker rank {fault['rank']} was killed by signal 9; restarting"):
        again = fit_killing(X, y, cfg, **fault)
    assert len(again.restarts) == 1 and again.restarts[0]["restart_seconds"] > 0
    assert again.n_iter == n_clean and _max_diff(again.params, clean) < 1e-6
    assert [r["step"] for r in again.steps] == [r["step"] for r in clean_steps]
    assert [r["examples"] for r in again.steps] == [3000] * len(clean_steps)


@pytest.mark.parametrize("rank, call", [(0, 6), (1, 12)])
def test_average_checkpoints_each_workers_own_solve(tmp_path, rank, call):
    # one-shot averaging: each worker's L-BFGS checkpoints itself (its own iterations, its own
    # folder); a killed worker resumes its own solve, the other its finished one, then they average
    X, y = _data(3000, seed=rank + 5)
    base = TrainConfig(strategy="average", alpha=1e-3, l1_ratio=0.3, tol=1e-12, max_iter=40, workers=2)
    m = models.get("logistic")
    clean = distributed.train_arrays(m, X, y, None, base, 1)
    cfg = dataclasses.replace(base, checkpoint_dir=str(tmp_path), checkpoint_every=2, max_restarts=1)
    with pytest.warns(RuntimeWarning, match=f"worker rank {rank} was killed by signal 9; restarting"):
        again = fit_killing(X, y, cfg, rank=rank, call=call)
    assert len(again.restarts) == 1
    assert sorted(os.listdir(tmp_path)) == ["worker-0", "worker-1"]
    assert again.n_iter == clean.n_iter and _max_diff(again.params, clean.params) < 1e-9
    with pytest.raises(ConfigError, match="worker-0/ckpt-0+[0-9]+ belongs to another run: workers was 2 there and is 1 here"):
        train_local(m, X[:1500], y[:1500], None, dataclasses.replace(cfg, workers=1, resume=True), show=False)


def test_without_restarts_a_killed_worker_still_ends_the_run(tmp_path):
    from shardlearn.runtime.group import WorkerError

    X, y = _data(1000)
    cfg = TrainConfig(solver="gd", max_iter=10, workers=2, checkpoint_dir=str(tmp_path))
    with pytest.raises(WorkerError, match="worker rank 0 was killed by signal 9"):
        fit_killing(X, y, cfg, rank=0, call=5)


def test_cli_resume_continues_a_finished_shorter_run(tmp_path, capsys):
    from shardlearn.cli import main
    from tests.conftest import data_path

    path = data_path("a9a", "a9a")
    common = ["train", path, "--workers", "2", "--solver", "gd", "--alpha", "1e-3", "--tol", "0"]
    assert main(common + ["--max-iter", "30", "--out", str(tmp_path / "whole")]) == 0
    ckdir = str(tmp_path / "ck")
    assert main(common + ["--max-iter", "12", "--checkpoint-dir", ckdir, "--out", str(tmp_path / "part")]) == 0
    assert main(common + ["--max-iter", "30", "--checkpoint-dir", ckdir, "--resume", "--metrics",
                          str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "rest")]) == 0
    capsys.readouterr()
    import shardlearn

    a, b = shardlearn.load(tmp_path / "whole"), shardlearn.load(tmp_path / "rest")
    assert np.max(np.abs(a.coef_ - b.coef_)) < 1e-6
    steps = [json.loads(line) for line in open(tmp_path / "m.jsonl")]
    assert [s["step"] for s in steps] == list(range(1, 31)) and {s["examples"] for s in steps} == {32561}


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _torchrun_killing_rank_1(cmd, ckdir, env=None):
    """Run torchrun's ``cmd`` (2 ranks), SIGKILL rank 1 once a checkpoint is on disk in
    ``ckdir``; ``(exit code, stdout, stderr)``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ck.steps_on_disk(str(ckdir)) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) == 2 and ck.steps_on_disk(str(ckdir)), "no checkpoint before the deadline"
        os.kill(workers[1], signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def test_torchrun_restarts_a_killed_worker_from_the_checkpoint(tmp_path):
    from tests.conftest import data_path

    path = data_path("a9a", "a9a")
    ckdir = tmp_path / "ck"
    args = ["train", path, "--solver", "gd", "--alpha", "1e-3", "--tol", "0", "--max-iter", "150"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", "1", "-m", "shardlearn"] + args + ["--checkpoint-dir", str(ckdir),
                                                                "--checkpoint-every", "5", "--out", str(tmp_path / "m")]
    code, out, err = _torchrun_killing_rank_1(cmd, ckdir)
    assert code == 0, err[-3000:]
    assert "exitcode: -9" in err  # torchrun saw the kill, and restarted the group from the checkpoint:
    assert json.loads(out.strip().splitlines()[-1])["resumed_from"] >= 5
    from shardlearn.cli import main

    assert main(args + ["--workers", "2", "--out", str(tmp_path / "clean")]) == 0
    import shardlearn

    a, b = shardlearn.load(tmp_path / "m"), shardlearn.load(tmp_path / "clean")
    assert np.max(np.abs(a.coef_ - b.coef_)) < 1e-6


def test_store_prefix_differs_per_restart():
    a = launch.from_env({"RANK": "0", "WORLD_SIZE": "2", "TORCHELASTIC_RESTART_COUNT": "0"})
    b = launch.from_env({"RANK": "0", "WORLD_SIZE": "2", "TORCHELASTIC_RESTART_COUNT": "1"})
    assert a.store_prefix != b.store_prefix


@pytest.mark.parametrize("strategy,compression,rule", [("bsp", "none", "adagrad"), ("asp", "none", "adagrad"),
                                                     ("bsp", "int8", "adagrad"), ("bsp", "int8", "normalized")])
def test_parameter_server_shards_are_checkpointed_and_restored_after_a_kill(tmp_path, strategy, compression, rule):
    """int8 pushes: each worker's per-key residuals and rounding step are in its checkpoint
    (without them the resumed bsp run ends elsewhere); mini-batch AdaGrad pushes gradients,
    the per-example normalized rule its change rows (killed at a kernel call)."""
    X, y = _data(4000, d=30, seed=5)
    X = np.where(np.abs(X) > 1.0, X, 0.0)  # sparse-ish rows, so batches touch part of the keys
    import scipy.sparse as sp

    X = sp.csr_matrix(X)
    base = TrainConfig(solver="sgd", strategy=strategy, servers=1, workers=2, alpha=1e-4, batch_size=50,
                       max_iter=3, random_state=2, optimizer=rule, compression=compression,
                       **({"learning_rate": 0.1} if rule == "adagrad" else {}))
    m = models.get("logistic")
    clean = distributed.train_arrays(m, X, y, None, base, 1).params
    cfg = dataclasses.replace(base, checkpoint_dir=str(tmp_path), checkpoint_every=15, max_restarts=1)
    with pytest.warns(RuntimeWarning, match="worker rank 1 was killed by signal 9; restarting"):
        again = fit_killing(X, y, cfg, rank=1, call=70, at="gradient" if rule == "adagrad" else "kernel")
    params = again.params
    assert len(again.restarts) == 1
    assert again.reports[0]["resumed_from"] >= 15  # a checkpoint with the shards was used
    assert [r["examples"] for r in again.steps] == [4000, 4000, 4000]  # each epoch's rows exactly once
    names = os.listdir(tmp_path / f"ckpt-{ck.steps_on_disk(str(tmp_path))[0]:09d}")
    assert sorted(names) == ["manifest.json", "rank-0.npz", "rank-1.npz", "shard-0.npz"]
    if strategy == "bsp":  # deterministic: the resumed run ends where the clean one ends
        assert _max_diff(params, clean) < 1e-6
    else:  # asynchronous: the same model up to the order pushes happened to arrive in
        assert _max_diff(params, clean) < 0.05 * max(np.max(np.abs(clean["w"])), 1.0)


@pytest.mark.parametrize("strategy", ["asp", "hogwild"])
def test_a_torchrun_worker_killed_mid_fit_leaves_no_shared_state_behind(tmp_path, strategy):
    """Co-located ranks map the shards' (or Hogwild's) state from files in the scratch folder,
    which under torchrun is ``/dev/shm`` itself: no group folder is removed after the job. The
    folder goes as soon as every rank holds its maps (``runtime.ps_shared.forget``), so a rank
    killed mid-fit, its job failing, leaves nothing there (before: a 32-bytes-a-key folder a
    killed attempt, until the machine restarted)."""
    from tests.conftest import data_path

    scratch, ckdir = tmp_path / "scratch", tmp_path / "ck"
    scratch.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts",
           "0", "-m", "shardlearn", "train", data_path("a9a", "a9a"), "--strategy", strategy, "--max-iter", "400",
           "--tol", "0", "--checkpoint-dir", str(ckdir), "--checkpoint-every", "1", "--out", str(tmp_path / "m")]
    code, _, err = _torchrun_killing_rank_1(cmd, ckdir, env=dict(os.environ, **{launch.SCRATCH_VAR: str(scratch)}))
    assert code != 0 and "exitcode: -9" in err, err[-3000:]
    assert os.listdir(scratch) == []
