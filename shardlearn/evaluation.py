"""Held-out metrics of a fitted estimator, as one JSON-ready dict.

Classifiers: ``logloss`` (when the model gives probabilities), ``accuracy``,
``auc`` (one-vs-rest macro average for more than two classes), ``precision``,
``recall`` and ``f1`` (of the positive class ``classes_[1]`` for two classes, macro
averages for more), and ``confusion`` (``{"labels": classes, "matrix": rows = true
class, columns = predicted}``); regressors:
``mse``, ``r2``; both: ``objective`` (mean loss + penalty on this data) and ``rows``.

A multi-task or grouped model is evaluated with each row's task or group (``tasks=``): the
metrics over all rows, then ``per_task`` (rows and the main metrics of every task or
group) and ``task_mean`` (each metric's mean over the tasks where it is defined).

>>> import numpy as np
>>> from shardlearn import LogisticRegression
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
>>> m = evaluate(LogisticRegression().fit(X, y), X, y)
>>> m["accuracy"], m["auc"], m["rows"], m["f1"], m["confusion"]["matrix"]
(1.0, 1.0, 4, 1.0, [[2, 0], [0, 2]])
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics
from sklearn.base import is_classifier


PER_TASK = ("rows", "mse", "r2", "accuracy", "logloss", "auc")


def evaluate(est, X, y, tasks=None) -> dict:
    out = _metrics(est, X, y, tasks)
    if tasks is None:
        return out
    tasks, y = np.asarray(tasks), np.asarray(y)
    names, index = np.unique(tasks, return_inverse=True)
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(names.size + 1))
    per = {}
    for k, name in enumerate(names):  # one block of rows per task
        r = order[bounds[k]:bounds[k + 1]]
        m = _metrics(est, X[r], y[r], tasks[r], objective=False)
        per[str(name)] = {key: m[key] for key in PER_TASK if key in m}
    out["per_task"] = per
    out["task_mean"] = {key: float(np.mean(v)) for key in PER_TASK[1:]
                        if (v := [m[key] for m in per.values() if m.get(key) is not None])}
    return out


def route(est, keys) -> dict:
    """The keyword that hands each row's task (a multi-task model) or group (a grouped model)
    to ``est``'s predict methods; none for other models."""
    return {} if keys is None else {"tasks" if hasattr(est, "tasks_") else "groups": keys}


def _metrics(est, X, y, tasks=None, objective=True) -> dict:
    by = route(est, tasks)
    out = {"rows": int(X.shape[0])}
    if is_classifier(est):
        y = np.asarray(y)
        pred = est.predict(X, **by)
        out["accuracy"] = float(np.mean(pred == y))
        classes = est.classes_
        out.update(_counts(y, pred, classes))
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(X, **by)
            out["logloss"] = float(metrics.log_loss(y, proba, labels=classes))
            scores = proba[:, 1] if len(classes) == 2 else proba
        else:
            scores = est.decision_function(X, **by)
        present = np.unique(y)
        if len(present) < 2:
            out["auc"] = None  # undefined with one class present
        elif len(classes) == 2:
            out["auc"] = float(metrics.roc_auc_score(y == classes[1], scores))
        elif len(present) == len(classes):
            out["auc"] = float(metrics.roc_auc_score(y, scores, multi_class="ovr", labels=classes))
        else:
            out["auc"] = None
    else:
        pred = est.predict(X, **by)
        out["mse"] = float(metrics.mean_squared_error(y, pred))
        out["r2"] = float(metrics.r2_score(y, pred)) if len(y) > 1 else None  # undefined on one row
    if objective and hasattr(est, "objective"):
        out["objective"] = float(est.objective(X, y, **by))
    return out


def _counts(y, pred, classes) -> dict:
    binary = len(classes) == 2
    kw = dict(labels=classes, zero_division=0.0)
    kw.update(pos_label=classes[1], average="binary") if binary else kw.update(average="macro")
    p, r, f, _ = metrics.precision_recall_fscore_support(y, pred, **kw)
    plain = [c.item() if hasattr(c, "item") else c for c in classes]
    return {"precision": float(p), "recall": float(r), "f1": float(f),
            "confusion": {"labels": plain, "matrix": metrics.confusion_matrix(y, pred, labels=classes).tolist()}}
