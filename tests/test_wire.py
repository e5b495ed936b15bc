"""Bytes on the wire per step and per rank (issue 18, item 3): every step record of a
worker group carries, for each rank, the bytes its collectives counted and the payload
bytes its TCP connections carried as the kernel counts them (``comm/wire.py``), and the
two agree where only collectives talk; a parameter-server strategy's traffic, which the
collectives do not see, shows in the measured figures."""
import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

from shardlearn import models
from shardlearn.runtime import distributed
from shardlearn.runtime.config import TrainConfig
from tests.conftest import data_path


@pytest.fixture(scope="module")
def a9a():
    X, y = load_svmlight_file(data_path("a9a", "a9a"))
    return X[:8000], (y[:8000] > 0).astype(float)


@pytest.mark.parametrize("strategy,extra", [("lbfgs", {}), ("bsp", {"solver": "sgd", "batch_size": 256}),
                                            ("local_sgd", {"solver": "sgd", "compression": "int8"}),
                                            ("bsp", {"solver": "sgd", "compression": "int8"})])
def test_each_rank_counts_what_its_connections_carried(a9a, strategy, extra):
    X, y = a9a
    cfg = TrainConfig(strategy=strategy, workers=2, max_iter=3, random_state=0, **extra)
    steps = distributed.train_arrays(models.get("logistic"), X, y, None, cfg, 1).steps
    assert len(steps) == 3
    for s in steps:
        for key in ("bytes_sent", "bytes_received", "wire_bytes_sent", "wire_bytes_received", "step_seconds",
                    "compute_seconds", "comm_seconds"):
            assert len(s[f"{key}_by_rank"]) == 2 and s[f"{key}_by_rank"][0] == s[key]
        # each rank's seconds on its own clock: rank 1 may wait in its first collective for rank 0
        # to start, longer than rank 0's own step took
        assert all(0 < c < t for c, t in zip(s["comm_seconds_by_rank"], s["step_seconds_by_rank"])), s
        # a rank's own work, what a slower rank makes the others wait for (the cost model's check
        # subtracts it); the per-example kernel's is its step outside collectives (it was 0)
        assert all(c > 0 for c in s["compute_seconds_by_rank"]), s
        # every rank timed the same calls: each call's shortest duration over the ranks, summed
        assert 0 < s["transfer_seconds"] <= min(s["comm_seconds_by_rank"]) + 1e-9, s
        if cfg.per_example:
            assert "rows" not in s, s
            for c, m, t in zip(s["compute_seconds_by_rank"], s["comm_seconds_by_rank"], s["step_seconds_by_rank"]):
                assert c + m == pytest.approx(t, rel=1e-9)
        counted, measured = np.array(s["bytes_sent_by_rank"]), np.array(s["wire_bytes_sent_by_rank"])
        assert counted.min() > 0
        # gloo's framing and the loss allreduce's small messages add a little; nothing else talks
        assert np.all(measured >= counted) and np.all(measured <= 1.15 * counted + 4096), (counted, measured)
        # what one rank sent the other received (two ranks: one connection's two ends)
        assert s["wire_bytes_sent_by_rank"][0] == s["wire_bytes_received_by_rank"][1] or \
            abs(s["wire_bytes_sent_by_rank"][0] - s["wire_bytes_received_by_rank"][1]) < 1024


def test_parameter_server_traffic_shows_on_the_wire(a9a):
    """Over a server: workers of one machine that each host a shard map each other's shards
    from shared memory instead (``runtime.ps_shared``), where nothing goes on the wire."""
    X, y = a9a
    cfg = TrainConfig(strategy="asp", workers=2, servers=1, max_iter=2, random_state=0, solver="sgd", batch_size=256)
    steps = distributed.train_arrays(models.get("logistic"), X, y, None, cfg, 1).steps
    for s in steps:  # the collectives see next to nothing; the pushes and pulls are there
        wire, sent = ([b for b in s[k] if b is not None] for k in ("wire_bytes_sent_by_rank", "bytes_sent_by_rank"))
        assert len(wire) == 2 and min(wire) > 20 * max(sent) + 10_000, s  # the workers' (a server logs no step)


def test_bytes_written_count_before_the_peer_acknowledges_them():
    """A receiver that does not read: what the kernel took from send() is counted at once, the
    part still in the send buffer (unsent or unacknowledged) too. Counting acknowledged bytes
    read a collective's last chunk short until its ACK came back."""
    import socket

    from shardlearn.comm.wire import tcp_bytes

    lst, snd = socket.socket(), socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    snd.connect(lst.getsockname())
    rcv, _ = lst.accept()
    rcv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        before = tcp_bytes()
        snd.setblocking(False)
        written, chunk = 0, b"x" * 65536
        while True:  # fill the peer's window and our send buffer
            try:
                written += snd.send(chunk)
            except BlockingIOError:
                break
        after = tcp_bytes()
        # the receiving socket has the bytes that reached it: sent - received is what is still queued
        assert after[0] - before[0] == written, (after[0] - before[0], written)
        assert 0 < after[1] - before[1] < written
    finally:
        for s in (snd, rcv, lst):
            s.close()
