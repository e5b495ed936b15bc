"""Per-example SGD over the compiled kernel (``kernels.sgd``): one process; ``local_sgd``
over a collective (every worker learns from its own rows one example at a time and the
workers average their weights every ``sync_rows`` examples, weighted by the examples each
used: Zinkevich et al. 2010, "Parallelized stochastic gradient descent"; Stich 2019; on wide
sparse rows in memory only the coordinates some worker touched, ``strategies.sparse_average``,
and densely at each epoch's end); or
``bsp`` (``sync="changes"``): every worker learns from its next ``sync_rows`` rows from the
same state, then all merge every worker's change (``kernels.delta``: weights and adaptive
sums add), so the replicas stay identical and one worker is exactly the one-process pass; the
coordinates an exchange touches first take the lazy penalty up to its start, so its decay
counts once, not once per worker that touched them. Rows are visited in a seeded order per ``(seed, epoch, rank)``,
in chunks, so checkpoints, progress and averaging happen between chunks while no
Python runs per row. Features enter raw: the normalized rule makes their scales
irrelevant (there is no preconditioner to agree on).

>>> import numpy as np
>>> from shardlearn import models
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 3)) * [1.0, 1e4, 1e-3]; z = X @ [1.0, 2e-4, 500.0] - 0.5
>>> y = (rng.random(2000) < 1 / (1 + np.exp(-z))).astype(float)
>>> r = fit(models.get("logistic"), X, y, theta0=models.get("logistic").init(3), rule="normalized", lr=0.5,
...         epochs=3, seed=0)
>>> r.n_iter, bool(np.all(np.sign(r.theta["w"]) == [1, 1, 1]))
(3, True)
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from shardlearn.comm.compressed import Compressed
from shardlearn.core.errors import ConfigError
from shardlearn.kernels import columns, delta, sgd as kernel
from shardlearn.strategies import precond
from shardlearn.strategies.coded_average import CodedAverage
from shardlearn.strategies.coded_changes import Coded, apply, next_room, taken
from shardlearn.strategies.result import Result
from shardlearn.strategies.sparse_average import SparseAverage
from shardlearn.strategies.sgd import epoch_order

CHUNK_ROWS = 1 << 16  # rows per kernel call: checkpoints, progress and averaging happen between chunks


def fit(model, X, y, sample_weight=None, *, theta0, rule, lr, power_t=0.0, alpha=0.0, l1_ratio=0.0,
        fit_intercept=True, epochs=1, start_epoch=0, shuffle=True, seed=None, tol=None, n_iter_no_change=5,
        callback=None, comm=None, sync_rows=None, sync="average", opt_state=None, checkpoint=None, resume=None,
        shared=None, anneal=None) -> Result:
    """``epochs`` passes over ``(X, y)`` from epoch ``start_epoch``, one kernel update per row;
    stops early when the epoch's progressive loss improves by less than ``tol`` for
    ``n_iter_no_change`` epochs. ``callback(theta, epoch, progressive_loss, examples)`` after
    each epoch. ``opt_state`` (the kernel's state) continues a previous fit. ``shared``: every
    worker's ``opt_state["ws"]`` is the same memory (Hogwild) and ``shared`` its counters
    (``strategies.hogwild.Counters``, which learn in its place): nothing to average; the
    workers agree on each epoch's loss only. ``sync``: how workers combine every ``sync_rows`` rows:
    ``"average"`` their weights (local SGD) or ``"changes"`` merge their changes (bsp).
    ``anneal``: the linear schedule's ``end`` and ``span`` (``anneal_span``), or None."""
    if model.name not in kernel.MODEL_LOSS:
        raise ConfigError(f"the per-example kernel has no loss for model {model.name!r}; expected one of "
                          f"{', '.join(kernel.MODEL_LOSS)}")
    n, d = X.shape
    classes = _classes(theta0)
    opts = dict(rule=rule, lr=float(lr), power_t=float(power_t), l1=alpha * l1_ratio, l2=alpha * (1.0 - l1_ratio),
                classes=classes, **(anneal or {}))
    state = opt_state if opt_state is not None else _state_from(theta0, d, rule)
    distributed = comm is not None and comm.size > 1
    rank = comm.rank if distributed else 0
    changes = distributed and sync == "changes" and shared is None
    y = None if y is None else np.ascontiguousarray(y, dtype=np.float64)
    if not hasattr(X, "blocks"):  # once, not at every kernel call
        sample_weight = np.ones(n) if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    cur = {"epoch": start_epoch, "pos": 0, "loss": 0.0, "seen": 0.0, "best": np.inf, "stall": 0, "done": 0,
           "stopped": 0, "since_sync": 0.0}
    if resume is not None:
        if shared is not None:  # Hogwild: rank 0 puts the saved state back into the shared arrays before anyone learns
            if rank == 0:
                state["ws"][:] = resume["kernel/ws"]
                shared.restore(resume["kernel/scalars"])
            comm.barrier()
        else:
            state = {"ws": resume["kernel/ws"].copy(), "scalars": resume["kernel/scalars"].copy()}
        cur.update({k: resume[f"cursor/{k}"].item() for k in cur})
    if "shift" not in state:  # once per state: partial_fit's later calls keep the first one's (precond.centre)
        state["shift"] = precond.centre(X, sample_weight, fit_intercept, comm if shared is not None else None)
    shift = state["shift"] if state["shift"] is not None and state["shift"].shape == (d,) else None
    # Hogwild's one state holds its intercept centred (``kernels.sgd.run``'s ``held``), written back in ``params``
    held = state["held"] = shift if shared is not None else None
    # local SGD over a compressed collective: the agreed weights and units (strategies/coded_average.py)
    coded_avg = CodedAverage(comm, state, _averaged(rule), rule) if isinstance(comm, Compressed) and not changes \
        else None
    if coded_avg is not None and resume is not None:
        comm.restore(resume)
        coded_avg.restore(resume)
    # bsp over a compressed collective: changes through the codec, residuals per coordinate
    coded = Coded(comm.codec, state["ws"].shape[0] - 1, opts) if isinstance(comm, Compressed) and changes else None
    if coded is not None and resume is not None:
        coded.restore(resume)
    room = [1 << 62]  # the merges' allgather rows (``_merge_changes``): the agreed width at first
    merge = (lambda c, st, keys, before, width=None:  # noqa: E731
             coded.merge(c, st, keys, before, width, room) if coded is not None
             else _merge_changes(c, st, keys, before, opts, width, room))
    # local SGD on wide sparse rows in memory: the windows average what the workers touched (the epoch's last: all)
    solo = shared is None and not changes  # local SGD and average: each worker its own state, averaged
    sparse = (SparseAverage(comm, X, opts, _averaged(rule)) if distributed and sync_rows and solo and classes == 1
              and coded_avg is None and not hasattr(X, "blocks") and getattr(X, "format", None) == "csr" else None)
    chunk = CHUNK_ROWS if not distributed or not sync_rows else max(1, int(sync_rows))
    marks = np.zeros(X.shape[1], dtype=np.bool_) if changes and getattr(X, "format", None) == "csr" else None
    chunks, width = -(-n // chunk), None
    stream_sync = None
    if hasattr(X, "blocks"):  # streamed: combined every sync_rows rows, checkpointed at epoch ends only
        chunks = 1
        if changes:
            stream_sync = lambda st, window, used: merge(comm, st, *window)  # noqa: E731
        elif distributed and solo and sync_rows:
            stream_sync = lambda st, window, used: _average(comm, st, used, opts, coded_avg)  # noqa: E731
    elif distributed:  # every worker averages (checkpoints) at the same points: as many chunks as the largest shard
        chunks, width = (int(v) for v in comm.allreduce(np.array([float(chunks), _widest(X, chunk) * classes]),
                                                        op="max"))

    def save(step):
        if shared is not None:  # Hogwild: every worker stops writing the shared state before any saves it
            comm.barrier()
        extra = dict(comm.arrays(), **coded_avg.arrays()) if coded_avg is not None else {}
        extra.update(coded.arrays() if coded is not None else {})
        scalars = state["scalars"] if shared is None else shared.total()
        checkpoint.save(step, {"kernel/ws": state["ws"], "kernel/scalars": scalars, **extra,
                               **{f"cursor/{k}": np.array(v) for k, v in cur.items()}})

    loss_name = kernel.MODEL_LOSS[model.name]
    learn = kernel.run if shared is None else functools.partial(shared.run, held=held is not None)
    theta = None
    while cur["epoch"] < start_epoch + epochs and not cur["stopped"]:
        epoch = cur["epoch"]
        if hasattr(X, "blocks"):  # a streamed shard: its blocks in file order, rows shuffled within each
            _stream_epoch(X, state, cur, loss_name, fit_intercept, opts, [seed or 0, epoch, rank] if shuffle else None,
                          stream_sync, sync_rows, track=changes, learn=learn, shift=shift)
        else:
            order = epoch_order(n, epoch, seed, shuffle, rank)
            order = np.arange(n) if order is None else order
        while not hasattr(X, "blocks") and cur["pos"] < chunks:
            part = order[cur["pos"] * chunk : (cur["pos"] + 1) * chunk]
            before = _before(state, X, part, opts, marks) if changes else None
            out = learn(state, X, y, sample_weight, part, loss=loss_name, fit_intercept=fit_intercept, shift=shift,
                        **opts)
            keys = sparse.keys(part) if sparse is not None else None  # after: the rows are in the cache now
            if changes:
                merge(comm, state, *before, width)
            cur["loss"] += out[0]
            cur["seen"] += out[1]
            cur["since_sync"] += out[1]
            cur["pos"] += 1
            if distributed and sync_rows and solo:
                if keys is not None and cur["pos"] < chunks:
                    sparse(state, keys, cur["since_sync"], lambda st, used: _average(comm, st, used, opts))
                else:
                    _average(comm, state, cur["since_sync"], opts, coded_avg)
                cur["since_sync"] = 0.0
            if checkpoint is not None and cur["pos"] < chunks and checkpoint.due(epoch * chunks + cur["pos"]):
                save(epoch * chunks + cur["pos"])
        if distributed and solo and (stream_sync is None or coded_avg is not None):
            _average(comm, state, cur["since_sync"], opts, coded_avg, last=True)
            cur["since_sync"] = 0.0
        theta = _finalized(state, d, opts, held)
        loss, seen = cur["loss"], cur["seen"]
        if distributed:
            loss, seen = comm.allreduce(np.array([loss, seen]))
        mean = float(loss / seen) if seen > 0 else 0.0
        cur["done"] += 1
        if callback is not None:
            callback(theta, epoch + 1, mean, int(round(seen)))
        if tol is not None:
            cur["stall"] = cur["stall"] + 1 if mean > cur["best"] - tol else 0
            cur["best"] = min(cur["best"], mean)
            cur["stopped"] = int(cur["stall"] >= n_iter_no_change)
        cur.update(epoch=epoch + 1, pos=0, loss=0.0, seen=0.0)
        if checkpoint is not None and (cur["epoch"] >= start_epoch + epochs or cur["stopped"]
                                       or checkpoint.due(cur["epoch"] * chunks)):
            save(cur["epoch"] * chunks)
    theta = _finalized(state, d, opts, held) if theta is None else theta
    return Result(theta, cur["done"], bool(cur["stopped"]), float("nan"), state)


def anneal_span(comm, X, sample_weight, epochs: int, merged: bool) -> dict:
    """The linear schedule (``kernels.sgd.run``'s ``end`` and ``span``) of a fit of ``epochs``
    passes from a fresh state: the rate falls from ``lr`` to 0 as the clock, the weight of the
    rows a state has seen, goes from 0 to ``epochs`` times an epoch's weight. ``merged``: the
    clock counts every worker's rows (bsp's merged changes, Hogwild's one state, the parameter
    server's); else a worker's own (local SGD averages weights, each keeps its clock). Every
    worker calls it when ``merged`` (one allreduce).

    >>> import numpy as np
    >>> anneal_span(None, np.zeros((10, 2)), np.full(10, 0.5), 2, merged=False)
    {'end': 10.0, 'span': 10.0}
    """
    weight = float(X.shape[0]) if sample_weight is None else float(np.sum(sample_weight))
    if merged and comm is not None and comm.size > 1:
        weight = float(comm.allreduce(np.array([weight]))[0])
    return {"end": weight * epochs, "span": weight * epochs}


def _stream_epoch(stream, state, cur, loss_name, fit_intercept, opts, seed, sync=None, rows=None,
                  track=False, learn=kernel.run, shift=None) -> None:
    """One pass over a streamed shard (``data.stream.Stream``), block by block. With ``sync``
    the workers combine every ``rows`` rows, counted across blocks as the in-memory loop counts
    them: ``sync(state, before, used)`` (``before``: with ``track``, the touched keys' rows
    when the window opened) returns the weight all workers used in the window, and a worker
    whose stream has ended keeps taking part until a window where nobody learned."""
    window, since = None, 0
    for b, (Xb, yb) in enumerate(stream.blocks()):
        n = Xb.shape[0]
        order = np.arange(n) if seed is None else np.random.default_rng(seed + [b]).permutation(n)
        yb = np.asarray(yb, dtype=np.float64)
        pos = 0
        while pos < n:
            take = n - pos if sync is None else min(n - pos, rows - since)
            part = order[pos : pos + take]
            pos += take
            if track:
                window = _widen(window, state, Xb, part, opts)
            out = learn(state, Xb, yb, None, part, loss=loss_name, fit_intercept=fit_intercept,
                        shift=None if sp.issparse(Xb) else shift, **opts)
            cur["loss"] += out[0]
            cur["seen"] += out[1]
            cur["since_sync"] += out[1]
            since += take
            if sync is not None and since >= rows:
                sync(state, window, cur["since_sync"])
                window, since, cur["since_sync"] = None, 0, 0.0
    while sync is not None:  # the rest of this window, then empty ones until every worker is done
        used = sync(state, window if window is not None else _before(state, stream, [], opts), cur["since_sync"])
        window, cur["since_sync"] = None, 0.0
        if used <= 0:
            break
    cur["pos"] = 1


def _widen(window, state, X, part, opts):
    """The open window's ``(keys, (rows, scalars))`` widened to the coordinates rows ``part`` of
    ``X`` touch: a key not yet in it has not moved since the window opened, and is brought up
    to date at the window's start clock as ``_before`` does."""
    if window is None:
        return _before(state, X, part, opts)
    new = np.setdiff1d(coordinates(_keys(X, part), opts.get("classes", 1)), window[0], assume_unique=True)
    delta.start({"ws": state["ws"], "scalars": window[1][1]}, new, opts)
    return np.concatenate([window[0], new]), (np.concatenate([window[1][0], state["ws"][new]]), window[1][1])


def _widest(X, rows: int) -> int:
    """The most coordinates ``rows`` rows of ``X`` can touch (the intercept included): bsp's
    allgather width, agreed once so that each merge is one collective."""
    import scipy.sparse as sp

    if sp.issparse(X) and X.shape[0]:
        return min(X.shape[1], rows * int(np.diff(X.indptr).max())) + 1
    return X.shape[1] + 1


def _keys(X, part, seen=None) -> np.ndarray:
    """The coordinates rows ``part`` of ``X`` touch (sorted), and the intercept (last). ``seen``
    (CSR rows): a scratch of ``X.shape[1]`` booleans, all False (``columns.touched``: a compiled pass over
    the rows' stored columns; per-example bsp on D2 spent a fifth of its epoch here with
    ``np.unique(X[part].indices)``, which copies the rows and sorts every stored column)."""
    import scipy.sparse as sp

    d = X.shape[1]
    if not len(part):
        return np.zeros(0, dtype=np.int64)
    if sp.issparse(X):
        if seen is not None and X.format == "csr":
            return np.append(columns.touched(X, np.asarray(part), seen), d)
        return np.append(np.unique(X[part].indices), d).astype(np.int64)
    return np.arange(d + 1, dtype=np.int64)


def coordinates(keys: np.ndarray, classes: int) -> np.ndarray:
    """The state rows of columns ``keys`` (the intercept's key ``d`` too) in a softmax's layout
    over ``classes`` (``kernels.sgd.new_state``: column i's K rows from ``i K``), sorted.

    >>> coordinates(np.array([0, 2, 3]), 2).tolist()
    [0, 1, 4, 5, 6, 7]
    """
    if classes == 1:
        return keys
    return (keys[:, None] * classes + np.arange(classes)).ravel()


def _before(state, X, part, opts, seen=None) -> tuple:
    """``(keys, (their state rows, scalars))`` before the kernel learns from rows ``part`` of
    ``X``: the coordinates those rows touch (and the intercept, last), first brought up to
    date with the penalty at this clock (the exchange's start), so that a worker's change is
    its own rows' work only and the merge (``coded_changes.apply``) takes the decay of the rows
    before the exchange once, however many workers touched the key. ``seen``: as in ``_keys``."""
    keys = coordinates(_keys(X, part, seen), opts.get("classes", 1))
    delta.start(state, keys, opts)
    return keys, (state["ws"][keys], state["scalars"].copy())


def _merge_changes(comm, state, keys, before, opts, width=None, room=None) -> int:
    """Every worker's change since ``before`` merged into ``state``, in rank order (so every
    replica computes the same sums): the touched rows travel, not the model, in one
    allgather of ``width`` rows (None: the widest change, agreed by one allreduce first).
    ``room``: a one-item list, the rows the allgather carries instead, kept a quarter above
    the widest change of the last merge (every worker sets it from the same sizes); a change
    wider than it sends the rest in a second allgather. ``width``, agreed once from the rows'
    most stored columns, is what a merge's rows could touch, not what they do: 256 of D2's rows
    (26 columns each) key 6,657 rows and touch ~2,700. Returns the widest change over all
    workers (0: nobody learned from a row)."""
    ch, dscal, width = taken(comm, state, keys, before, opts["rule"], width)
    if width == 0:
        return 0
    k, cap = keys.size, width if room is None else min(room[0], width)
    m = min(k, cap)
    buf = np.zeros((cap + 1, 5))
    buf[0, :3] = [k, dscal[0], dscal[1]]
    buf[1 : m + 1, 0] = keys[:m]
    buf[1 : m + 1, 1:] = ch[:m]
    parts = comm.allgather(buf)
    sizes = [int(p[0, 0]) for p in parts]
    got = [p[1 : min(n, cap) + 1] for p, n in zip(parts, sizes)]
    if max(sizes) > cap:  # the rest of the wider changes
        rest = np.zeros((max(sizes) - cap, 5))
        rest[: k - m, 0] = keys[m:]
        rest[: k - m, 1:] = ch[m:]
        got = [np.vstack([g, r[: n - cap]]) if n > cap else g for g, r, n in zip(got, comm.allgather(rest), sizes)]
    if room is not None:
        room[0] = next_room(sizes)
    return apply(state, [(g[:, 0].astype(np.int64), g[:, 1:], p[0, 1:3]) for g, p in zip(got, parts)], opts)


def _classes(theta0) -> int:
    """The classes of a softmax's parameters (``w`` of shape ``(d, K)``), else 1."""
    w = np.asarray(theta0["w"])
    return int(w.shape[1]) if w.ndim == 2 else 1


def _state_from(theta0, d, rule) -> dict:
    k = _classes(theta0)
    state = kernel.new_state(d, rule, k)
    w = kernel.weights(state)
    w[: d * k] = np.asarray(theta0["w"], dtype=np.float64).ravel()
    b = np.asarray(theta0["b"], dtype=np.float64).ravel()
    w[d * k :] = b[:k] if b.size else 0.0
    return state


def _finalized(state, d, opts, held=None) -> dict:
    """The weights with the lazy penalty brought up to date, apart: the state itself
    keeps its clocks, so where an epoch ends changes nothing (``partial_fit`` twice is
    ``max_iter=2``; the parameter-server shards, which finalize once, compute the same)."""
    return params(kernel.finalized(state, **opts), d, opts.get("classes", 1), held)


def params(w: np.ndarray, d: int, classes: int = 1, held=None) -> dict:
    """The model's ``{"w", "b"}`` from the kernel's weights ``w`` (``kernels.sgd.weights``) of
    ``d`` features: ``(d,)`` and a scalar, or a softmax's ``(d, K)`` and ``(K,)``. ``held``: the
    shift of a state that holds its intercepts centred (``kernels.sgd.run``), taken back here.

    >>> params(np.arange(6.0), 2, 2)["w"].tolist(), params(np.arange(3.0), 2)["b"].item()
    ([[0.0, 1.0], [2.0, 3.0]], 2.0)
    >>> params(np.arange(3.0), 2, held=np.array([0.5, 1.0]))["b"].item()   # 2 - (0.5 * 0 + 1 * 1)
    1.0
    """
    if classes > 1:
        coef = w[: d * classes].reshape(d, classes)
        b = w[d * classes :]
    else:
        coef, b = w[:d], np.asarray(w[d])
    return {"w": coef, "b": b if held is None else b - held @ coef}


def _averaged(rule: str) -> list:
    """The state columns the workers average: the weights (FTRL's follow from z: z too)."""
    return [kernel.W, kernel.S] if rule == "ftrl" else [kernel.W]


def _average(comm, state, used: float, opts, coded=None, last: bool = False) -> float:
    """Every worker's weights averaged, weighted by the examples each used since the last
    average (each keeps its own adaptive sums, as Vowpal Wabbit's allreduce does); returns the
    weight all used (0: nobody learned since, nothing changes). Over a compressed collective
    ``coded`` (a ``CodedAverage``) sends the changes since the last average through the codec
    (``last``: the epoch's last average)."""
    kernel.finalize(state, **opts)  # the penalty up to now, on every coordinate, before averaging
    if coded is not None:
        return coded(state, used, last)
    total = float(comm.allreduce(np.array([used]))[0])
    if total <= 0:
        return 0.0
    share = used / total
    ws, cols = state["ws"], _averaged(opts["rule"])
    for c in cols:
        ws[:, c] = comm.allreduce(ws[:, c] * share)
    return total
