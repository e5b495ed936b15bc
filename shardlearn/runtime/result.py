"""What a fit returns: the model and what happened on the way, as one object.

The estimators keep it (``est.fit_result_``) and the CLI prints from it; no
module-level state carries results between calls, so two fits in two threads
never see each other's.

>>> r = FitResult({"w": [1.0], "b": 0.0}, n_iter=3, steps=[{"step": 1, "loss": 0.5}])
>>> r.n_iter, r.final_loss, r.restarts
(3, 0.5, [])
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

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


def warn_if_overshot(result: FitResult, model, n_outputs: int, cfg) -> None:
    """A stochastic fit (``cfg.solver == "sgd"``) whose last epoch's mean loss is over twice
    that of scoring every row 0 (``model.zero_loss``: log 2 for logistic regression, whatever
    the labels) learned nothing a constant would not: its steps overshoot, as plain SGD's do
    on raw features in the millions. Say so in one line (a RuntimeWarning) instead of
    returning the model silently; models whose zero score's loss depends on the labels
    (squared loss) are not checked.

    >>> import warnings
    >>> from shardlearn import models
    >>> from shardlearn.runtime.config import TrainConfig
    >>> cfg = TrainConfig(solver="sgd", optimizer="sgd", batch_size=1)
    >>> with warnings.catch_warnings(record=True) as got:
    ...     warnings.simplefilter("always")
    ...     warn_if_overshot(FitResult(None, 2, steps=[{"loss": 86.9}]), models.get("logistic"), 1, cfg)
    >>> print(str(got[0].message)[:71])
    the last epoch's mean loss 86.9 is over twice that of scoring every row
    """
    zero, loss = model.zero_loss(n_outputs), result.final_loss
    if cfg.solver != "sgd" or zero is None or loss is None or not loss > OVERSHOT * zero:
        return
    fix = ("lower learning_rate" if cfg.optimizer == "normalized" else
           "the default optimizer 'normalized' is scale-free, or standardize the features or lower learning_rate")
    warnings.warn(f"the last epoch's mean loss {loss:.4g} is over twice that of scoring every row 0 ({zero:.4g}): "
                  f"optimizer={cfg.optimizer!r} at learning_rate={cfg.base_lr():.4g} overshoots on these features' "
                  f"scales; {fix}", RuntimeWarning, stacklevel=3)
