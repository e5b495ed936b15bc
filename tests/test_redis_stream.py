"""Redis Streams as a source (issue 15): a real ``redis-server`` (Debian's package, which
``.ci/run`` installs) started on a free port for this module. Learning from a stream equals
learning the same lines in order; a learner SIGKILLed mid-stream and restarted applies
every entry exactly once and acknowledges everything; entries it cannot use are counted."""
import os
import subprocess
import sys

import numpy as np
import pytest

from shardlearn import ConfigError, OnlineLogisticRegression
from shardlearn.online import formats
from shardlearn.online.learn import learn
from shardlearn.online.redis_stream import RedisStream
from tests.conftest import kill_after_checkpoint

redis = pytest.importorskip("redis", reason="redis-py is not installed (pip install -e '.[test]')")
ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def server(redis_server):
    return redis_server


def _lines(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rng.normal(size=2)
        out.append(f"{1 if a + 0.5 * b + rng.normal() * 0.5 > 0 else -1} |f a:{a:.4f} b:{b:.3f} |c k{rng.integers(9)}")
    return out


def _fill(port, stream, lines):
    client = redis.Redis(port=port)
    client.delete(stream)
    pipe = client.pipeline()
    for line in lines:
        pipe.xadd(stream, {"data": line})
    pipe.execute()


def _reference(lines):
    est = OnlineLogisticRegression(hash_bits=12, l2=1e-4)
    block = formats.parse_block("vw", ("\n".join(lines) + "\n").encode(), where=str, bits=12, on_bad_row="error")
    est.learn_block(block.X, block.y, block.h)
    return est


def test_a_stream_equals_its_lines_learned_in_order(server, tmp_path):
    lines = _lines(5000)
    _fill(server, "s1", lines)
    est = OnlineLogisticRegression(hash_bits=12, l2=1e-4)
    out = learn(f"redis://127.0.0.1:{server}/s1?group=g&consumer=c1", est, fmt="vw", model_dir=str(tmp_path / "m"),
                stop_when_idle=0.5)
    assert out["examples"] == 5000 and out["skipped"] == {}
    np.testing.assert_array_equal(est._state["ws"], _reference(lines)._state["ws"])
    assert redis.Redis(port=server).xpending("s1", "g")["pending"] == 0  # all acknowledged after the checkpoint


def test_a_killed_learner_restarted_applies_each_entry_once(server, tmp_path):
    lines = _lines(80_000, seed=1)
    _fill(server, "s2", lines)
    url = f"redis://127.0.0.1:{server}/s2?group=g&consumer=c1&count=500"  # small reads: killed mid-stream
    model = tmp_path / "m"
    call = (f"from shardlearn import OnlineLogisticRegression as O; from shardlearn.online.learn import learn; "
            f"learn({url!r}, O(hash_bits=12, l2=1e-4), fmt='vw', model_dir={str(model)!r}, checkpoint_every=1000, "
            f"stop_when_idle=30)")
    proc = subprocess.Popen([sys.executable, "-c", call], env=ENV)
    kill_after_checkpoint(proc, model, 5)
    assert proc.returncode == -9
    assert redis.Redis(port=server).xpending("s2", "g")["pending"] > 0  # delivered, never acknowledged
    est = OnlineLogisticRegression(hash_bits=12, l2=1e-4)
    out = learn(url, est, fmt="vw", model_dir=str(model), stop_when_idle=0.5)
    assert 0 < out["resumed_from_example"] < 80_000 and out["examples"] == 80_000
    np.testing.assert_array_equal(est._state["ws"], _reference(lines)._state["ws"])
    assert redis.Redis(port=server).xpending("s2", "g")["pending"] == 0


def test_entries_checkpointed_but_not_acknowledged_are_not_learned_twice(server, tmp_path, monkeypatch):
    # killed between "checkpoint durable" and XACK: the pending entries are all at or below
    # the checkpoint's entry ID; the restart acknowledges them without learning them again
    lines = _lines(3000, seed=2)
    _fill(server, "s3", lines)
    url = f"redis://127.0.0.1:{server}/s3?group=g&consumer=c1"
    with monkeypatch.context() as m:
        m.setattr(RedisStream, "committed", lambda self, position: None)
        learn(url, OnlineLogisticRegression(hash_bits=12, l2=1e-4), fmt="vw", model_dir=str(tmp_path / "m"),
              stop_when_idle=0.5)
    assert redis.Redis(port=server).xpending("s3", "g")["pending"] == 3000
    est = OnlineLogisticRegression(hash_bits=12, l2=1e-4)
    out = learn(url, est, fmt="vw", model_dir=str(tmp_path / "m"), stop_when_idle=0.5)
    assert out["examples"] == 3000 and out["resumed_from_example"] == 3000
    np.testing.assert_array_equal(est._state["ws"], _reference(lines)._state["ws"])
    assert redis.Redis(port=server).xpending("s3", "g")["pending"] == 0


def test_unusable_entries_are_counted_and_bad_lines_named_by_entry(server, tmp_path):
    client = redis.Redis(port=server)
    client.delete("s4")
    client.xadd("s4", {"data": "1 |f a:1"})
    client.xadd("s4", {"other": "1 |f a:1"})
    client.xadd("s4", {"data": "1 |f a:1\n-1 |f a:2"})
    bad = client.xadd("s4", {"data": "1 |f a:zz"})
    out = learn(f"redis://127.0.0.1:{server}/s4?group=g&consumer=c", OnlineLogisticRegression(hash_bits=8),
                fmt="vw", model_dir=str(tmp_path / "m"), stop_when_idle=0.5, on_bad_row="skip")
    assert out["examples"] == 1
    assert out["skipped"] == {"entry has no 'data' field": 1, "entry holds more than one line": 1,
                              "feature value is not a number": 1}
    from shardlearn import DataError

    with pytest.raises(DataError, match=f"s4\\?group=g2&consumer=c: entry {bad.decode()}: feature value 'zz'"):
        learn(f"redis://127.0.0.1:{server}/s4?group=g2&consumer=c", OnlineLogisticRegression(hash_bits=8),
              fmt="vw", model_dir=str(tmp_path / "e"), stop_when_idle=0.5, on_bad_row="error")
    with pytest.raises(ConfigError, match="is not a stream address"):
        learn(f"redis://127.0.0.1:{server}/s4", OnlineLogisticRegression(hash_bits=8), fmt="vw",
              model_dir=str(tmp_path / "x"))
    for count in ("0", "x", "-5"):
        with pytest.raises(ConfigError, match=f"count={count} is not a whole number of entries >= 1"):
            learn(f"redis://127.0.0.1:{server}/s4?group=g&consumer=c&count={count}", OnlineLogisticRegression(),
                  fmt="vw", model_dir=str(tmp_path / "x"))


def test_a_pending_entry_deleted_before_the_restart_is_counted_not_fatal(server):
    # delivered, never acknowledged, then XDEL'd: Redis hands it back on the pending list without fields
    client = redis.Redis(port=server)
    client.delete("s5")
    ids = [client.xadd("s5", {"data": f"1 |f a:{i}"}) for i in range(3)]
    url = f"redis://127.0.0.1:{server}/s5?group=g&consumer=c"
    first = next(RedisStream(url).blocks(None, idle=0.2))
    assert first[0] == b"1 |f a:0\n1 |f a:1\n1 |f a:2\n"
    client.xdel("s5", ids[1])
    again = list(RedisStream(url).blocks(None, idle=0.2))
    assert [(b, p, s) for b, p, _, s in again] == [(b"1 |f a:0\n1 |f a:2\n", {"id": ids[2].decode()},
                                                    {"entry has no 'data' field": 1})]
    assert again[0][2](1) == f"{url}: entry {ids[2].decode()}"  # a bad line is named by its own entry
