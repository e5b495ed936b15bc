"""The driver of a fit: one worker runs in the caller's process, several go to a
worker group (``distributed``). It only dispatches; the configuration is in
``config``, the per-worker loop in ``loop``.

>>> import numpy as np
>>> from shardlearn import models
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([1.0, 3.0, 5.0, 7.0])
>>> r = train(models.get("linear"), X, y, None, TrainConfig(alpha=0.0, tol=1e-10))
>>> round(float(r.params["w"][0]), 6), round(float(r.params["b"]), 6), r.state is not None
(2.0, 1.0, True)
"""
from __future__ import annotations

import dataclasses

from shardlearn.core.errors import ConfigError
from shardlearn.runtime import label_scale
from shardlearn.runtime.config import TrainConfig
from shardlearn.runtime.loop import TrainState, train_local
from shardlearn.runtime.result import FitResult, check_fit


def train(model, X, y, sample_weight, cfg: TrainConfig, n_outputs: int = 1, state: TrainState | None = None,
          epochs: int | None = None, callback=None) -> FitResult:
    """Fit from scratch (``state=None``) or continue an sgd run for ``epochs`` epochs.

    Returns a ``FitResult`` with ``params`` in the original feature space.
    ``callback(params, iteration)`` sees the iterates, in the original space.
    With ``cfg.workers > 1`` the rows are split over a local worker group.
    """
    cfg.validate()
    if cfg.on_group:
        if state is not None:
            raise ConfigError("partial_fit runs in one process; use workers=1 for partial_fit")
        from shardlearn.runtime import distributed

        cfg.check_outputs(n_outputs)  # before any worker starts
        result = distributed.train_arrays(model, X, y, sample_weight, cfg, n_outputs)
    else:
        cfg = label_scale.agreed(model, cfg, y, sample_weight) if state is None else \
            dataclasses.replace(cfg, label_scale=state.label_scale)
        result = train_local(model, X, y, sample_weight, cfg, n_outputs, state=state, epochs=epochs,
                             callback=callback, compact=epochs is None and not cfg.stochastic)
    check_fit(result, model, n_outputs, cfg, y, sample_weight)
    return result
