"""The objective every one-process strategy minimises, seen in scaled coordinates.

``smooth(theta)`` is the mean loss plus the L2 part of the penalty (value and
gradient); the L1 part is returned separately as per-coordinate weights so the
solvers can treat it exactly (proximal steps, or bound constraints in L-BFGS-B).

>>> import numpy as np
>>> from shardlearn import models
>>> from shardlearn.strategies import precond
>>> X = np.array([[0.0], [1.0], [2.0]]); y = np.array([1.0, 3.0, 5.0])
>>> a = precond.identity(1)
>>> theta = {"w": np.array([2.0]), "b": np.array(1.0)}
>>> smooth(models.get("linear"), theta, X, y, None, a, alpha=0.0)[0]
0.0
"""
from __future__ import annotations

import numpy as np

from shardlearn.comm.compressed import Compressed
from shardlearn.core import tree
from shardlearn.models import penalty
from shardlearn.strategies.precond import Affine, grad_to_scaled, to_original


def allreduce_mean(comm, loss: float, grads: dict, weight: float):
    """Sum ``weight * (loss, grads)`` over workers in one allreduce; ``weight`` is this
    worker's share of the total, so the result is the global weighted mean. Over a
    ``comm.compressed.Compressed`` collective the grads go through its codec."""
    keys = sorted(grads)
    if isinstance(comm, Compressed) and keys:  # the loss exactly (line searches read it), the arrays compressed
        summed = comm.sum_tree({k: np.asarray(grads[k], dtype=np.float64) * weight for k in keys})
        vec = np.concatenate([comm.allreduce(np.array([loss * weight]))] + [np.ravel(summed[k]) for k in keys])
    else:
        vec = np.concatenate([[loss * weight]] + [np.ravel(grads[k]) * weight for k in keys])
        vec = comm.allreduce(vec)
    out, i = {}, 1
    for k in keys:
        n = np.size(grads[k])
        out[k] = vec[i : i + n].reshape(np.shape(grads[k]))
        i += n
    return float(vec[0]), out


def local_loss_and_grad(model, params, X, y, sample_weight):
    """The model's loss and gradient; zeros for an empty shard (more workers than rows). A
    streamed shard (``data.stream.Stream``: labels in its blocks, no sample weights) is one
    pass over its blocks, each weighted by its rows."""
    if X.shape[0] == 0:
        return 0.0, {k: np.zeros(np.shape(v)) for k, v in params.items()}
    if hasattr(X, "blocks"):
        loss, grads = 0.0, {k: np.zeros(np.shape(v)) for k, v in params.items()}
        for Xb, yb in X.blocks():
            if Xb.shape[0]:
                lb, gb = model.loss_and_grad(params, Xb, yb, None)
                share = Xb.shape[0] / X.shape[0]
                loss += share * lb
                for k in grads:
                    grads[k] += share * gb[k]
        return loss, grads
    return model.loss_and_grad(params, X, y, sample_weight)


def smooth(model, theta, X, y, sample_weight, affine: Affine, alpha=0.0, l1_ratio=0.0, fit_intercept=True,
           comm=None, share=1.0, grad=True):
    """Mean loss + L2 penalty at scaled parameters ``theta``, and its gradient in scaled space.
    With ``comm``, the loss is the mean over all workers' rows (``share``: this worker's
    fraction of the total sample weight). ``grad=False``: the value only (the gradient is
    None), and only the loss travels: a line search's trial point."""
    params = to_original(theta, affine)
    loss, grads = local_loss_and_grad(model, params, X, y, sample_weight)
    penalty_value = alpha * (1.0 - l1_ratio) * 0.5 * float(np.vdot(params["w"], params["w"]))
    l2 = penalty.l2_grad(params, alpha, l1_ratio)
    if isinstance(comm, Compressed) and grad:  # compressed in the solver's coordinates, where the step is taken
        g = grad_to_scaled(grads, affine)
        if not fit_intercept:
            g["b"] = np.zeros_like(g["b"])
        loss, g = allreduce_mean(comm, loss, g, share)
        return loss + penalty_value, tree.add(g, grad_to_scaled({"w": l2["w"], "b": np.zeros_like(g["b"])}, affine))
    if comm is not None and comm.size > 1:
        loss, grads = allreduce_mean(comm, loss, grads if grad else {}, share)
    value = loss + penalty_value
    if not grad:
        return value, None
    g = grad_to_scaled({"w": grads["w"] + l2["w"], "b": grads["b"]}, affine)
    if not fit_intercept:
        g["b"] = np.zeros_like(g["b"])
    return value, g


def l1_weights(theta, affine: Affine, alpha=0.0, l1_ratio=0.0) -> dict:
    """Per-coordinate L1 strength in scaled space: ``|w_j| = |v_j| / s_j``."""
    s = affine.scale if theta["w"].ndim == 1 else affine.scale[:, None]
    return {"w": alpha * l1_ratio / s * np.ones_like(theta["w"]), "b": np.zeros_like(theta["b"])}


def l1_value(theta, weights) -> float:
    return float(sum(np.sum(weights[k] * np.abs(theta[k])) for k in theta))
