"""Delayed labels: the features a prediction was made on, kept by the request's ``id`` for a
while, so a label that comes later (``POST /feedback``) trains the learner on exactly what
the model saw, as Vowpal Wabbit's contextual-bandit and ad-click loops do (a click is known
minutes after the impression). Kept ``ttl_s`` seconds (and at most ``max_pending``, the
oldest dropped first); what expires unlabelled is counted, never learned.

The server thread remembers and labels; the learner takes the labelled examples as one more
block between two blocks of its stream (``take``). One lock guards both sides.

>>> import numpy as np, scipy.sparse as sp
>>> fb = Feedback(ttl_s=60)
>>> fb.remember(["a", "b"], sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0]])))
>>> fb.label("b", 1.0), fb.label("zzz", 0.0)
(True, False)
>>> block = fb.take(1)
>>> block.X.toarray().tolist(), block.y.tolist(), fb.counts["unknown"]
([[0.0, 2.0]], [1.0], 1)
"""
from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict

import numpy as np
import scipy.sparse as sp

from shardlearn.online.formats import Block


class Feedback:
    def __init__(self, ttl_s: float = 600.0, max_pending: int = 1_000_000):
        self.ttl_s, self.max_pending = float(ttl_s), int(max_pending)
        self._pending: OrderedDict = OrderedDict()  # id -> (expires at, indices, values), oldest first
        self._ready: list = []  # (indices, values, label, weight), in the order labelled
        self._lock = threading.Lock()
        self.counts = Counter()  # remembered, labelled, unknown, expired, dropped, learned

    def remember(self, ids, X: sp.csr_matrix) -> None:
        """Keep row ``i`` of ``X`` under ``ids[i]`` (an id given again replaces the earlier row)."""
        expires = time.monotonic() + self.ttl_s
        with self._lock:
            self._expire()
            for i, key in enumerate(ids):
                lo, hi = X.indptr[i], X.indptr[i + 1]
                self._pending.pop(key, None)
                self._pending[key] = (expires, X.indices[lo:hi].copy(), X.data[lo:hi].copy())
            self.counts["remembered"] += len(ids)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self.counts["dropped"] += 1

    def label(self, key: str, label: float, weight: float = 1.0) -> bool:
        """Label the features kept under ``key``; False when no such id is kept (never given,
        already labelled, or expired)."""
        with self._lock:
            self._expire()
            kept = self._pending.pop(key, None)
            if kept is None:
                self.counts["unknown"] += 1
                return False
            self._ready.append((kept[1], kept[2], float(label), float(weight)))
            self.counts["labelled"] += 1
            return True

    def take(self, bits: int) -> Block | None:
        """The examples labelled since the last call, as one block of the stream (None: none)."""
        with self._lock:
            self._expire()
            ready, self._ready = self._ready, []
        if not ready:
            return None
        indptr = np.concatenate([[0], np.cumsum([r[0].size for r in ready])])
        X = sp.csr_matrix((np.concatenate([r[1] for r in ready]), np.concatenate([r[0] for r in ready]), indptr),
                          shape=(len(ready), 1 << bits))
        with self._lock:
            self.counts["learned"] += len(ready)
        return Block(X, np.array([r[2] for r in ready]), np.array([r[3] for r in ready]), {})

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            key, (expires, _, _) = next(iter(self._pending.items()))
            if expires > now:
                break
            del self._pending[key]
            self.counts["expired"] += 1
