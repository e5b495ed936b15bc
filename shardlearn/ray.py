"""Ray: ``shardlearn.ray.fit(estimator, X, y, num_workers=N)`` trains shardlearn's estimator
with its ranks as Ray actors (one CPU each), on arrays or a ``ray.data`` Dataset. Each actor
gets its part of the rows from Ray's object store (a Dataset is split among the actors and
read where it lives, never through the driver), joins one gloo group through a store this
driver hosts, and runs the same worker entry point as the local group
(``runtime.engines.run_rank`` -> ``runtime.job.fit_rows``). ``pip install 'shardlearn[ray]'``.

More ranks than the cluster's CPUs is a one-line error at once; an actor that dies mid-fit
(killed, its node lost) ends the fit with one line naming the rank as soon as Ray reports
it, and the other actors are ended; a rank that cannot start ends it within ``timeout_s``.

    import ray, shardlearn, shardlearn.ray

    ray.init(num_cpus=2)
    clf = shardlearn.ray.fit(shardlearn.LogisticRegression(alpha=1e-4), X, y, num_workers=2)
    clf = shardlearn.ray.fit(shardlearn.LinearRegression(), ray.data.read_parquet(path), label="price")
"""
from __future__ import annotations

import numpy as np

from shardlearn.core.errors import ConfigError


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("shardlearn.ray needs ray: pip install 'shardlearn[ray]'") from None
    return ray


class _RankActor:
    """One rank (made a Ray actor in ``fit``): stacks its rows and runs the shared entry point."""

    def run(self, rank, size, addr, port, prefix, timeout_s, job, part):
        from shardlearn.runtime.engines import run_rank

        X, y, w = _rows(part)
        return run_rank(rank, size, addr, port, prefix, "fit_rows", threads=1, timeout_s=timeout_s, X=X, y=y,
                        sample_weight=w, **job)

    def pid(self):
        import os

        return os.getpid()


def _rows(part):
    """``(X, y, weights)`` of a part: arrays, or a ``ray.data`` shard read in numpy batches."""
    if isinstance(part, tuple):
        return part
    shard, label, weight = part["shard"], part["label"], part["weight"]
    xs, ys, ws = [], [], []
    for batch in shard.iter_batches(batch_format="numpy", batch_size=65536):
        ys.append(np.asarray(batch.pop(label)))
        if weight is not None:
            ws.append(np.asarray(batch.pop(weight), dtype=np.float64))
        xs.append(np.column_stack([np.asarray(batch[c], dtype=np.float64) for c in sorted(batch)]))
    if not xs:
        raise ConfigError("ray: a rank's shard of the dataset is empty; ask for fewer ranks")
    return np.vstack(xs), np.concatenate(ys), np.concatenate(ws) if ws else None


def fit(estimator, X, y=None, *, num_workers: int = 2, sample_weight=None, label=None, weight=None,
        timeout_s: float = 60.0):
    """Fit ``estimator`` (shardlearn's LinearRegression, LogisticRegression or LinearSVC) on
    ``num_workers`` Ray actors: ``X``, ``y`` (and ``sample_weight``) as arrays, or ``X`` a
    ``ray.data`` Dataset with its ``label`` column (and ``weight`` column; the features are
    the other columns, in name order). Returns the fitted estimator."""
    ray = _ray()
    if not (isinstance(num_workers, (int, np.integer)) and num_workers >= 1):
        raise ConfigError(f"num_workers must be a whole number >= 1, got {num_workers!r}")
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if num_workers > cpus:
        raise ConfigError(f"ray: {num_workers} ranks asked, but the cluster has {cpus} CPUs (each rank takes one); "
                          "add nodes or ask for fewer")
    parts, labels, n_features = _parts(ray, X, y, sample_weight, label, weight, num_workers)
    from sklearn.base import is_classifier

    from shardlearn.runtime.engines import fit_result, settings

    job = settings(estimator, np.unique(labels) if is_classifier(estimator) else None, num_workers)
    return estimator.adopt(fit_result(_run(ray, parts, job, timeout_s), job, n_features))


def _parts(ray, X, y, sample_weight, label, weight, n):
    """Each rank's part (object refs of row blocks, or a dataset shard), every label, the width."""
    if hasattr(X, "iter_batches") and hasattr(X, "split"):  # a ray.data Dataset
        if label is None or label not in X.columns():
            raise ConfigError(f"a ray.data Dataset needs label= naming one of its columns ({', '.join(X.columns())})")
        # read into the object store first: the actors hold every CPU they ask for, so a read task
        # scheduled after they start could wait for a CPU until the rendezvous times out
        X = X.materialize()
        rows = X.count()
        shards = X.split_at_indices([rows * k // n for k in range(1, n)])  # every row once, rank sizes within one
        features = [c for c in X.columns() if c not in (label, weight)]
        labels = np.asarray(X.unique(label))
        return [{"shard": s, "label": label, "weight": weight} for s in shards], labels, len(features)
    if y is None:
        raise ConfigError("fit needs y (an array), or a ray.data Dataset with label=")
    X, y = np.asarray(X) if not hasattr(X, "tocsr") else X.tocsr(), np.asarray(y)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ConfigError(f"X must be 2-d with one row per label: X {X.shape}, y {y.shape}")
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    bounds = np.linspace(0, X.shape[0], n + 1).astype(int)
    parts = [ray.put((X[a:b], y[a:b], None if sw is None else sw[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
    return parts, y, int(X.shape[1])


def _run(ray, parts, job, timeout_s) -> list:
    """Every rank's job output, in rank order."""
    from shardlearn.runtime import launch
    from shardlearn.runtime.group import WorkerError

    n = len(parts)
    addr = ray.util.get_node_ip_address()
    port = launch.free_port(addr)
    store = launch.host_store(addr, port, n, timeout_s)  # alive until the ranks are done (deleted below)
    Actor = ray.remote(num_cpus=1, max_restarts=0)(_RankActor)
    actors = [Actor.remote() for _ in range(n)]
    refs = [a.run.remote(r, n, addr, port, f"shardlearn/ray-{port}/", timeout_s, job, parts[r])
            for r, a in enumerate(actors)]
    rank_of = {ref: r for r, ref in enumerate(refs)}
    results, pending = {}, list(refs)
    try:
        while pending:  # the first failure ends the fit at once: the others may wait on a dead peer
            ready, pending = ray.wait(pending, num_returns=1)
            r = rank_of[ready[0]]
            try:
                results[r] = ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                raise WorkerError(f"ray: rank {r}'s actor died ({type(e).__name__}); the fit stopped and its other "
                                  "actors were ended", died=True, rank=r) from None
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                if type(cause).__name__ in ("DistStoreError", "DistNetworkError"):
                    raise WorkerError(f"ray: the {n} ranks did not all start within {timeout_s:.0f} s (the cluster "
                                      "busy, or an actor lost); ask for fewer ranks or a longer timeout_s") from None
                raise cause from None
    finally:
        for a in actors:
            ray.kill(a)
        del store
    return [results[r] for r in range(n)]
