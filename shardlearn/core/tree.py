"""Helpers over parameter trees: flat ``dict[str, ndarray]``.

Every model, optimizer state and update in shardlearn is such a dict, so it
pickles, checkpoints and travels as plain arrays.

>>> import numpy as np
>>> t = {"w": np.array([3.0, 4.0]), "b": np.array(0.0)}
>>> float(global_norm(t))
5.0
>>> vec, unravel = ravel(t)
>>> vec.tolist(), unravel(vec * 2)["w"].tolist()
([0.0, 3.0, 4.0], [6.0, 8.0])
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Tree = dict  # dict[str, np.ndarray]


def tree_map(fn: Callable, tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf by leaf over trees with the same keys."""
    return {k: fn(v, *(r[k] for r in rest)) for k, v in tree.items()}


def zeros_like(tree: Tree) -> Tree:
    return {k: np.zeros_like(v) for k, v in tree.items()}


def add(a: Tree, b: Tree) -> Tree:
    return {k: a[k] + b[k] for k in a}


def scale(c, tree: Tree) -> Tree:
    return {k: c * v for k, v in tree.items()}


def vdot(a: Tree, b: Tree) -> float:
    return float(sum(np.vdot(a[k], b[k]) for k in a))


def global_norm(tree: Tree) -> float:
    return float(np.sqrt(sum(np.vdot(v, v) for v in tree.values())))


def broadcast_like(value, tree: Tree) -> Tree:
    """A scalar becomes a tree of that scalar; a tree is returned as is."""
    if isinstance(value, dict):
        return value
    return {k: value for k in tree}


def ravel(tree: Tree) -> tuple[np.ndarray, Callable[[np.ndarray], Tree]]:
    """Flatten a tree (keys sorted) into one float64 vector, with its inverse."""
    keys = sorted(tree)
    shapes = [np.shape(tree[k]) for k in keys]
    sizes = [int(np.prod(s)) for s in shapes]
    vec = np.concatenate([np.ravel(tree[k]).astype(np.float64) for k in keys]) if keys else np.zeros(0)

    def unravel(v: np.ndarray) -> Tree:
        out, i = {}, 0
        for k, s, n in zip(keys, shapes, sizes):
            out[k] = np.asarray(v[i : i + n], dtype=np.float64).reshape(s)
            i += n
        return out

    return vec, unravel
