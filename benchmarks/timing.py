"""One timed fit and its held-out log-loss, shared by the benchmark scripts."""
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
