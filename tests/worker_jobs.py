"""Jobs that only tests send to the local worker group (``group.run("tests.worker_jobs:NAME")``):
kept out of the production job table and its signatures."""
import os
import time

import numpy as np

from shardlearn.ps import host
from shardlearn.runtime import job
from shardlearn.ps.client import Client
from shardlearn.ps.slicer import make
from shardlearn.runtime import ps_run
from shardlearn.runtime.config import TrainConfig


def ping(comm, *, fail_rank=None, die_rank=None, sleep_s=0.0, progress=None):
    """One allreduce; a chosen rank raises or exits abruptly."""
    time.sleep(sleep_s)
    if comm.rank == fail_rank:
        raise ValueError("deliberate failure")
    if comm.rank == die_rank:
        os._exit(17)
    return float(comm.allreduce(np.array([1.0]))[0])


def ps_pushes(comm, *, cfg: dict, n_keys: int, pushes: int, progress=None):
    """Every worker pushes ``v`` (1 at every key, + its rank at key 0) ``pushes`` times,
    concurrently, to "add" shards; then each pulls every key. Returns the pulled vector."""
    cfg = TrainConfig(**cfg)
    comm, ctx = ps_run.enter(comm, cfg)
    if ctx.is_server:
        return ps_run.serve(ctx)
    slicer = make(cfg.slicer, n_keys, len(ctx.hosts), 7)
    if comm.rank == 0:
        for f in [ctx.transport.call(h, host.create, s, slicer.size(s), "add", 0.0, 0.0, 0.0, "float64")
                  for s, h in enumerate(ctx.hosts)]:
            ctx.transport.wait(f)
    comm.barrier()
    client = Client(ctx.transport, slicer, ctx.hosts, comm.rank)
    keys = np.random.default_rng(comm.rank).permutation(n_keys)
    v = np.ones(n_keys)
    v[keys == 0] += comm.rank
    handles = [client.push(keys, v) for _ in range(pushes)]  # all in flight at once
    for h in handles:
        client.wait(h)
    comm.barrier()
    out = client.wait(client.pull(np.arange(n_keys)))
    ctx.transport.close()
    return out


def fit_arrays_killed(comm, *, rank: int, call: int, at: str = "gradient", **kwargs):
    """``job.fit_arrays`` where worker ``rank`` kills itself with SIGKILL at its ``call``-th
    loss-and-gradient evaluation (``at="kernel"``: call of the per-example kernel), unless
    the run resumes (the restarted group runs clean)."""
    import signal

    from shardlearn.kernels import sgd as kernel

    if comm.rank != rank or kwargs["cfg"].get("resume"):
        return job.fit_arrays(comm, **kwargs)
    count = [0]

    def counted(fn):
        def wrapper(*a, **k):
            count[0] += 1
            if count[0] == call:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)

        return wrapper

    get, run = job.models.get, kernel.run
    if at == "kernel":
        kernel.run = counted(run)  # this worker process only (it dies before the job ends)
    else:
        job.models.get = lambda name: get(name)._replace(loss_and_grad=counted(get(name).loss_and_grad))
    try:
        return job.fit_arrays(comm, **kwargs)
    finally:
        job.models.get, kernel.run = get, run


def stream_windows(comm, *, sync: str, block_rows: int, sync_rows: int, spec: str = "none", progress=None):
    """This rank's rows of a seeded sparse table learned per example with ``online.fit``
    (``sync``: "average" or "changes"; ``spec``: the collective's codec), once in memory and
    once streamed in blocks of ``block_rows`` rows, so a sync window spans blocks; returns both
    weight vectors."""
    import scipy.sparse as sp

    from shardlearn.comm import compressed

    from shardlearn import models
    from shardlearn.data.stream import Stream
    from shardlearn.strategies import online

    rng = np.random.default_rng(comm.rank)
    n = 2000 + 300 * comm.rank  # unequal shards: one worker ends first
    X = sp.random(n, 30, density=0.2, format="csr", random_state=comm.rank)
    y = (np.asarray(X @ np.linspace(-2, 2, 30)).ravel() + 0.1 * rng.normal(size=n) > 0).astype(float)
    stream = Stream(lambda: ((X[lo : lo + block_rows], y[lo : lo + block_rows]) for lo in range(0, n, block_rows)),
                    n, 30)
    m = models.get("logistic")
    opts = dict(theta0=m.init(30), rule="normalized", lr=0.5, alpha=1e-3, l1_ratio=0.5, epochs=2, shuffle=False,
                comm=compressed.wrap(comm, spec), sync_rows=sync_rows, sync=sync)
    return [online.fit(m, data, y, **opts).theta["w"] for data in (X, stream)]


def compressed_sums(comm, *, spec: str, steps: int, n: int, error_feedback: bool = True, progress=None):
    """``steps`` compressed sums of rank-seeded vectors (magnitudes over decades): each result,
    the exact sums, the bytes each compressed sum counted, and this rank's residuals at the end."""
    from shardlearn.comm import compressed

    c = compressed.wrap(comm, spec, error_feedback)
    rng = np.random.default_rng(comm.rank)
    out = {"out": [], "true": [], "sent": []}
    for _ in range(steps):
        v = rng.normal(size=n) * np.exp(rng.normal(size=n))
        before = comm.stats.bytes_sent
        out["out"].append(c.sum(v))
        out["sent"].append(comm.stats.bytes_sent - before)
        out["true"].append(comm.allreduce(v.copy()))
    return dict(out, residual=c.state.residual, server=c.server)


def agreed_moments(comm, *, n: int, coarse: bool, progress=None):
    """``runtime.agree.moments`` over rank-seeded statistics (magnitudes over decades) and a
    fractional weight total: the sums, the exact ones, the sums of magnitudes (what rounding's
    error is relative to where signs cancel), the total and the bytes it counted."""
    from shardlearn.runtime import agree

    rng = np.random.default_rng(comm.rank)
    stats = [rng.normal(size=n) * np.exp(3 * rng.normal(size=n)), np.exp(rng.normal(size=n))]
    total = 1e8 + 0.1 * (comm.rank + 1)
    before = comm.stats.bytes_sent
    summed, got = agree.moments(comm, stats, total, coarse=coarse)
    sent = comm.stats.bytes_sent - before
    return dict(summed=summed, total=got, sent=sent, true=comm.allreduce(np.concatenate(stats)),
                magnitude=comm.allreduce(np.abs(np.concatenate(stats))))


def agreed_scales(comm, *, progress=None):
    """The preconditioner's scales (``precond.from_moments``) of rank-seeded rows with a
    timestamp-like column (1.7e9, spread 1e3), a unit one and nanosecond timestamps (1.7e18,
    whose squares' sum passes float32's range), from moments agreed exactly, in float32 with
    the cancelled columns resent, and in float32 alone."""
    from shardlearn.runtime import agree
    from shardlearn.strategies import precond

    rng = np.random.default_rng(comm.rank)
    X = np.column_stack([1.7e9 + 1e3 * rng.normal(size=500) + 1e4 * comm.rank, rng.normal(size=500),
                         1.7e18 + 1e12 * rng.normal(size=500)])
    s1, s2, total = precond.moments(X)
    out = {}
    for name, kw in [("exact", {}), ("coarse", dict(coarse=True, fragile=precond.cancelled)),
                     ("float32", dict(coarse=True))]:
        vec, n = agree.moments(comm, [s1, s2], total, **kw)
        with np.errstate(invalid="ignore"):  # float32 alone: inf - inf for the nanoseconds
            out[name] = precond.from_moments(vec[:3], vec[3:], n).scale
    return out


def active_columns(comm, *, width: int, progress=None):
    """The columns active on some worker, where rank r's rows hold columns r, r + 5, r + 10, ...
    below ``width`` // (r + 1)."""
    import scipy.sparse as sp

    from shardlearn.runtime.active import columns as active

    cols = np.arange(comm.rank, width // (comm.rank + 1), 5)
    X = sp.csr_matrix((np.ones(cols.size), (np.zeros(cols.size, dtype=int), cols)), shape=(1, width))
    return active(X, comm)


def coded_changes(comm, *, spec: str, rule: str, rounds: int, progress=None):
    """``rounds`` per-example bsp merges through ``spec`` of rank-seeded sparse rows: the final
    state, this rank's exact changes summed over rounds (weights and adaptive sums, by
    coordinate), its residuals, and the bytes each merge counted. No penalty: a merge's
    catch-up of the lazy penalty would move the weights too (``kernels.delta.start``); every
    value 10, so no scale grows (a merge rescales a weight to a larger scale: not additive)."""
    import scipy.sparse as sp

    from shardlearn.comm import compressed
    from shardlearn.kernels import delta, sgd as kernel
    from shardlearn.strategies import online
    from shardlearn.strategies.coded_changes import Coded

    c = compressed.wrap(comm, spec)
    d = 300
    rng = np.random.default_rng(comm.rank)
    X = sp.random(rounds * 40, d, density=0.05, format="csr", random_state=rng)
    X.data[:] = 10.0
    y = (rng.random(X.shape[0]) < 0.4).astype(float)
    state = kernel.new_state(d, rule)
    opts = dict(rule=rule, lr=0.5)
    coded = Coded(c.codec, d, opts)
    exact, sent = np.zeros((d + 1, 2)), []
    for r in range(rounds):
        part = np.arange(40 * r, 40 * (r + 1))
        keys, before = online._before(state, X, part, opts)
        kernel.run(state, X, y, np.ones(X.shape[0]), part, loss="logistic", **opts)
        ch = delta.change(before[0], state["ws"][keys], rule)
        exact[keys] += ch[:, [kernel.W, kernel.G]]
        at = comm.stats.bytes_sent
        coded.merge(c, state, keys, before, width=d + 1)
        sent.append(comm.stats.bytes_sent - at)
    left = coded.residual[:, :2].copy()
    if rule == "normalized":  # a weight's residual is kept times its scale (delta.columns)
        left[:, 0] /= np.where(state["ws"][:, kernel.S] > 0, state["ws"][:, kernel.S], 1.0)
    return {"ws": state["ws"], "scalars": state["scalars"], "exact": exact, "residual": left,
            "sent": sent, "message": coded.message_bytes(d + 1)}


def sparse_average_step(comm, *, rule: str, l1: float, l2: float, progress=None):
    """Every rank learns the same 200 rows, then 20 + 15 x rank rows of its own, then averages
    once sparsely and once densely (``strategies.online._average``) from copies of that state.
    Returns ``(its keys, sparse state's weights, dense state's weights, finalized: sparse,
    dense, its own before averaging)``."""
    import scipy.sparse as sp

    from shardlearn.kernels import sgd as kernel
    from shardlearn.strategies import online
    from shardlearn.strategies.sparse_average import SparseAverage

    rng = np.random.default_rng(0)  # the same data on every rank
    X = sp.random(400, 3000, density=0.004, format="csr", random_state=1, data_rvs=rng.standard_normal)
    y = (rng.random(400) < 0.3).astype(float)
    opts = dict(rule=rule, lr=0.5, l1=l1, l2=l2)
    state = kernel.new_state(3000, rule)
    kernel.run(state, X, y, None, np.arange(200), loss="logistic", **opts)
    part = np.arange(200 + 60 * comm.rank, 220 + 75 * comm.rank)
    used = float(kernel.run(state, X, y, None, part, loss="logistic", **opts)[1])
    avg = SparseAverage(comm, X, opts, online._averaged(rule))
    keys = avg.keys(part)
    mine = kernel.finalized(state, **opts)
    sparse = {k: v.copy() for k, v in state.items()}

    def refuse(st, u):
        raise AssertionError("took the dense way")

    avg(sparse, keys, used, refuse)
    online._average(comm, state, used, opts)
    return (keys, sparse["ws"][:, kernel.W].copy(), state["ws"][:, kernel.W].copy(), kernel.finalized(sparse, **opts),
            kernel.finalized(state, **opts), mine)


def centre_together(comm, *, X, progress=None):
    """``precond.centre`` of this rank's half of ``X`` (rows ``rank::size``), with ``comm``."""
    from shardlearn.strategies import precond

    return precond.centre(X[comm.rank :: comm.size], comm=comm)
