"""Running a fit over the parameter server: roles, the RPC group, the shards'
creation, and the model's assembly from the shards' slices.

Roles: with ``servers=0`` every rank hosts one shard and trains; with
``servers=S`` the last S ranks of the group only host shards. The trainers keep
a gloo group of their own (for agreeing on classes and step counts), and every
rank joins one RPC group on a port rank 0 picks. At the end each host writes
its slices to shared memory and the driver assembles the model, so no worker
ever holds the whole model.
"""
from __future__ import annotations

import os
import time

import numpy as np

from shardlearn.comm import codecs
from shardlearn.core.errors import ConfigError
from shardlearn.kernels import delta
from shardlearn.ps import host
from shardlearn.runtime import active as columns_in_use, agree, launch, ps_shared
from shardlearn.ps.client import Client
from shardlearn.ps.slicer import make as make_slicer
from shardlearn.optim.scaling import where_present
from shardlearn.strategies import precond, ps_sgd
from shardlearn.strategies.online import anneal_span

class Context:
    def __init__(self, transport, trainers: int, hosts: list[int], rank: int):
        self.transport, self.trainers, self.hosts, self.rank = transport, trainers, hosts, rank

    @property
    def is_server(self) -> bool:
        return self.rank >= self.trainers


def enter(comm, cfg):
    """Join the RPC group (every rank); returns ``(trainer comm or None, Context)``."""
    from shardlearn.comm.rpc import RpcTransport

    trainers = cfg.workers
    if comm.size != trainers + cfg.servers:
        raise ConfigError(f"{comm.size} processes for {trainers} workers and {cfg.servers} servers")
    # a port free on the address the RPC group meets at (rank 0's host: the master's), not on loopback,
    # its store listening before the others learn the port
    port, store = launch.rpc_store(launch.rpc_address(), comm.size) if comm.rank == 0 else (0, None)
    port = int(comm.allreduce(np.array([float(port)]), op="max")[0])
    sub = comm.subgroup(trainers) if cfg.servers else comm
    host.reset()
    with launch.own_store():
        transport = RpcTransport(comm.rank, comm.size, launch.rpc_address(), port)
    del store  # the rendezvous's own store now holds the listening server
    hosts = list(range(trainers, trainers + cfg.servers)) if cfg.servers else list(range(trainers))
    return sub, Context(transport, trainers, hosts, comm.rank)


def serve(ctx: Context) -> dict:
    """A server rank: answer requests until every rank leaves, then hand over the slices."""
    t = time.perf_counter()
    ctx.transport.close()
    under_torchrun = launch.from_env() is not None  # no driver to assemble (and remove) slices: rank 0 pulls
    return {"params": None, "n_iter": 0, "steps": [],
            "slices": host.save_slices(launch.scratch_dir()) if not under_torchrun else {},
            "report": {"rank": ctx.rank, "role": "server", "pushes": host.pushes(),
                       "serve_seconds": time.perf_counter() - t}}


class ShardCheckpoint:
    """Checkpoints of a parameter-server run at a consistent cut: at a due step every worker
    stops (barrier: all its earlier pushes are applied), rank 0 has every shard write its slice
    and optimizer state into the checkpoint being staged, and the workers add their cursors."""

    def __init__(self, ckpt, comm, ctx: Context):
        self.ckpt, self.comm, self.ctx = ckpt, comm, ctx

    def due(self, t: int) -> bool:
        return self.ckpt.due(t)

    def save(self, t: int, arrays: dict) -> None:
        self.comm.barrier()
        names = None
        if self.comm.rank == 0:
            folder = self.ckpt.staging(t)
            futs = [self.ctx.transport.call(h, host.save_shard, s, folder) for s, h in enumerate(self.ctx.hosts)]
            names = [self.ctx.transport.wait(f) for f in futs]
        self.ckpt.save(t, arrays, extra=names)


def restore_shards(ctx: Context, ckpt, n_shards: int) -> None:
    futs = [ctx.transport.call(h, host.load_shard, s, os.path.join(ckpt.loaded, f"shard-{s}.npz"))
            for s, h in enumerate(ctx.hosts[:n_shards])]
    for f in futs:
        ctx.transport.wait(f)


def train(comm, ctx: Context, model, X, y, sw, cfg, progress=None, snapshot_every=None,
          report=None, owned: bool = False, n_outputs: int = 1) -> dict:
    """A trainer rank: create the shards (rank 0), run the consistency policy, leave.
    ``snapshot_every``: rank 0 pulls the whole model every that many steps (loss-vs-time curves).
    With ``cfg.checkpoint_dir`` the shards and cursors are checkpointed and, with ``cfg.resume``,
    restored from the newest valid checkpoint. ``owned``: ``X`` is this worker's own copy of its rows,
    narrowed in place (``runtime.active.compact``). ``n_outputs``: a softmax's classes K (per
    example only): key ``i K + k`` holds feature ``i``'s weight for class ``k``, the K intercepts
    follow, then the scalars (the kernel's own layout, ``kernels.sgd.new_state``)."""
    from shardlearn.runtime.progress import StepLog
    from shardlearn.runtime.loop import checkpointer_for

    per_example = cfg.per_example  # the shards hold the kernel's state; key (d + 1) K its scalars
    cfg.check_outputs(n_outputs)  # (the CLI and torchrun come here without the estimators' check)
    K = n_outputs
    width = X.shape[1]
    # per-example keys: the columns some worker's rows hold (the kernel keeps a column scratch already)
    X, active = columns_in_use.narrow(X, comm, owned) if per_example else (X, None)
    d = X.shape[1]
    n_keys = (d + 1) * K + 1 if per_example else d + 1
    slicer = make_slicer(cfg.slicer, n_keys, len(ctx.hosts), cfg.random_state or 0)
    alpha, l1r = cfg.alpha, cfg.l1_ratio
    log = StepLog(comm, total=cfg.max_iter, show=False, sink=progress)
    ckpt, resume = checkpointer_for(model, X, cfg, comm, log, report, active)
    free_shard, free_local = slicer.route(np.arange(d * K, n_keys, dtype=np.int64))  # intercepts, scalars
    # the linear schedule: the shards' clock counts every worker's rows
    anneal = anneal_span(comm, X, sw, cfg.max_iter, merged=True) if per_example and cfg.anneals(None) else None
    folder = ps_shared.folder(comm, cfg, n_keys)  # None: the shards' calls go through RPC
    specs = [(s, slicer.size(s), cfg.optimizer, cfg.base_lr(), alpha * l1r, alpha * (1 - l1r), cfg.ps_dtype,
              free_local[free_shard == s].tolist(), cfg.schedule, cfg.power_t if per_example else None, anneal,
              ps_shared.path(folder, s)) for s in range(len(ctx.hosts))]
    if comm.rank == 0:
        start = 0 if resume is None else int(resume["cursor/t"])
        made = [ctx.transport.call(h, host.create, *spec) for spec, h in zip(specs, ctx.hosts)]
        made.append(ctx.transport.call(ctx.hosts[0], host.create_clock, ctx.trainers, start))
        for f in made:
            ctx.transport.wait(f)
    comm.barrier()
    ps_shared.attach(folder, specs, ctx.hosts, comm.rank)
    ps_shared.forget(comm, folder)  # every rank holds the maps: nothing left on disk if a rank dies
    client = Client(ctx.transport, slicer, ctx.hosts, comm.rank,
                    codecs.parse(cfg.compression, cfg.error_feedback, cfg.random_state or 0),
                    columns=delta.columns(cfg.optimizer) if per_example else None,  # kernel change rows
                    whole=[n_keys - 1] if per_example else (),  # the scalars: weight seen, normalizer
                    near=range(len(ctx.hosts)) if folder is not None else ())
    if cfg.precondition and not per_example:  # the shards' scale, from the moments every worker pushes for its keys
        ps_sgd.push_moments(client, X, sw)
        comm.barrier()
        if comm.rank == 0:
            for f in [ctx.transport.call(h, host.precondition, s, model.curvature, alpha * (1 - l1r))
                      for s, h in enumerate(ctx.hosts)]:
                ctx.transport.wait(f)
    if comm.rank == 0 and resume is not None:
        restore_shards(ctx, ckpt, len(ctx.hosts))
    comm.barrier()
    staleness = {"bsp": 0, "ssp": cfg.staleness, "asp": None}[cfg.plan]

    cb = _epoch_logger(comm, log, X.shape[0])

    snapshots = []

    def model_now():  # [w, b] flat (a softmax's w: width x K, row-major)
        full = _pull_vector(client, (d + 1) * K)
        return np.append(columns_in_use.scatter(full[: d * K].reshape(d, K), active, width).ravel(), full[d * K :])

    def snapshot(t):
        if t % snapshot_every == 0:
            snapshots.append((time.perf_counter() - t0, t, model_now()))

    rows = cfg.step_rows(agree.most_rows(comm, X.shape[0]), workers=comm.size)
    t0, calls = time.perf_counter(), comm.stats.calls
    steps, clock_log = ps_sgd.fit(model, X, y, sw, client=client, comm=comm, batch_size=rows,
                                  epochs=cfg.max_iter, seed=cfg.random_state, shuffle=cfg.shuffle,
                                  staleness=staleness, share_rows=cfg.plan == "bsp",
                                  fit_intercept=cfg.fit_intercept, callback=cb,
                                  on_step=snapshot if snapshot_every and comm.rank == 0 else None,
                                  checkpoint=None if ckpt is None else ShardCheckpoint(ckpt, comm, ctx), resume=resume,
                                  tol=cfg.tol, learn=_learner(model, d, cfg, anneal, precond.centre(
                                      X, sw, cfg.fit_intercept), K) if per_example else None)
    comm.barrier()  # every push is applied before anyone reads the result
    if per_example:  # rank 0 brings the lazy penalty up to date on every key, then all read
        if comm.rank == 0:
            t, nsum = client.wait(client.pull(np.array([n_keys - 1], dtype=np.int64)))[0, :2]
            for f in [ctx.transport.call(h, host.finalize, s, float(t), float(nsum)) for s, h in enumerate(ctx.hosts)]:
                ctx.transport.wait(f)
        comm.barrier()
    if snapshot_every and comm.rank == 0:
        snapshots.append((time.perf_counter() - t0, steps, model_now()))
    grants = ctx.transport.wait(ctx.transport.call(ctx.hosts[0], host.grants)) if comm.rank == 0 else None
    under_torchrun = launch.from_env() is not None  # no driver to assemble slices: rank 0 pulls the model
    params = None
    if under_torchrun and comm.rank == 0:
        full = model_now()
        params = {"w": full[: width * K].reshape(width, K) if K > 1 else full[:width],
                  "b": full[width * K :] if K > 1 else np.asarray(full[width])}
    ctx.transport.close()
    slices = host.save_slices(launch.scratch_dir()) if not cfg.servers and not under_torchrun else {}
    ps_shared.release(folder)
    out = {"params": params, "n_iter": len(log.records), "steps": log.records, "snapshots": snapshots,
           "slices": slices,
           "ps": {"n_features": d, "keys": n_keys, "slicer": cfg.slicer, "shards": len(ctx.hosts), "classes": K,
                  "seed": cfg.random_state or 0, "width": width,
                  "active": _small(active) if comm.rank == 0 else None},  # the driver's model: rank 0's
           "report": {"rank": comm.rank, "role": "worker", "ps_steps": steps, "clock_log": clock_log,
                      "grants": grants, "keys_pulled": client.keys_pulled, "keys_pushed": client.keys_pushed,
                      "keys_elided": client.keys_elided,
                      "rpc_calls": ctx.transport.calls, "collectives": comm.stats.calls - calls,
                      "shared_shards": folder is not None,
                      "fit_seconds": time.perf_counter() - t0}}
    return out


def _learner(model, d: int, cfg, anneal=None, shift=None, classes: int = 1):
    from shardlearn.kernels.sgd import MODEL_LOSS
    from shardlearn.strategies.ps_online import Learner

    if model.name not in MODEL_LOSS:
        raise ConfigError(f"the per-example kernel has no loss for model {model.name!r}")
    fuse = cfg.plan == "asp" or (cfg.plan == "ssp" and cfg.staleness >= 1)
    return Learner(d, MODEL_LOSS[model.name], cfg.fit_intercept, cfg.optimizer, cfg.base_lr(), cfg.power_t,
                   cfg.alpha * cfg.l1_ratio, cfg.alpha * (1 - cfg.l1_ratio), fuse=fuse, workers=cfg.workers,
                   anneal=anneal, shift=shift, classes=classes)


def _epoch_logger(comm, log, n_rows: int):
    """``callback(epoch, loss, rows)`` logging every worker's rows per epoch, agreed once here:
    an allreduce at each epoch end would make asp/ssp workers wait for each other there."""
    total = int(comm.allreduce(np.array([float(n_rows)]))[0])
    return lambda epoch, loss, rows: log.step(epoch, loss, total)


def _small(active):
    """The active columns as the driver gets them: int32 (at most 2^23 of them; D2's 3.3 MB)."""
    return None if active is None else active.astype(np.int32)


def _pull_vector(client, n: int, chunk: int = 1 << 20) -> np.ndarray:
    """Keys ``0 .. n-1`` pulled in chunks."""
    full = np.empty(n)
    for lo in range(0, n, chunk):
        keys = np.arange(lo, min(lo + chunk, n), dtype=np.int64)
        vals = client.wait(client.pull(keys))
        full[lo : lo + keys.size] = vals[:, 0] if vals.ndim == 2 else vals  # kernel state: the weight slot
    return full


def assemble(results: list) -> dict:
    """The driver: the model ``{"w", "b"}`` from the slices every host wrote (files removed after)."""
    info = next(r["ps"] for r in results if r.get("ps"))
    d, n_keys, K = info["n_features"], info.get("keys", info["n_features"] + 1), info.get("classes", 1)
    slicer = make_slicer(info["slicer"], n_keys, info["shards"], info["seed"])
    dtypes = [np.load(p, mmap_mode="r").dtype for r in results for p in r.get("slices", {}).values()]
    full = np.zeros(n_keys, dtype=np.result_type(*dtypes))  # float32 shards: a float32 model (2^28 keys: 1 GiB)
    for r in results:
        for s, path in r.get("slices", {}).items():
            vals = np.load(path, mmap_mode="r")
            if slicer.kind == "range":
                lo = int(slicer.starts[int(s)])
                full[lo : lo + vals.shape[0]] = vals
            else:
                keys = slicer.keys_of(int(s))
                full[keys] = vals[slicer.route(keys)[1]]
            del vals
            os.unlink(path)
    if K > 1:  # a softmax: key i K + k, the K intercepts after
        w = columns_in_use.scatter(full[: d * K].reshape(d, K), info.get("active"), info.get("width", d))
        return {"w": w, "b": np.array(full[d * K : (d + 1) * K])}
    w = columns_in_use.scatter(full[:d], info.get("active"), info.get("width", d))  # keys: the active columns
    return {"w": w, "b": np.asarray(full[d])}


def train_hogwild(comm, model, X, y, sw, cfg, progress=None, report=None, owned: bool = False,
                  n_outputs: int = 1) -> dict:
    """Every worker of this machine updates one shared vector without locks (``hogwild``). ``owned``:
    as in ``train``; ``n_outputs``: a softmax's classes (per example only)."""
    if n_outputs != 1 and not cfg.per_example:
        raise ConfigError(f"strategy='hogwild' with {cfg._rule_words()} holds one weight per feature: binary or "
                          "regression models only (a softmax learns per example: optimizer='normalized', or "
                          "batch_size=1)")
    total, here = launch.ranks_here()
    if total > here:  # the vector is a file of this machine's /dev/shm: the other hosts' ranks cannot map it
        raise ConfigError(f"strategy='hogwild' shares one vector in one machine's memory, but this job spans hosts "
                          f"({total} ranks, {here} here): run it with torchrun --nnodes 1, or use asp or ssp across "
                          "hosts")
    width = X.shape[1]
    X, active = columns_in_use.narrow(X, comm, owned) if cfg.per_example else (X, None)  # a state row per column
    out = _hogwild(comm, model, X, y, sw, cfg, active, progress, report, n_outputs)
    if out["params"] is not None:
        out["params"]["w"] = columns_in_use.scatter(out["params"]["w"], active, width)
    return out


def _hogwild(comm, model, X, y, sw, cfg, active, progress=None, report=None, n_outputs=1) -> dict:
    """``train_hogwild`` on rows whose columns are ``active`` (or all of them, None)."""
    from shardlearn.runtime.progress import StepLog
    from shardlearn.strategies import hogwild

    d = X.shape[1]
    folder = ps_shared.seen_by_all(comm, True, "shardlearn-hogwild-")
    if folder is None:  # a rank of another machine, which no environment variable named
        raise ConfigError("strategy='hogwild' shares one vector in one machine's memory, but this job's ranks do not "
                          "all see rank 0's scratch folder (they span machines): use asp or ssp across hosts")
    if cfg.per_example:
        return _hogwild_per_example(comm, model, X, y, sw, cfg, folder, progress, report, active, n_outputs)
    alpha, l1r = cfg.alpha, cfg.l1_ratio
    scale = None
    if cfg.precondition:  # one machine: every worker computes the same scale from allreduced moments
        vec = comm.allreduce(np.concatenate(precond.presence_moments(X, sw)))
        scale = np.append(where_present(vec[:d], vec[d:], model.curvature, alpha * (1 - l1r)), 1.0)
    opts = dict(free=[d], scale=scale, schedule=cfg.schedule)
    if comm.rank == 0:
        hogwild.shared_shard(folder, d + 1, cfg.optimizer, cfg.base_lr(), alpha * l1r, alpha * (1 - l1r), create=True,
                             **opts)
    comm.barrier()
    shard = hogwild.shared_shard(folder, d + 1, cfg.optimizer, cfg.base_lr(), alpha * l1r, alpha * (1 - l1r), **opts)
    ps_shared.forget(comm, folder)  # every rank holds the maps: nothing left on disk if a rank dies
    client = hogwild.LocalClient(shard)
    log = StepLog(comm, total=cfg.max_iter, show=False, sink=progress)

    cb = _epoch_logger(comm, log, X.shape[0])

    t0 = time.perf_counter()
    steps, _ = ps_sgd.fit(model, X, y, sw, client=client, comm=comm, batch_size=cfg.batch_size, epochs=cfg.max_iter,
                          seed=cfg.random_state, shuffle=cfg.shuffle, staleness=None, callback=cb,
                          fit_intercept=cfg.fit_intercept, tol=cfg.tol)
    comm.barrier()
    params = None
    if comm.rank == 0:
        full = np.array(shard.weights(), dtype=np.float64)
        params = {"w": full[:d], "b": np.asarray(full[d])}
    del shard, client
    return {"params": params, "n_iter": len(log.records), "steps": log.records,
            "report": {"rank": comm.rank, "ps_steps": steps, "fit_seconds": time.perf_counter() - t0}}


def _hogwild_per_example(comm, model, X, y, sw, cfg, folder, progress, report=None, active=None,
                         n_outputs=1) -> dict:
    """Hogwild on the per-example kernel: every worker runs ``kernels.sgd`` over its rows on one
    state array (weights, adaptive sums, scales; 32 bytes a coordinate; a softmax's K a feature)
    mapped from ``folder``, without locks, so a row's update is seen by the others as soon as it
    is written."""
    from shardlearn.kernels import sgd as kernel
    from shardlearn.runtime.loop import checkpointer_for
    from shardlearn.runtime.progress import StepLog
    from shardlearn.strategies import hogwild, online

    d = X.shape[1]
    paths = {k: os.path.join(folder, f"{k}.npy") for k in ("ws", "counts")}
    if comm.rank == 0:
        shapes = {"ws": kernel.new_state(d, cfg.optimizer, n_outputs)["ws"], "counts": np.zeros((comm.size, 2))}
        for k, a in shapes.items():
            m = np.lib.format.open_memmap(paths[k], mode="w+", dtype=a.dtype, shape=a.shape)
            m[:] = a
            m.flush()
            del m
    comm.barrier()
    # the weights and adaptive sums shared; the clock and normalizer per worker (hogwild.Counters)
    state = {"ws": np.load(paths["ws"], mmap_mode="r+"), "scalars": np.zeros(2)}
    counters = hogwild.Counters(np.load(paths["counts"], mmap_mode="r+"), comm.rank)
    ps_shared.forget(comm, folder)  # every rank holds the maps: nothing left on disk if a rank dies
    log = StepLog(comm, total=cfg.max_iter, show=False, sink=progress)
    ckpt, resume = checkpointer_for(model, X, cfg, comm, log, report, active)
    t0 = time.perf_counter()
    anneal = online.anneal_span(comm, X, sw, cfg.max_iter, merged=True) if cfg.anneals(None) else {}
    res = online.fit(model, X, y, sw, theta0=model.init(d, n_outputs), rule=cfg.optimizer, lr=cfg.base_lr(),
                     power_t=cfg.power_t, alpha=cfg.alpha, l1_ratio=cfg.l1_ratio, anneal=anneal,
                     fit_intercept=cfg.fit_intercept, epochs=cfg.max_iter, shuffle=cfg.shuffle, seed=cfg.random_state,
                     tol=cfg.tol, comm=comm, opt_state=state, shared=counters, checkpoint=ckpt, resume=resume,
                     callback=lambda th, epoch, loss, examples: log.step(epoch, loss, examples))
    comm.barrier()
    params = None
    if comm.rank == 0:  # every worker is done writing: the lazy penalty brought up to date at the exact clock
        state["scalars"][:] = counters.total()
        w = np.array(kernel.finalize(state, rule=cfg.optimizer, lr=cfg.base_lr(), power_t=cfg.power_t,
                                     l1=cfg.alpha * cfg.l1_ratio, l2=cfg.alpha * (1 - cfg.l1_ratio),
                                     classes=n_outputs, **anneal), dtype=np.float64)
        params = online.params(w, d, n_outputs, state.get("held"))
    del state, counters
    return {"params": params, "n_iter": int(res.n_iter), "steps": log.records,
            "report": {"rank": comm.rank, "fit_seconds": time.perf_counter() - t0, "rows": int(X.shape[0])}}
