"""Several learners of one stream over the parameter server (issue 15, item 6): real worker
processes on 127.0.0.1 sharing the kernel's state on parameter-server shards. One learner
through the shards equals the one-process learner; N learners split a file by lines or a
Redis stream by consumers, apply every example exactly once across SIGKILL and restart, stop
together on SIGTERM, and leave a model ``shardlearn.load`` gives back."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import shardlearn
from shardlearn import ConfigError, OnlineLinearRegression, OnlineLogisticRegression
from shardlearn.online.learn import learn
from shardlearn.online.learn_group import learn_group
from shardlearn.online.sources import share_of_lines
from shardlearn.ps.rounds import Rounds
from tests.conftest import kill_after_checkpoint

ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _vw_lines(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = rng.normal(size=2)
        y = 1 if a + 0.5 * b + rng.normal() * 0.5 > 0 else -1
        w = f" {rng.choice([0.5, 1, 2])}" if i % 7 == 0 else ""
        out.append(f"{y}{w} |f a:{a:.4f} b:{b * 100:.3f} |c k{rng.integers(20)}")
    return out


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


# --- the pieces ---------------------------------------------------------------
@pytest.mark.parametrize("workers,from_line", [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("tail", ["\n", ""])
def test_share_of_lines_deals_every_line_to_one_worker(workers, from_line, tail):
    lines = [f"l{i}" for i in range(1, 12)]
    buf = ("\n".join(lines) + tail).encode()
    got = [share_of_lines(buf, 1, workers, r, from_line) for r in range(workers)]
    for r, (mine, numbers) in enumerate(got):
        expect = [i for i in range(1, 12) if i >= from_line and (i - from_line) % workers == r]
        assert numbers.tolist() == expect
        assert [x for x in mine.decode().split("\n") if x] == [f"l{i}" for i in expect]
    assert sorted(n for _, numbers in got for n in numbers) == list(range(from_line, 12))
    mine, numbers = share_of_lines(b"x\ny\n", 7, 2, 1)  # numbered from where the block starts
    assert mine == b"y\n" and numbers.tolist() == [8]


def test_rounds_agree_on_checkpoints_and_the_stop():
    r = Rounds(3, every_examples=10)
    assert r.advance(0, 4, idle=False) == (1, -1, -1)
    assert r.advance(1, 0, idle=True) == (1, -1, -1)  # follows the busiest
    assert r.advance(1, 0, idle=True) == (1, -1, -1)  # never leads it
    assert r.advance(2, 7, idle=False) == (1, 2, -1)  # 11 examples: a round at the highest clock + 1
    assert r.advance(0, 50, idle=False) == (2, 2, -1)  # no second round before everyone passed the first
    assert r.advance(1, 0, idle=True) == (2, 2, -1)
    assert r.advance(2, 0, idle=True, finished=True) == (2, 2, -1)
    for w in (0, 1):
        r.advance(w, 0, idle=False)
    assert r.advance(2, 0, idle=True, finished=True) == (3, 4, -1)  # everyone past 2: 50 examples -> round 4
    assert r.advance(0, 0, idle=False, finished=True)[2] == -1  # learner 1 has not finished
    clock, _, stop_at = r.advance(1, 0, idle=False, finished=True)
    assert stop_at == 5 and clock == 4
    while clock < stop_at:  # an idle learner may go up to a decided round
        clock = r.advance(2, 0, idle=True, finished=True)[0]
    s = Rounds(2)
    s.advance(0, 1, idle=False)
    assert s.advance(1, 0, idle=True, stop=True) == (1, -1, 2)  # one learner stopped by a signal stops all


# --- one learner through the shards equals the one-process learner ----------
@pytest.mark.parametrize("est", [
    OnlineLogisticRegression(hash_bits=12, l2=1e-4),
    OnlineLogisticRegression(hash_bits=12, rule="ftrl", l1=1e-3, l2=1e-4),
    OnlineLogisticRegression(hash_bits=12, rule="adagrad", l1=1e-4, fit_intercept=False),
    OnlineLogisticRegression(hash_bits=12, rule="sgd", loss="hinge", power_t=0.5, interactions=["fc"]),
    OnlineLinearRegression(hash_bits=12, l1=1e-5, l2=1e-4),
], ids=["normalized-l2", "ftrl-l1-l2", "adagrad-l1-no-intercept", "sgd-hinge-q", "squared-l1-l2"])
def test_one_learner_over_the_shards_equals_the_one_process_learner(tmp_path, est):
    src = _write(tmp_path / "s.vw", _vw_lines(4000))
    params = est.get_params()  # the constructor's arguments: a fresh estimator each side
    ref = type(est)(**params)
    one = learn(src, ref, fmt="vw", model_dir=str(tmp_path / "one"), holdout_every=5)
    out = learn_group(src, type(est)(**params), workers=1, batch_size=97, fmt="vw", model_dir=str(tmp_path / "g"),
                      holdout_every=5, block_bytes=20_000)
    got = shardlearn.load(str(tmp_path / "g"))
    np.testing.assert_allclose(got._state["ws"], ref._state["ws"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    key = next(k for k in one if k.startswith("progressive_"))
    assert out["examples"] == one["examples"] == 3200 and out["holdout_examples"] == 800
    assert out[key] == pytest.approx(one[key], rel=1e-9)
    assert out[f"holdout_{key}"] == pytest.approx(one[f"holdout_{key}"], rel=1e-9)
    assert got.n_seen_ == ref.n_seen_ and got.progressive_loss_ == pytest.approx(ref.progressive_loss_, rel=1e-9)


# --- several learners ---------------------------------------------------------
@pytest.mark.parametrize("strategy", ["asp", "ssp"])
def test_two_learners_split_a_file_by_lines_and_learn_as_well(tmp_path, strategy):
    lines = _vw_lines(20_000, seed=3)
    lines[4001] = "1 |f a:zz"  # a bad line, skipped and counted by the learner whose line it is
    src = _write(tmp_path / "s.vw", lines)
    one = learn(src, OnlineLogisticRegression(hash_bits=14, l2=1e-5), fmt="vw", model_dir=str(tmp_path / "one"),
                on_bad_row="skip")
    out = learn_group(src, OnlineLogisticRegression(hash_bits=14, l2=1e-5), workers=2, strategy=strategy,
                      staleness=1, fmt="vw", model_dir=str(tmp_path / "g"), on_bad_row="skip", block_bytes=50_000)
    assert out["examples"] == 19_999 and out["skipped"] == {"feature value is not a number": 1}
    assert [w["examples"] for w in out["per_worker"]] == [10_000, 9_999]  # line 4002 was learner 1's
    assert out["workers"] == 2 and out["strategy"] == strategy and out["resumed_from_example"] == 0
    assert out["progressive_logloss"] == pytest.approx(one["progressive_logloss"], rel=0.03)
    assert out["auc"] == pytest.approx(one["auc"], abs=0.01)
    model = shardlearn.load(str(tmp_path / "g"))
    assert model.n_seen_ == 19_999
    with pytest.raises(ConfigError, match="workers was 2 there and is 1 here"):
        learn_group(src, OnlineLogisticRegression(hash_bits=14, l2=1e-5), workers=1, fmt="vw",
                    model_dir=str(tmp_path / "g"))


def test_a_bad_line_stops_the_learners_naming_its_line_in_the_file(tmp_path):
    lines = _vw_lines(3000, seed=7)
    lines[2222] = "1 |f a:zz"  # line 2223: learner 0's of 2
    src = _write(tmp_path / "s.vw", lines)
    with pytest.raises(shardlearn.DataError, match=r"s\.vw: line 2223: feature value 'zz' is not a number"):
        learn_group(src, OnlineLogisticRegression(hash_bits=10), workers=2, fmt="vw", model_dir=str(tmp_path / "m"),
                    on_bad_row="error")


def test_two_learners_killed_and_restarted_apply_every_line_once(tmp_path):
    src = _write(tmp_path / "s.vw", _vw_lines(200_000, seed=4))
    model = tmp_path / "m"
    call = (f"from shardlearn import OnlineLogisticRegression as O; from shardlearn.online.learn_group import "
            f"learn_group; learn_group({src!r}, O(hash_bits=14, l2=1e-5), workers=2, fmt='vw', "
            f"model_dir={str(model)!r}, checkpoint_every=3000, block_bytes=16384)")
    proc = subprocess.Popen([sys.executable, "-c", call], env=ENV, start_new_session=True)
    kill_after_checkpoint(proc, model, 5, session=True)  # the driver and both learners at once
    assert proc.returncode == -9, "the run ended before it could be killed: make the file longer"
    r = subprocess.run([sys.executable, "-m", "shardlearn", "learn", src, "--model-dir", str(model), "--workers", "2",
                        "--hash-bits", "14", "--l2", "1e-5", "--quiet"], env=ENV, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert 0 < out["resumed_from_example"] < 200_000 and out["examples"] == 200_000
    assert sum(w["examples"] for w in out["per_worker"]) == 200_000
    assert shardlearn.load(str(model)).n_seen_ == 200_000
    assert 0.2 < out["progressive_logloss"] < 0.45


def test_sigterm_stops_every_learner_with_a_last_checkpoint(tmp_path):
    lines = _vw_lines(3000, seed=5)
    src = _write(tmp_path / "s.vw", lines)
    args = [sys.executable, "-m", "shardlearn", "learn", src, "--model-dir", str(tmp_path / "m"), "--workers", "2",
            "--strategy", "ssp", "--follow", "--quiet"]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not os.path.isdir(tmp_path / "m" / "checkpoints") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3.0)
    with open(src, "a") as f:
        f.write("1 |f a:1.5 b:2\n")
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["stopped_by_signal"] is True and out["examples"] == 3001
    assert all(p["offset"] == os.path.getsize(src) for p in out["position"])
    with open(src, "a") as f:
        f.write("-1 |f a:-1 b:3\n1 |f a:2 b:1\n")
    r = subprocess.run(args[:-2] + ["--quiet"], env=ENV, capture_output=True, text=True,
                       timeout=300)
    again = json.loads(r.stdout)
    assert again["examples"] == 3003 and again["resumed_from_example"] == 3001, r.stderr


def test_two_learners_consume_a_redis_stream_exactly_once_across_a_kill(redis_server, tmp_path):
    redis = pytest.importorskip("redis")
    lines = _vw_lines(120_000, seed=6)
    client = redis.Redis(port=redis_server)
    client.delete("g1")
    pipe = client.pipeline()
    for line in lines:
        pipe.xadd("g1", {"data": line})
    pipe.execute()
    url = f"redis://127.0.0.1:{redis_server}/g1?group=g&consumer=c&count=500"  # small reads: killed mid-stream
    model = tmp_path / "m"
    call = (f"from shardlearn import OnlineLogisticRegression as O; from shardlearn.online.learn_group import "
            f"learn_group; "
            f"learn_group({url!r}, O(hash_bits=14), workers=2, fmt='vw', model_dir={str(model)!r}, "
            f"checkpoint_every=1000, stop_when_idle=30)")  # small reads, many rounds: killed mid-stream
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", call], env=ENV, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        kill_after_checkpoint(proc, model, 5, session=True)  # the driver and both learners at once
    assert proc.returncode == -9, f"ended before it could be killed: {(tmp_path / 'stderr').read_text()[-2000:]}"
    assert client.xpending("g1", "g")["pending"] > 0  # delivered, never acknowledged
    r = subprocess.run([sys.executable, "-m", "shardlearn", "learn", url, "--model-dir", str(model), "--workers", "2",
                        "--hash-bits", "14", "--stop-when-idle", "1", "--quiet"], env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert 0 < out["resumed_from_example"] < 120_000 and out["examples"] == 120_000
    assert all(w["examples"] > 0 for w in out["per_worker"])  # the broker dealt entries to both consumers
    assert client.xpending("g1", "g")["pending"] == 0  # everything acknowledged after the last checkpoint
    consumers = sorted(c["name"].decode() for c in client.xinfo_consumers("g1", "g"))
    assert consumers == ["c-0", "c-1"]


def test_settings_the_learners_cannot_run_are_refused(tmp_path):
    est = OnlineLogisticRegression(hash_bits=8)
    src = _write(tmp_path / "s.vw", _vw_lines(10))
    for kw, message in [(dict(strategy="bsp"), "stream learners run asp or ssp"),
                        (dict(workers=0), "--workers must be an integer >= 1"),
                        (dict(batch_size=0), "--batch-size must be >= 1"),
                        (dict(holdout_every=1), "--holdout-every must be at least 2")]:
        with pytest.raises(ConfigError, match=message):
            learn_group(src, est, **dict(dict(workers=2, fmt="vw", model_dir=str(tmp_path / "m")), **kw))
    for source in ("-", "tcp://127.0.0.1:9"):
        with pytest.raises(ConfigError, match="several learners need a file"):
            learn_group(source, est, workers=2, fmt="vw", model_dir=str(tmp_path / "m"))
    with pytest.raises(shardlearn.DataError, match="no such file"):
        learn_group(str(tmp_path / "nope.vw"), est, workers=2, fmt="vw", model_dir=str(tmp_path / "m"))
