"""One timed fit and its held-out log-loss, and the median time of a repeated call, shared by
the benchmark scripts."""
from __future__ import annotations

import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss


def timed_fit(est, X, y, Xt, yt) -> tuple[float, float]:
    """``(fit seconds, held-out log-loss)``; convergence warnings of budget-limited fits are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        est.fit(X, y)
        secs = time.perf_counter() - t
    return secs, float(log_loss(yt, est.predict_proba(Xt)[:, 1], labels=[0, 1]))


def median_time(fn, reps: int):
    """``(the last call's result, the median seconds of reps calls of fn())``."""
    import numpy as np

    out, secs = None, []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t)
    return out, float(np.median(secs))
