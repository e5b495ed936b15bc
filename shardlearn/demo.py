"""The main job on the embedded default: synthetic D1 data (``BENCHMARKS.md``),
shardlearn's logistic regression on local worker processes and in one process,
next to scikit-learn's on the same rows, with held-out metrics and fit times.

>>> r = run(rows=4000, test_rows=1000, workers=1, out=lambda s: None)
>>> r["shardlearn lbfgs, 1 process"]["accuracy"] > 0.75
True
"""
from __future__ import annotations

import time

from shardlearn.data.synthetic import make_d1
from shardlearn.evaluation import evaluate
from shardlearn.sklearn import LogisticRegression


def _timed(est, X, y):
    t = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - t


def run(rows: int = 200_000, test_rows: int = 50_000, alpha: float = 1e-6, seed: int = 0, workers: int = 2,
        out=print) -> dict:
    from sklearn.linear_model import LogisticRegression as SkLogistic

    t = time.perf_counter()
    X, y = make_d1(rows, seed=seed)
    Xt, yt = make_d1(test_rows, seed=seed, split="test")
    out(f"D1: {rows:,} train / {test_rows:,} test rows, {X.shape[1]} badly scaled features "
        f"(made in {time.perf_counter() - t:.1f} s); logistic regression, alpha={alpha:g}")
    C = 1.0 / (alpha * rows)
    runs, start_s = {}, None
    if workers > 1:
        # the first fit on N workers starts the local group; it stays up for later fits (timed below)
        t = time.perf_counter()
        LogisticRegression(alpha=alpha, workers=workers).fit(X[:1000], y[:1000])
        start_s = time.perf_counter() - t
        runs[f"shardlearn lbfgs, {workers} workers"] = LogisticRegression(alpha=alpha, tol=1e-5, workers=workers)
    runs.update({
        "shardlearn lbfgs, 1 process": LogisticRegression(alpha=alpha, tol=1e-5),
        "scikit-learn lbfgs": SkLogistic(C=C, max_iter=1000),
        "scikit-learn newton-cholesky": SkLogistic(C=C, solver="newton-cholesky"),
    })
    results = {}
    out(f"{'system':<32} {'fit s':>7} {'logloss':>9} {'accuracy':>9} {'auc':>7}")
    for name, est in runs.items():
        est, secs = _timed(est, X, y)
        m = evaluate_any(est, Xt, yt)
        m["fit_seconds"] = secs
        results[name] = m
        out(f"{name:<32} {secs:7.2f} {m['logloss']:9.5f} {m['accuracy']:9.4f} {m['auc']:7.4f}")
    if start_s is not None:
        out(f"note: 'fit s' of the {workers} workers leaves out their start-up, {start_s:.1f} s here, paid once "
            f"per Python process (the group stays up for later fits)")
    return results


def evaluate_any(est, X, y) -> dict:
    """Metrics for shardlearn and scikit-learn estimators alike."""
    from sklearn import metrics

    if hasattr(est, "objective"):
        return evaluate(est, X, y)
    p = est.predict_proba(X)[:, 1]
    return {"logloss": float(metrics.log_loss(y, p, labels=[0, 1])), "accuracy": float(est.score(X, y)),
            "auc": float(metrics.roc_auc_score(y, p))}
