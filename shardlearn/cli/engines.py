"""``shardlearn train ... --launcher ray|dask``: the file is read by this driver (every kept
row, with the same options as a local fit) and the fit runs as ``--workers`` ranks on the
engine: a Ray cluster (``RAY_ADDRESS``, else a local Ray) through ``shardlearn.ray.fit``,
or a Dask cluster (``DASK_SCHEDULER_ADDRESS``, else a local cluster of ``--workers``
processes) through ``shardlearn.dask.fit``. The model is saved as a local fit's is.
"""
from __future__ import annotations

import json
import os

from shardlearn.cli.tasks import NOT_FOR_TASKS
from shardlearn.core.errors import ConfigError


def train(args, source: dict, save, est) -> None:
    from shardlearn.data import open as open_source

    for name in ("checkpoint_dir", "resume", "stream"):
        if getattr(args, name, None):
            raise ConfigError(f"{NOT_FOR_TASKS[name]} does not apply with --launcher {args.launcher}")
    src = open_source(**source)
    X, y = src.read()
    if args.positive_label is not None:
        from shardlearn.data.labels import map_positive

        y = map_positive(y, args.positive_label)
    n = args.workers
    if args.launcher == "ray":
        import shardlearn.ray as sray

        ray = sray._ray()
        if not ray.is_initialized():
            ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
        sray.fit(est, X, y, num_workers=n)
    else:
        import shardlearn.dask as sdask

        da, distributed = sdask._modules()
        address = os.environ.get("DASK_SCHEDULER_ADDRESS")
        cluster = None if address else distributed.LocalCluster(n_workers=n, threads_per_worker=1,
                                                                 dashboard_address=None)
        with distributed.Client(address or cluster) as client:
            rows = max(1, -(-X.shape[0] // n))
            sdask.fit(est, da.from_array(X, chunks=(rows, X.shape[1])), da.from_array(y, chunks=rows), client=client,
                      num_workers=n)
        if cluster is not None:
            cluster.close()
    enc = getattr(src, "encoder", None)
    save(args, est, {"label": getattr(src, "label", source.get("label")), "zero_based": getattr(src, "zero_based", None),
                     "encoder": enc.to_json() if enc is not None else None, "delimiter": source["delimiter"]})
    reports = est.fit_result_.reports
    print(json.dumps({"model_dir": args.out, "launcher": args.launcher, "workers": len(reports),
                      "rows": int(X.shape[0]), "rows_per_worker": [r.get("rows") for r in reports],
                      "features": int(X.shape[1]), "skipped": dict(src.skipped), "n_iter": est.n_iter_}))
