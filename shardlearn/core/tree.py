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


def leaves(state) -> list:
    """The arrays of a nested state (tuples, NamedTuples, dicts with sorted keys, arrays) in a fixed order.

    >>> from typing import NamedTuple
    >>> class S(NamedTuple):
    ...     count: np.ndarray
    ...     acc: dict
    >>> s = (S(np.array(3), {"w": np.ones(2), "b": np.array(0.5)}), ())
    >>> [a.tolist() for a in leaves(s)]
    [3, 0.5, [1.0, 1.0]]
    >>> [a.tolist() for a in leaves(unflatten(s, [np.array(4), np.array(1.5), np.zeros(2)]))]
    [4, 1.5, [0.0, 0.0]]
    """
    if isinstance(state, dict):
        return [a for k in sorted(state) for a in leaves(state[k])]
    if isinstance(state, tuple):
        return [a for part in state for a in leaves(part)]
    return [np.asarray(state)]


def unflatten(template, arrays: list):
    """Rebuild a state shaped like ``template`` from ``leaves`` output (checkpoint restore)."""
    it = iter(arrays)

    def build(node):
        if isinstance(node, dict):
            return {k: build(node[k]) for k in sorted(node)}
        if isinstance(node, tuple):
            parts = [build(p) for p in node]
            return type(node)(*parts) if hasattr(node, "_fields") else tuple(parts)
        value = np.asarray(next(it))
        if np.shape(value) != np.shape(node):
            raise ValueError(f"state leaf of shape {np.shape(value)} where {np.shape(node)} was expected")
        return value

    out = build(template)
    if next(it, None) is not None:
        raise ValueError("more state arrays than the template holds")
    return out


def pack(prefix: str, tree: dict) -> dict:
    """``{"w": a}`` -> ``{"prefix/w": a}``, to store several parameter trees in one part."""
    return {f"{prefix}/{k}": np.asarray(v) for k, v in tree.items()}


def unpack(prefix: str, arrays: dict) -> dict:
    n = len(prefix) + 1
    return {k[n:]: np.array(v) for k, v in arrays.items() if k.startswith(prefix + "/")}


def pack_state(prefix: str, state) -> dict:
    """An optimizer state (nested tuples of arrays) as numbered arrays."""
    return {f"{prefix}/{i:04d}": a for i, a in enumerate(leaves(state))}


def unpack_state(prefix: str, arrays: dict, template):
    keys = sorted(k for k in arrays if k.startswith(prefix + "/"))
    return unflatten(template, [np.array(arrays[k]) for k in keys])
