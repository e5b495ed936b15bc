"""Composition of transforms: ``chain``, ``apply_updates``, ``identity``, ``scale``.

Following optax (Babuschkin et al., 2020): an optimizer is a chain of small pure
transforms whose state is plain arrays. Updates are *added* to the parameters.

>>> import numpy as np
>>> opt = chain(scale(-0.5))
>>> params = {"w": np.array([2.0])}
>>> upd, state = opt.update({"w": np.array([2.0])}, opt.init(params), params)
>>> apply_updates(params, upd)["w"].tolist()
[1.0]
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from shardlearn.core import tree
from shardlearn.core.protocols import Transform


class EmptyState(NamedTuple):
    pass


class CountState(NamedTuple):
    count: np.ndarray  # how many updates so far, as a 0-d int64 array


def identity() -> Transform:
    return Transform(lambda params: EmptyState(), lambda g, s, params=None: (g, s))


def scale(step: float) -> Transform:
    """Multiply every update by ``step``."""
    return Transform(lambda params: EmptyState(), lambda g, s, params=None: (tree.scale(step, g), s))


def chain(*transforms: Transform) -> Transform:
    """Run transforms in order, each on the previous one's output."""

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None):
        new_state = []
        for t, s in zip(transforms, state):
            grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, tuple(new_state)

    return Transform(init, update)


def apply_updates(params: dict, updates: dict) -> dict:
    return {k: params[k] + updates[k] for k in params}


def count_init(params) -> CountState:
    return CountState(np.zeros((), np.int64))
