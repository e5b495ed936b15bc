"""What a fit returns: the model and what happened on the way, as one object.

The estimators keep it (``est.fit_result_``) and the CLI prints from it; no
module-level state carries results between calls, so two fits in two threads
never see each other's.

>>> r = FitResult({"w": [1.0], "b": 0.0}, n_iter=3, steps=[{"step": 1, "loss": 0.5}])
>>> r.n_iter, r.final_loss, r.restarts
(3, 0.5, [])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
