"""How many threads numba's parallel regions may use in this process.

>>> set_threads(1)
1
"""
from __future__ import annotations

import numba


def set_threads(n: int) -> int:
    """Limit numba to ``n`` threads (at most the pool it started with); the count now in force."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    return numba.get_num_threads()
