"""The labels' scale a regression's adaptive steps are measured in.

The adaptive rules (the normalized rule, AdaGrad, FTRL; Adam's mini-batches) divide each
step by the root of a (sum of) squared gradients, so a coordinate moves by about the
learning rate per step in the weights' own units whatever the gradients' size: the
normalized rule makes that independent of each feature's scale (Ross, Mineiro & Langford
2013), but under squared loss the weights are in units of the labels too, and a rate of 3
walks a model whose labels are in the thousands there in thousands of steps.
``LinearRegression(solver="sgd")`` on labels 1,000 times a target it fits ended 2 epochs at
15 x the held-out optimum, and labels offset by 10^4 at 3.6 x 10^8
(``benchmarks/README.md``, "Labels of any scale").

Learning ``y / c`` with weights ``w / c`` takes exactly the steps of learning ``y`` at rate
``lr * c`` (squared loss: the gradients and the flow of the importance-invariant step scale
with ``c``, the adaptive sums with ``c^2``; the L2 shrink is a factor, and the L1 cut of
``y / c`` at ``l1 / c`` is the same cut), so the fit keeps the labels as they are and
steps at ``lr * c``, with ``c`` the labels' root mean square (weighted; agreed over the
workers) times 1/4: the default rates were chosen on the logistic loss, whose curvature is
at most 1/4 where squared loss's is 1, and the invariant step moves a prediction by the
rate times the curvature. Measured (``benchmarks/bench_labels.py``: 2 epochs, 4 seeds,
held-out MSE over the optimum's): at c = RMS x 0.05 / 0.1 / 0.25 / 0.5 / 1 a linear target on
a9a's one-hot rows ended at <= 1.012 / 1.007 / 1.009 / 1.014 / 1.021 (unscaled: 1.18-1.22),
school's exam scores at <= 1.002 / 1.001 / 1.001 / 1.002 / 1.004. Plain SGD needs none: its
steps grow with the gradients already. Classification's labels are 0/1.

>>> import numpy as np
>>> from shardlearn import models
>>> from shardlearn.runtime.config import TrainConfig
>>> agreed(models.get("linear"), TrainConfig(solver="sgd"), np.array([3.0, -4.0]), None).label_scale  # RMS / 4
0.8838834764831844
>>> agreed(models.get("logistic"), TrainConfig(solver="sgd"), np.array([0.0, 1.0]), None).label_scale is None
True
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from shardlearn.kernels.sgd import MODEL_LOSS
from shardlearn.runtime.config import ADAPTIVE_RULES, TrainConfig

CURVATURE = 0.25  # squared loss's curvature is 1, the logistic loss's (the default rates' own) at most 1/4


def applies(model, cfg: TrainConfig) -> bool:
    """An adaptive rule (per example, or AdaGrad, Adam and FTRL mini-batches) learns squared loss."""
    return (cfg.solver == "sgd" and cfg.stochastic and cfg.optimizer in ADAPTIVE_RULES
            and MODEL_LOSS.get(model.name) == "squared")


def agreed(model, cfg: TrainConfig, y, sample_weight, comm=None) -> TrainConfig:
    """``cfg`` with ``label_scale`` set from the labels ``y`` (every worker calls it with its
    own, one allreduce) where it ``applies``; else ``cfg``."""
    if y is None or not applies(model, cfg):
        return cfg
    return scaled(cfg, mean_square(y, sample_weight, comm))


def scaled(cfg: TrainConfig, ms: float) -> TrainConfig:
    """``cfg`` with ``label_scale`` from the labels' mean square ``ms`` (already agreed)."""
    rms = math.sqrt(ms)
    return dataclasses.replace(cfg, label_scale=CURVATURE * (rms if math.isfinite(rms) and rms > 0 else 1.0))


def mean_square(y, sample_weight, comm=None) -> float:
    """The labels' weighted mean square over every worker's (one allreduce); 0 without weight.

    >>> mean_square(np.array([3.0, -4.0]), np.array([1.0, 3.0]))
    14.25
    """
    y = np.asarray(y, dtype=np.float64)
    h = np.ones(y.size) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    sums = np.array([float(np.dot(h, y * y)), float(np.sum(h))])
    if comm is not None and comm.size > 1:
        sums = np.asarray(comm.allreduce(sums), dtype=np.float64)
    return float(sums[0] / sums[1]) if sums[1] > 0 else 0.0
