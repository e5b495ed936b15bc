"""optax-style optimizers: pure ``(init, update)`` transforms over parameter trees.

>>> import numpy as np
>>> opt = chain(clip_by_global_norm(10.0), adam(0.1))
>>> p = {"w": np.array([1.0])}
>>> state = opt.init(p)
>>> for _ in range(200):
...     u, state = opt.update({"w": 2 * p["w"]}, state, p)
...     p = apply_updates(p, u)
>>> abs(float(p["w"][0])) < 1e-2
True
"""
from shardlearn.core.errors import ConfigError
from shardlearn.optim.adagrad import adagrad, scale_by_rss
from shardlearn.optim.adam import adam, scale_by_adam
from shardlearn.optim.base import apply_updates, chain, identity, scale
from shardlearn.optim.ftrl import ftrl
from shardlearn.optim.proximal import adagrad_steps, adam_steps, penalized, sgd_steps
from shardlearn.optim.regularizers import add_l2, clip_by_global_norm, prox_l1, soft_threshold
from shardlearn.optim.schedules import SCHEDULES, constant, inverse_scaling
from shardlearn.optim.sgd import scale_by_learning_rate, sgd, trace

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adam", "ftrl")


def make(name: str, learning_rate, l1=0.0, l2=0.0):
    """Build a named optimizer. ``ftrl`` applies ``l1``/``l2`` itself; the others add
    ``l2 * w`` to the gradient and take ``l1`` as a soft threshold at the step the rule
    took on each coordinate (``optim.proximal``), so every rule keeps the elastic-net
    optimum as its fixed point. Strengths are scalars or per-coordinate trees."""
    if name == "ftrl":
        return ftrl(alpha=float(learning_rate if not callable(learning_rate) else learning_rate(0)), l1=l1, l2=l2)
    if name == "sgd":
        base, steps = sgd(learning_rate), sgd_steps(learning_rate)
    elif name == "momentum":
        base, steps = sgd(learning_rate, momentum=0.9), sgd_steps(learning_rate, 0.9)
    elif name == "nesterov":
        base, steps = sgd(learning_rate, momentum=0.9, nesterov=True), sgd_steps(learning_rate, 0.9)
    elif name == "adagrad":
        base, steps = adagrad(learning_rate), adagrad_steps(learning_rate)
    elif name == "adam":
        base, steps = adam(learning_rate), adam_steps(learning_rate)
    else:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return penalized(base, steps, l1, l2) if _nonzero(l1) or _nonzero(l2) else base


def _nonzero(x) -> bool:
    if isinstance(x, dict):
        return any(bool(abs(v).sum() if hasattr(v, "sum") else v) for v in x.values())
    return bool(x)


__all__ = [
    "OPTIMIZERS", "SCHEDULES", "adagrad", "adam", "add_l2", "apply_updates", "chain",
    "clip_by_global_norm", "constant", "ftrl", "identity", "inverse_scaling", "make", "penalized", "prox_l1",
    "scale", "scale_by_adam", "scale_by_learning_rate", "scale_by_rss", "sgd", "soft_threshold", "trace",
]
