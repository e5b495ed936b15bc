"""Dask: ``shardlearn.dask.fit(estimator, X, y, client=...)`` trains shardlearn's estimator
with its workers inside a Dask cluster. Each rank is a task pinned to its own Dask worker
process, fed the row partitions (chunks) Dask already holds, moved worker to worker, never
through the driver; the ranks join one gloo group through a store this driver hosts and
run the same worker entry point as the local group (``runtime.engines.run_rank`` ->
``runtime.job.fit_rows``). ``pip install 'shardlearn[dask]'`` brings dask and distributed.

Asking for more ranks than the cluster has worker processes is a one-line error at once;
a rank that cannot start (its worker busy or gone) ends the fit within ``timeout_s`` with
the error, never a hang. Each rank's BLAS, OpenMP, numba and torch pools are pinned to its
worker's thread count.

    from distributed import Client, LocalCluster
    import dask.array as da, shardlearn, shardlearn.dask

    client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    X = da.random.random((100_000, 20), chunks=(25_000, 20)); y = (X[:, 0] > 0.5).astype(int)
    clf = shardlearn.dask.fit(shardlearn.LogisticRegression(alpha=1e-4), X, y, client=client)
"""
from __future__ import annotations

import numpy as np

from shardlearn.core.errors import ConfigError


def _modules():
    try:
        import dask.array as da
        import distributed
    except ImportError:
        raise ConfigError("shardlearn.dask needs dask and distributed: pip install 'shardlearn[dask]'") from None
    return da, distributed


def fit(estimator, X, y=None, *, client=None, sample_weight=None, label=None, num_workers=None,
        timeout_s: float = 60.0):
    """Fit ``estimator`` (shardlearn's LinearRegression, LogisticRegression or LinearSVC) on
    a dask array ``X`` with ``y`` (a dask array or series), or a dask dataframe with the
    label column ``label``; ``num_workers`` ranks (default: one per Dask worker, at most one
    per partition). Returns the fitted estimator."""
    da, distributed = _modules()
    client = client if client is not None else _default_client(distributed)
    X, y, sw = _arrays(da, X, y, sample_weight, label)
    workers = sorted(client.scheduler_info()["workers"].items())
    parts = list(X.to_delayed().ravel())
    n = num_workers if num_workers is not None else min(len(workers), len(parts))
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ConfigError(f"num_workers must be a whole number >= 1, got {num_workers!r}")
    if n > len(workers):
        raise ConfigError(f"dask: {n} ranks asked, but the cluster has {len(workers)} worker processes (each rank "
                          "needs its own); start more workers or ask for fewer")
    if n > len(parts):
        raise ConfigError(f"dask: {n} ranks asked, but X has {len(parts)} row partitions; rechunk X or ask for fewer")
    from shardlearn.runtime.engines import fit_result, settings

    classes = np.sort(da.unique(y).compute()) if _is_classifier(estimator) else None  # the distinct labels only
    job = settings(estimator, classes, n)
    return estimator.adopt(fit_result(_run(client, distributed, workers[:n], parts, y, sw, job, timeout_s), job,
                                      X.shape[1]))


def _default_client(distributed):
    try:
        return distributed.get_client()
    except ValueError:
        raise ConfigError("shardlearn.dask.fit needs a Dask client: pass client=, or create one first") from None


def _is_classifier(estimator) -> bool:
    from sklearn.base import is_classifier

    return is_classifier(estimator)


def _arrays(da, X, y, sample_weight, label):
    """Dask arrays with rows in chunks and all columns in each chunk; y and weights chunked alike."""
    if hasattr(X, "columns"):  # a dask dataframe
        if label is None and y is None:
            raise ConfigError("a dask dataframe needs label= (the label column) or y=")
        if label is not None:
            if label not in X.columns:
                raise ConfigError(f"label column {label!r} is not in the dataframe (columns: {', '.join(X.columns)})")
            y, X = X[label], X.drop(columns=[label])
        X = X.to_dask_array(lengths=True)
    if y is None:
        raise ConfigError("fit needs y (a dask array or series), or a dataframe with label=")
    if hasattr(y, "to_dask_array"):
        y = y.to_dask_array(lengths=True)
    X = da.asarray(X)
    if X.ndim != 2:
        raise ConfigError(f"X must be 2-d rows x features, got {X.ndim}-d")
    X = X.rechunk({1: -1})
    y = da.asarray(y).rechunk((X.chunks[0],))
    if y.shape[0] != X.shape[0]:
        raise ConfigError(f"y has {y.shape[0]} rows; X has {X.shape[0]}")
    sw = None if sample_weight is None else da.asarray(sample_weight).rechunk((X.chunks[0],))
    return X, y, sw


def _run(client, distributed, workers, parts, y, sw, job, timeout_s) -> list:
    """Every rank's job output, in rank order."""
    from shardlearn.runtime import launch
    from shardlearn.runtime.engines import driver_address

    n = len(workers)
    addr = driver_address(client.scheduler.address)
    port = launch.free_port(addr)
    store = launch.host_store(addr, port, n, timeout_s)  # alive until the ranks are done (deleted below)
    ys, ws = list(y.to_delayed().ravel()), None if sw is None else list(sw.to_delayed().ravel())
    X_futures, y_futures = client.compute(parts), client.compute(ys)
    w_futures = None if ws is None else client.compute(ws)
    # every partition materialised first: a rank blocked at the rendezvous holds its worker's thread, so
    # a partition still to be computed on that worker would wait for it forever (until the timeout)
    distributed.wait(X_futures + y_futures + (w_futures or []))
    futures = []
    for r, (address, info) in enumerate(workers):
        mine = slice(r, None, n)
        futures.append(client.submit(
            _rank, r, n, addr, port, f"shardlearn/dask-{port}/", int(info.get("nthreads", 1)), timeout_s, job,
            X_futures[mine], y_futures[mine], None if w_futures is None else w_futures[mine], workers=[address],
            allow_other_workers=False, pure=False))
    try:
        results = client.gather(futures)
    except Exception as e:  # noqa: BLE001 - a rendezvous timeout becomes one line; our own errors pass as raised
        if type(e).__name__ in ("DistStoreError", "DistNetworkError") or "timeout" in str(e).lower():
            from shardlearn.runtime.group import WorkerError

            client.cancel(futures)
            raise WorkerError(f"dask: the {n} ranks did not all start within {timeout_s:.0f} s (a worker busy with "
                              "other tasks, or gone); free the workers, ask for fewer ranks or a longer timeout_s") \
                from None
        raise
    finally:
        del store
    return results


def _rank(rank, size, addr, port, prefix, threads, timeout_s, job, xs, ys, ws):
    """One rank, inside a Dask worker: its partitions stacked, then the shared entry point."""
    import scipy.sparse as sp

    from shardlearn.runtime.engines import run_rank

    X = sp.vstack(xs, format="csr") if sp.issparse(xs[0]) else np.concatenate([np.asarray(x) for x in xs])
    y = np.concatenate([np.asarray(v) for v in ys])
    w = None if ws is None else np.concatenate([np.asarray(v, dtype=np.float64) for v in ws])
    return run_rank(rank, size, addr, port, prefix, "fit_rows", threads=threads, timeout_s=timeout_s, X=X, y=y,
                    sample_weight=w, **job)
