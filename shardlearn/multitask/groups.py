"""One independent model per group (per store, per user, per sensor): ``fit_per_group``
fits the estimator's model on each group's rows, groups spread across local worker
processes by a hash of the group value; each worker fits all its groups at once
(``multitask/batched.py``) or, for settings the batch does not cover (L1, hinge, sparse
rows), one clone of the estimator per group. The result is one ``GroupedModel``: saved as
one model directory, its ``predict(X, groups=g)`` routes each row to its group's model; a
group never seen in training is an error, or goes to a ``fallback`` model.

>>> import numpy as np
>>> from shardlearn import LinearRegression
>>> X = np.array([[0.0], [1.0], [2.0], [0.0], [1.0], [2.0]]); g = np.array(["a"] * 3 + ["b"] * 3)
>>> y = np.array([1.0, 3.0, 5.0, 0.0, -1.0, -2.0])
>>> m = fit_per_group(LinearRegression(), X, y, groups=g)
>>> m.predict(np.array([[3.0], [3.0]]), groups=np.array(["a", "b"])).round(6).tolist()
[7.0, -3.0]
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone

from shardlearn.core import modelfile
from shardlearn.core.errors import ConfigError, DataError
from shardlearn.data.partition import key_hashes
from shardlearn.multitask import batched

BATCHED = {"LinearRegression": batched.ridge, "LogisticRegression": batched.logistic}


def owners(group_values, workers: int) -> np.ndarray:
    """The worker of each group: murmurhash3 of the group value's text modulo ``workers``."""
    return key_hashes(group_values) % workers


def fit_groups(kind: str, cfg: dict, X, y, sample_weight, index, n_groups: int) -> dict:
    """Fit one model per group on this process's rows. ``index``: each row's group in
    ``0..n_groups-1``; ``y``: numbers (classifiers: 0/1); ``cfg``: the estimator's
    ``TrainConfig`` (as a dict) and its model's name (``template``). Returns ``coef``
    ``(G, d)``, ``intercept`` ``(G,)`` and ``single`` ``(G,)``: the one class a group's rows
    hold (classifiers; the group's model then predicts it), else -1."""
    if sp.issparse(X) and kind in BATCHED and X.shape[1] <= 512:  # narrow sparse rows: dense for the batch
        X = X.toarray()
    order = np.argsort(index, kind="stable")
    starts = np.searchsorted(index[order], np.arange(n_groups + 1))
    X = X[order]
    y = np.asarray(y, dtype=np.float64)[order]
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[order]
    d = X.shape[1]
    single = np.full(n_groups, -1, dtype=np.int8)
    if kind != "LinearRegression" and n_groups:
        lo, hi = np.minimum.reduceat(y, starts[:-1]), np.maximum.reduceat(y, starts[:-1])
        single = np.where(lo == hi, lo, -1).astype(np.int8)
    fit = BATCHED.get(kind) if cfg["l1_ratio"] == 0 and not sp.issparse(X) else None
    theta = np.zeros((n_groups, d + 1))
    two = np.flatnonzero(single < 0)
    if fit is not None:  # the groups that need fitting, as one batch of contiguous row blocks
        rows = np.flatnonzero(np.repeat(single < 0, np.diff(starts)))
        sub = np.r_[0, np.cumsum(np.diff(starts)[two])]
        p = batched.within_group_weights(None if sw is None else sw[rows], sub)
        theta[two] = fit(np.ascontiguousarray(X[rows], dtype=np.float64), y[rows], sub, p, alpha=cfg["alpha"],
                         fit_intercept=cfg["fit_intercept"])
    else:
        theta[two] = [_one(cfg, X[starts[g]:starts[g + 1]], y[starts[g]:starts[g + 1]],
                           None if sw is None else sw[starts[g]:starts[g + 1]]) for g in two]
    return {"coef": theta[:, :d], "intercept": theta[:, d], "single": single}


def _one(cfg, X, y, sw):
    """One group fitted in this process by the estimator's own training (``runtime.train``)."""
    from shardlearn import models
    from shardlearn.runtime.config import TrainConfig
    from shardlearn.runtime.train import train

    settings = {k: v for k, v in cfg.items() if k != "model"}
    params = train(models.get(cfg["model"]), X, y, sw, TrainConfig(**settings)).params
    return np.r_[params["w"], params["b"]]


MODELS = {"LinearRegression": "linear", "LogisticRegression": "logistic"}  # LinearSVC: its loss


def template(estimator) -> tuple[str, dict, dict]:
    """``(kind, training settings, hyper-parameters)`` of one of shardlearn's linear estimators:
    the settings are its ``TrainConfig`` for one process with the model's name."""
    import dataclasses

    kind = type(estimator).__name__
    if kind not in ("LinearRegression", "LogisticRegression", "LinearSVC") or not hasattr(estimator, "train_config"):
        raise ConfigError(f"fit_per_group fits shardlearn's LinearRegression, LogisticRegression, LinearSVC; "
                          f"got {kind}")
    cfg = dataclasses.asdict(dataclasses.replace(estimator.train_config(), workers=1, checkpoint_dir=None,
                                                 checkpoint_every=None, max_restarts=0))
    cfg["model"] = MODELS.get(kind) or estimator.loss
    return kind, cfg, modelfile.jsonable_params(estimator.get_params())


def fit_job(comm, *, progress=None, cfg=None, spill, owner, kind, settings) -> dict:
    """The worker job on the local group: this worker's groups (``owner == rank``) from the
    spilled arrays, fitted; its part of the grouped model goes back to the driver."""
    from shardlearn.runtime.spill import open_extra, open_spec

    X, y, sw = open_spec(spill)
    index = np.asarray(open_extra(spill, "groups"))
    owner = np.asarray(owner)
    mine = np.flatnonzero(owner == comm.rank)
    rows = np.flatnonzero(owner[index] == comm.rank)
    X = X[rows]
    part = fit_groups(kind, settings, X, np.asarray(y[rows]), None if sw is None else np.asarray(sw[rows]),
                      np.searchsorted(mine, index[rows]), mine.size)
    return {"params": {}, "n_iter": 1, "steps": [], "report": {"rank": comm.rank, "rows": int(rows.size),
                                                                "groups": int(mine.size)},
            "part": dict(part, groups=mine)}


def fit_per_group(estimator, X, y, groups, *, sample_weight=None, workers: int = 1, fallback=None):
    """One model like ``estimator`` (shardlearn's ``LinearRegression``, ``LogisticRegression``
    (binary) or ``LinearSVC``) per value of ``groups``, on ``workers`` local processes (groups by
    hash). ``fallback``: None (unknown groups are an error), ``"pooled"`` (``estimator`` also
    fitted on every row answers them) or a fitted estimator. Returns a ``GroupedModel``."""
    from shardlearn.multitask.grouped import GroupedModel
    from shardlearn.multitask.joint import check_rows

    kind, settings, hyper = template(estimator)
    if not (isinstance(workers, (int, np.integer)) and workers >= 1):
        raise ConfigError(f"workers must be a whole number >= 1, got {workers!r}")
    if not (fallback is None or fallback == "pooled" or hasattr(fallback, "predict")):
        raise ConfigError(f"fallback must be None, 'pooled' or a fitted estimator, got {fallback!r}")
    X, groups, y, sample_weight = check_rows(X, groups, y, sample_weight, "groups")
    classes = None
    if kind != "LinearRegression":
        classes = np.unique(y)
        if classes.size != 2:
            raise DataError(f"fit_per_group fits binary classifiers: y has {classes.size} classes")
        y = (y == classes[1]).astype(np.float64)
    names, index = np.unique(groups, return_inverse=True)
    if workers == 1:
        part = fit_groups(kind, settings, X, y, sample_weight, index, names.size)
    else:
        part = _on_workers(kind, settings, X, y, sample_weight, index, owners(names, int(workers)), names.size,
                           int(workers))
    if fallback == "pooled":
        fallback = clone(estimator).fit(X, y if classes is None else classes[y.astype(int)],
                                        sample_weight=sample_weight)
    model = GroupedModel(kind, hyper, names, part["coef"], part["intercept"], part["single"], classes, fallback)
    model.reports_ = part.get("reports", [{"rank": 0, "rows": int(X.shape[0]), "groups": int(names.size)}])
    return model


def _on_workers(kind, settings, X, y, sample_weight, index, owner, n_groups, workers) -> dict:
    from shardlearn.runtime.config import TrainConfig
    from shardlearn.runtime.distributed import run_job
    from shardlearn.runtime.spill import Spill

    with Spill(X, y, sample_weight, extra={"groups": index}) as spec:
        result = run_job(TrainConfig(workers=workers), "shardlearn.multitask.groups:fit_job", spill=spec,
                         owner=owner, kind=kind, settings=settings)
    out = {"coef": np.empty((n_groups, X.shape[1])), "intercept": np.empty(n_groups),
           "single": np.empty(n_groups, np.int8)}
    for p in result.info["parts"]:
        for k in out:
            out[k][p["groups"]] = p[k]
    out["reports"] = result.reports
    return out


def fit_file_job(comm, *, progress=None, cfg=None, source: dict, key: str, kind: str, settings: dict,
                 positive_label=None) -> dict:
    """One model per value of column ``key`` of a CSV or Parquet file: every worker reads the
    file block by block and keeps only the rows of the groups its hash gives it, so no process
    holds more than its own groups (the driver none); the classes are agreed by the workers."""
    from shardlearn.data import open as open_source
    from shardlearn.data.arrays_stack import stack
    from shardlearn.data.labels import map_positive
    from shardlearn.runtime.agree import union

    src = open_source(**source, key=key)
    seen: dict = {}
    kept, keys = [], []
    for X, y in src.blocks(passthrough=[src.key], into=seen):
        values = seen[src.key][-1].astype(str)
        mine = np.flatnonzero(owners(values, comm.size) == comm.rank)
        kept.append((X[mine], np.asarray(y)[mine]))
        keys.append(values[mine])
        seen[src.key].clear()  # only the current block's keys are needed
    X, y = stack(kept, src.n_features, True)
    y = np.asarray(y)
    if positive_label is not None:
        y = map_positive(y, positive_label)
    classes = None
    if kind != "LinearRegression":
        classes = union(comm, np.unique(y))
        if len(classes) != 2:
            raise DataError(f"{source['data']}: one model per group fits binary classifiers; the labels hold "
                            f"{len(classes)} classes {classes[:5]}")
        y = (y == classes[1]).astype(np.float64)
    names, index = np.unique(np.concatenate(keys) if keys else np.zeros(0, str), return_inverse=True)
    part = fit_groups(kind, settings, X, y, None, index, names.size)
    return {"params": {}, "n_iter": 1, "steps": [], "classes": classes, "n_features": int(src.n_features),
            # every worker reads every row: its own count of skipped rows is the file's
            "encoder": src.encoder.to_json(), "label": src.label, "skipped": dict(src.skipped),
            "report": {"rank": comm.rank, "rows": int(X.shape[0]), "groups": int(names.size)},
            "part": dict(part, groups=names)}


def fit_file(estimator, source: dict, key: str, *, workers: int = 1, positive_label=None):
    """``(GroupedModel, facts of the file, every worker's report)``: one model like ``estimator``
    per value of column ``key`` of the file ``source`` describes (``shardlearn.data.open``'s
    options), each worker streaming the file and keeping its groups' rows."""
    from shardlearn.comm.base import LocalCollective
    from shardlearn.multitask.grouped import GroupedModel
    from shardlearn.runtime.config import TrainConfig
    from shardlearn.runtime.distributed import run_job

    kind, settings, hyper = template(estimator)
    job = dict(source=source, key=key, kind=kind, settings=settings, positive_label=positive_label)
    if workers == 1:
        info = fit_file_job(LocalCollective(), **job)
        parts, reports = [info.pop("part")], [info.pop("report")]
    else:
        result = run_job(TrainConfig(workers=int(workers)), "shardlearn.multitask.groups:fit_file_job", **job)
        info, reports = result.info, result.reports
        parts = info.pop("parts")
    names = np.concatenate([p["groups"] for p in parts])
    order = np.argsort(names, kind="stable")
    merged = {k: np.concatenate([p[k] for p in parts])[order] for k in ("coef", "intercept", "single")}
    classes = None if info.get("classes") is None else np.asarray(info["classes"])
    model = GroupedModel(kind, hyper, names[order], merged["coef"], merged["intercept"], merged["single"], classes)
    model.reports_ = reports
    return model, info, reports
