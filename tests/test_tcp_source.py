"""A TCP socket as a source (issue 15): the learner listens, producers connect and send one
example a line; it greets each with the sequence number it expects next, so a producer
resending from there gets every example applied once across a SIGKILL and a restart."""
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from shardlearn import ConfigError, OnlineLogisticRegression
from shardlearn.online import formats
from shardlearn.online.learn import learn
from shardlearn.runtime.launch import free_port

from tests.conftest import kill_after_checkpoint

ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _lines(n, seed=0):
    rng = np.random.default_rng(seed)
    return [f"{1 if a + rng.normal() > 0 else -1} |f a:{a:.4f} |c k{rng.integers(7)}"
            for a in rng.normal(size=n)]


def _produce(port, lines, chunk=997, pause=0.0, resume=True):
    """A producer: connects (retrying while the learner starts), reads ``next N`` and sends from
    line N (``resume``; else from its first line, as ``nc`` would) in pieces cut mid-line. Returns N."""
    for _ in range(600):
        try:
            conn = socket.create_connection(("127.0.0.1", port))
            break
        except ConnectionRefusedError:
            time.sleep(0.05)
    greeting = b""
    while not greeting.endswith(b"\n"):
        greeting += conn.recv(1)
    start = int(greeting.split()[1]) if resume else 0
    data = ("\n".join(lines[start:]) + "\n").encode()
    try:
        for i in range(0, len(data), chunk):
            conn.sendall(data[i:i + chunk])
            if pause:
                time.sleep(pause)
    except (BrokenPipeError, ConnectionResetError):
        pass
    conn.close()
    return start


def _reference(lines):
    est = OnlineLogisticRegression(hash_bits=12)
    b = formats.parse_block("vw", ("\n".join(lines) + "\n").encode(), where=str, bits=12, on_bad_row="error")
    est.learn_block(b.X, b.y, b.h)
    return est


def test_two_producers_and_the_lines_they_send(tmp_path):
    port = free_port()
    a, b = _lines(3000, 1), _lines(2000, 2)
    # two producers of their own lines: the learner's sequence counts both, so neither resumes by it
    producers = [threading.Thread(target=_produce, args=(port, part), kwargs={"resume": False}) for part in (a, b)]
    for p in producers:
        p.start()
    out = learn(f"tcp://127.0.0.1:{port}", OnlineLogisticRegression(hash_bits=12), fmt="vw",
                model_dir=str(tmp_path / "m"), stop_when_idle=1.5)
    for p in producers:
        p.join()
    assert out["examples"] == 5000 and out["position"] == {"seq": 5000} and out["skipped"] == {}


def test_a_killed_learner_and_a_resending_producer_apply_each_example_once(tmp_path):
    port, lines, model = free_port(), _lines(40_000, 3), tmp_path / "m"
    call = (f"from shardlearn import OnlineLogisticRegression as O; from shardlearn.online.learn import learn; "
            f"learn('tcp://127.0.0.1:{port}', O(hash_bits=12), fmt='vw', model_dir={str(model)!r}, "
            f"checkpoint_every=2000, stop_when_idle=60)")
    proc = subprocess.Popen([sys.executable, "-c", call], env=ENV)
    producer = threading.Thread(target=_produce, args=(port, lines), kwargs={"chunk": 4096, "pause": 0.002})
    producer.start()
    kill_after_checkpoint(proc, model, 3)
    producer.join()
    assert proc.returncode == -9
    est, resent = OnlineLogisticRegression(hash_bits=12), []
    producer = threading.Thread(target=lambda: resent.append(_produce(port, lines)))
    producer.start()
    out = learn(f"tcp://127.0.0.1:{port}", est, fmt="vw", model_dir=str(model), stop_when_idle=1.5)
    producer.join()
    assert 0 < resent[0] < 40_000 and out["resumed_from_example"] == resent[0]
    assert out["examples"] == 40_000
    np.testing.assert_array_equal(est._state["ws"], _reference(lines)._state["ws"])


def test_the_cli_reads_a_socket_and_a_busy_port_is_one_line(tmp_path):
    port = free_port()
    producer = threading.Thread(target=_produce, args=(port, _lines(500)))
    producer.start()
    r = subprocess.run([sys.executable, "-m", "shardlearn", "learn", f"tcp://127.0.0.1:{port}", "--model-dir",
                        str(tmp_path / "m"), "--stop-when-idle", "1", "--quiet"], capture_output=True, text=True,
                       env=ENV, timeout=120)
    producer.join()
    assert r.returncode == 0 and json.loads(r.stdout)["examples"] == 500
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(ConfigError, match=r"tcp://127.0.0.1:\d+: cannot listen \(Address already in use\)"):
            learn(f"tcp://127.0.0.1:{busy.getsockname()[1]}", OnlineLogisticRegression(hash_bits=8), fmt="vw",
                  model_dir=str(tmp_path / "b"))
