"""What a fit returns: the model and what happened on the way, as one object.

The estimators keep it (``est.fit_result_``) and the CLI prints from it; no
module-level state carries results between calls, so two fits in two threads
never see each other's.

>>> r = FitResult({"w": [1.0], "b": 0.0}, n_iter=3, steps=[{"step": 1, "loss": 0.5}])
>>> r.n_iter, r.final_loss, r.restarts
(3, 0.5, [])
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

OVERSHOT = 2.0  # a last epoch's loss over this many times a zero score's: the steps overshoot


@dataclass
class FitResult:
    params: dict | None  # the model, original coordinates (None on torchrun ranks other than 0)
    n_iter: int
    steps: list = field(default_factory=list)  # per-step (or per-epoch) metrics, as rank 0 logged them
    reports: list = field(default_factory=list)  # per rank: rows, bytes, collectives, peak RSS, ...
    restarts: list = field(default_factory=list)  # each: when the failure was seen, what, seconds to resume
    state: Any = None  # what partial_fit continues from (one-process sgd), else None
    info: dict = field(default_factory=dict)  # facts of a file fit: classes, n_features, encoder, skipped ...

    @property
    def final_loss(self) -> float | None:
        return self.steps[-1].get("loss") if self.steps else None


def check_fit(result: FitResult, model, n_outputs: int, cfg, y=None, sample_weight=None) -> None:
    """What a fit's numbers say about its steps, in one line. Weights or a last loss that
    overflowed to inf or NaN raise ``DivergedError`` (a model that predicts NaN is never
    returned; scikit-learn's SGD raises too). A stochastic fit (``cfg.solver == "sgd"``) whose
    last epoch's mean loss is over twice that of scoring every row 0 (the model's own loss of a
    zero score: a regression's on its labels ``y`` where given; a classifier's on one label of 0,
    which every label scores alike: log 2 for logistic regression, log K for softmax, K for K-output
    hinge) learned nothing a constant would not: a RuntimeWarning says so. Both name the rule, its rate and the fix: plain SGD on
    raw features in the millions does either. A file's or an engine's regression, whose labels
    stay with the workers, is held to their mean square as the workers report it.

    >>> import warnings
    >>> from shardlearn import models
    >>> from shardlearn.runtime.config import TrainConfig
    >>> cfg = TrainConfig(solver="sgd", optimizer="sgd", batch_size=1)
    >>> with warnings.catch_warnings(record=True) as got:
    ...     warnings.simplefilter("always")
    ...     check_fit(FitResult(None, 2, steps=[{"loss": 86.9}]), models.get("logistic"), 1, cfg)
    >>> print(str(got[0].message)[:71])
    the last epoch's mean loss 86.9 is over twice that of scoring every row
    >>> check_fit(FitResult({"w": np.array([1.0, np.nan])}, 2), models.get("linear"), 1, cfg)
    Traceback (most recent call last):
    ...
    shardlearn.core.errors.DivergedError: the fit's weights overflowed to NaN: optimizer='sgd' at learning_rate=0.05 ...
    """
    from shardlearn.core.errors import DivergedError, overshoot

    loss = result.final_loss
    lost = [k for k, v in (result.params or {}).items() if not _finite(v)]
    if cfg.solver != "sgd":
        steps, fix = f"solver={cfg.solver!r} diverged on these features' scales", "standardize the features"
    else:
        steps, fix = overshoot("optimizer", cfg.optimizer, cfg.base_lr(labels=False)).split("; ", 1)
    if lost or (loss is not None and not math.isfinite(loss)):
        what = "weights" if lost else "loss"
        raise DivergedError(f"the fit's {what} overflowed to {'inf' if loss is not None and math.isinf(loss) else 'NaN'}"
                            f": {steps}; {fix}")
    if cfg.solver != "sgd" or loss is None:
        return
    if y is None and model.task != "classification":  # a file's or an engine's: the workers' labels' mean square
        ms = next((r["label_mean_square"] for r in result.reports if "label_mean_square" in r), None)
        if ms is None:
            return
        y, sample_weight = np.array([np.sqrt(ms)]), None  # a zero score's squared loss is quadratic in the label
    elif model.task == "classification":  # every label scores alike at 0: one row, not a pass over y
        y, sample_weight = np.zeros(1), None
    zero = float(model.loss_and_grad(model.init(0, n_outputs), sp.csr_matrix((len(y), 0)), y, sample_weight)[0])
    if loss > OVERSHOT * zero:
        warnings.warn(f"the last epoch's mean loss {loss:.4g} is over twice that of scoring every row 0 ({zero:.4g}): "
                      f"{steps}; {fix}", RuntimeWarning, stacklevel=3)


def _finite(values) -> bool:
    """Every entry finite, in one pass and no array the size of ``values`` (a 2^28-key model):
    a float64 sum of finite float32 or sane float64 values is finite, an inf or NaN is not."""
    a = np.asarray(values)
    return a.dtype.kind != "f" or math.isfinite(float(np.sum(a, dtype=np.float64)))
