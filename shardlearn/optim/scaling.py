"""The per-feature scale of the stochastic strategies: one formula for the collective
strategies (``strategies/precond.py``) and the parameter-server shards
(``ps/server.py``), which both sit above ``optim`` in the layering.

>>> import numpy as np
>>> where_present(np.array([4.0, 2.0, 0.0]), np.array([1.0, 2.0, 0.0])).tolist()
[2.0, 1.0, 1.0]
"""
from __future__ import annotations

import numpy as np


def where_present(s2, count, curvature=1.0, ridge=0.0) -> np.ndarray:
    """``s_j = sqrt(E[x_j^2 | x_j != 0] + ridge / curvature)`` from weighted sums of ``x_j^2``
    (``s2``) and of the rows where ``x_j != 0`` (``count``); 1 for a column never seen.

    The root mean square of a feature where it occurs: unlike the full-batch scale it is not
    shrunk by the rows where the feature is absent, so a rare one-hot or hashed feature keeps
    scale 1 instead of getting steps hundreds of times longer (measured: 3.1 x L* on a 60k-row
    D2 with the variance scale). It is the per-feature normalisation of Vowpal Wabbit's
    normalized updates (Ross, Mineiro & Langford, "Normalized Online Learning", UAI 2013), by
    RMS instead of max. Not centred: centring would make every sparse step dense, and a
    parameter-server shard sees only its own keys.
    """
    s2 = np.asarray(s2, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    seen = count > 0
    scale = np.ones_like(s2)
    scale[seen] = np.sqrt(s2[seen] / count[seen] + ridge / curvature)
    scale[~(scale > 1e-12)] = 1.0
    return scale
