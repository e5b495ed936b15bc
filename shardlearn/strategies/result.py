"""What a strategy hands back."""
from __future__ import annotations

from typing import Any, NamedTuple


class Result(NamedTuple):
    theta: dict  # parameters in scaled coordinates
    n_iter: int  # iterations (gd, lbfgs) or epochs (sgd)
    converged: bool
    objective: float  # full objective at theta on the training data (nan when not computed)
    state: Any = None  # optimizer state (sgd), to continue with partial_fit
