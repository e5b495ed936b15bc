"""Delayed labels: the features a prediction was made on, kept by the request's ``id`` for a
while, so a label that comes later (``POST /feedback``) trains the learner on exactly what
the model saw, as Vowpal Wabbit's contextual-bandit and ad-click loops do (a click is known
minutes after the impression). Kept ``ttl_s`` seconds (and at most ``max_pending``, the
oldest dropped first); what expires unlabelled is counted, never learned.

The server thread remembers and labels; the learner takes the labelled examples as one more
block between two blocks of its stream (``take``). One lock guards both sides. Labels may
also come as a stream of their own (``read_labels``: JSON lines ``{"id", "label", "weight"}``
from a followed file or a Redis stream, read by a thread).

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

    def label_many(self, ids, labels, weights, bad: int = 0) -> int:
        """``label`` for each; how many ids were kept. ``bad``: lines of a labels stream that were
        no such label, counted."""
        with self._lock:
            self.counts["bad_label_lines"] += bad
        return sum(self.label(str(k), float(y), float(w)) for k, y, w in zip(ids, labels, weights))

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

    def tally(self) -> dict:
        """The counts, copied under the lock (the server thread and the learner change them)."""
        with self._lock:
            return dict(self.counts)

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


def read_labels(source: str, feedback: Feedback, stop: threading.Event, positive: str | None = None,
                wait_s: float = 0.05) -> threading.Thread:
    """A thread labelling ``feedback``'s ids from ``source``: JSON lines ``{"id": ..., "label": ...,
    "weight": ...}`` (weight optional), a file followed as it grows or a ``redis://`` stream (its
    entries acknowledged once applied). A line that is not such an object is counted
    (``counts["bad_label_lines"]``), never learned."""
    from shardlearn.data import jsonlines
    from shardlearn.online import sources
    from shardlearn.online.fields import label_value

    src = sources.open_source(source, follow=True)

    def run():
        for buf, end, _, _ in src.blocks(None, stop=stop.is_set):
            ids, ys, ws, bad = [], [], [], 0
            for _, obj in jsonlines.lines(buf):
                y = label_value(obj.get("label"), positive) if isinstance(obj, dict) else "not an object"
                w = obj.get("weight", 1.0) if isinstance(obj, dict) else None
                if isinstance(y, str) or not isinstance(obj.get("id"), (str, int)) or \
                        not isinstance(w, (int, float)) or w < 0:
                    bad += 1
                    continue
                ids.append(obj["id"])
                ys.append(y)
                ws.append(w)
            feedback.label_many(ids, ys, ws, bad=bad)
            src.committed(end)

    thread = threading.Thread(target=run, name="shardlearn-labels", daemon=True)
    thread.start()
    return thread
