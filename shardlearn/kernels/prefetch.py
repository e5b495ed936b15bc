"""A software prefetch for compiled loops: ``prefetch(a, i)`` asks the CPU to bring the cache
line holding ``a[i]`` (``a[i, 0]`` of a 2-d array) into cache and returns at once; it never
faults and changes no value (LLVM's ``llvm.prefetch``, read, high locality). The per-example
kernel (``ahead``, in ``core._rows_csr``) and a parameter-server step's gather (``columns._batch``) visit CSR
rows in a shuffled order, so each row's values, and the state rows of the columns it names,
are cache misses the out-of-order core cannot reach ahead for: the row loop asks for the
row 8 ahead and for the state rows of the row 2 ahead (``state_of``: all that scoring in
row order asks for, the hardware following its values). On D2's 2M rows (normalized rule,
L2 1e-6, one pass; ``benchmarks/profile_epoch.py``, two alternated runs each) that took the
shuffled pass from 3.54-3.61 s to 2.69-2.81 s and the in-order one from 2.43-2.61 s to
1.82-1.90 s, results unchanged to the bit (``benchmarks/README.md``). Dense
rows (``prefetch2``, the row 8 ahead a line at a time) gain less: D1's shuffled pass is bound
by its arithmetic, 2.21-2.33 s before and 2.14-2.19 s after over 1M rows (by hand).
(Software prefetching for irregular, indirect accesses: Ainsworth & Jones, "Software
prefetching for indirect memory accesses", CGO 2017.)

A shard's merge, catch-up and pull (``delta._merge``, ``sgd._catch_up_keys``,
``delta.rows_at``) walk a step's sorted keys, far apart in a wide model, and ask for the row
8 keys ahead: on 50 steps of 80,000 keys of 4M, by hand, merge 0.18 -> 0.10 s, catch-up
0.23 -> 0.10 s, the pull's gather 0.27 s (numpy's fancy index) -> 0.10 s.

numba caches a compiled function keyed on its own file only: a change here reaches
``core.py``, ``columns.py``, ``delta.py`` and ``sgd.py`` only once their caches are rebuilt
(touch them).

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def total(a, order):
...     s = 0.0
...     for j in range(order.size):
...         if j + 4 < order.size:
...             prefetch(a, order[j + 4])
...         s += a[order[j]]
...     return s
>>> float(total(np.arange(10.0), np.arange(10)[::-1].copy()))
45.0
>>> @njit
... def first(X):
...     prefetch2(X, 1, 2)
...     return X[1, 2]
>>> float(first(np.arange(6.0).reshape(2, 3)))
5.0
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _codegen(context, builder, signature, args):
    """The ``llvm.prefetch`` of ``a[i, k, 0, ...]`` for the indices given, the rest 0."""
    aryty, given = signature.args[0], signature.args[1:]
    ary = context.make_array(aryty)(context, builder, args[0])
    at = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], given)]
    at += [context.get_constant(types.intp, 0)] * (aryty.ndim - len(at))
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, at, wraparound=False)
    byte = builder.bitcast(ptr, ir.IntType(8).as_pointer())
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte.type, i32, i32, i32]),
                                        "llvm.prefetch.p0")
    builder.call(fn, [byte, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])  # read, keep, data
    return context.get_dummy_value()


@intrinsic
def prefetch(typingctx, arr, idx):
    """``prefetch(a, i)``: the cache line of ``a[i]`` (``a[i, 0, ...]``) requested; no bounds check
    is needed (a prefetch of any address is harmless), none is made."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    return types.void(arr, idx), _codegen


@intrinsic
def prefetch2(typingctx, arr, idx, col):
    """``prefetch2(a, i, k)``: the cache line of ``a[i, k]`` of a 2-d array, as ``prefetch``."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(idx, types.Integer)
            and isinstance(col, types.Integer)):
        return None
    return types.void(arr, idx, col), _codegen


AHEAD_ROWS, AHEAD_STATE = 8, 2  # prefetch distances in rows: a row's values, its columns' state rows


@njit(cache=True, inline="always")
def ahead(indptr, indices, data, ws, order, j):
    """At row ``j`` of a CSR pass in ``order``, ask for what later rows read: the row pointer
    ``2 AHEAD_ROWS`` ahead, the values (two lines) ``AHEAD_ROWS`` ahead, and the state rows
    ``ws[i]`` of the columns the row ``AHEAD_STATE`` ahead names."""
    m = order.shape[0]
    if j + 2 * AHEAD_ROWS < m:
        prefetch(indptr, order[j + 2 * AHEAD_ROWS])
    if j + AHEAD_ROWS < m:
        q = indptr[order[j + AHEAD_ROWS]]
        prefetch(indices, q)
        prefetch(data, q)
        prefetch(indices, q + 16)
        prefetch(data, q + 16)
    if j + AHEAD_STATE < m:
        state_of(indptr, indices, ws, order[j + AHEAD_STATE])


@njit(cache=True, inline="always")
def state_of(indptr, indices, ws, r):
    """Ask for the state rows ``ws[i]`` of the columns CSR row ``r`` names (a pass in row order
    needs no more: the hardware prefetcher follows its values)."""
    for k in range(indptr[r], indptr[r + 1]):
        prefetch(ws, indices[k])
