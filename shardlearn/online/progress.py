"""Progressive validation of a stream (Blum, Kalai & Langford 1999): each example is
scored before it is learned from, so the running mean loss is an honest held-out
estimate with no held-out set. Printed as Vowpal Wabbit prints it, a line at each
doubling example count (average loss since the start and since the last line, the
example count and weight, the last label, prediction and feature count), and summed
into the JSON line a run ends with. AUC from two 65,536-bin histograms of the
progressive probabilities (positives, negatives): constant memory for an endless
stream, ties within a bin counted half.

>>> import io, numpy as np
>>> out = io.StringIO()
>>> p = Progress("logistic", out)
>>> p.add(np.array([2.0, -1.0, 0.5, -3.0]), np.array([1.0, 0.0, 1.0, 0.0]), np.ones(4), np.array([3, 3, 2, 1]))
>>> s = p.summary(seconds=1.0)
>>> s["examples"], round(s["progressive_logloss"], 4), s["auc"]
(4, 0.2407, 1.0)
>>> out.getvalue().splitlines()[2].split()[:3]
['0.126928', '0.126928', '1']
"""
from __future__ import annotations

import numpy as np

BINS = 1 << 16
KEYS = {"logistic": "progressive_logloss", "squared": "progressive_squared_loss", "hinge": "progressive_hinge_loss",
        "squared_hinge": "progressive_squared_hinge_loss"}


def losses(loss: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each example's loss at score ``z`` (labels 0/1 for classification): log-loss, squared error
    ``(z - y)^2`` (as VW reports it), hinge or squared hinge."""
    if loss == "logistic":
        return np.logaddexp(0.0, z) - y * z
    if loss == "squared":
        return (z - y) ** 2
    m = np.maximum(0.0, 1.0 - (2.0 * y - 1.0) * z)
    return m if loss == "hinge" else m * m


class Progress:
    """Running progressive metrics; ``out`` (a text stream, or None) gets VW's table."""

    def __init__(self, loss: str, out=None, state: dict | None = None):
        self.loss, self.out = loss, out
        state = state or {}
        self.examples = int(state.get("examples", 0))
        self.weight, self.loss_sum = float(state.get("weight", 0.0)), float(state.get("loss_sum", 0.0))
        self.since_weight, self.since_loss = float(state.get("since_weight", 0.0)), float(state.get("since_loss", 0.0))
        self.next_line = int(state.get("next_line", 1))
        self.hist = np.zeros((2, BINS)) if "hist" not in state else np.array(state["hist"], dtype=np.float64)
        if out is not None and self.examples == 0:
            print(f"{'average':>10} {'since':>10} {'example':>12} {'example':>10} {'current':>8} {'current':>8} "
                  f"{'current':>8}\n{'loss':>10} {'last':>10} {'counter':>12} {'weight':>10} {'label':>8} "
                  f"{'predict':>8} {'features':>8}", file=out)

    @classmethod
    def combined(cls, loss: str, parts) -> "Progress":
        """The metrics of several learners of one stream together: ``parts`` are their
        ``(state(), hist)``; examples, weights and losses add, and so do the AUC histograms."""
        total = cls(loss)
        for state, hist in parts:
            total.examples += int(state["examples"])
            total.weight += float(state["weight"])
            total.loss_sum += float(state["loss_sum"])
            total.hist += hist
        return total

    def state(self) -> dict:
        """What a checkpoint keeps (``Progress(loss, out, state)`` goes on from it)."""
        return {"examples": self.examples, "weight": float(self.weight), "loss_sum": self.loss_sum,
                "since_weight": self.since_weight, "since_loss": self.since_loss, "next_line": self.next_line}

    def add(self, z: np.ndarray, y: np.ndarray, h: np.ndarray, nnz: np.ndarray) -> None:
        """A block's progressive scores ``z``, labels, importance weights and feature counts."""
        keep = h > 0
        z, y, h, nnz = z[keep], y[keep], h[keep], nnz[keep]
        if z.size == 0:
            return
        lv = losses(self.loss, z, y) * h
        if self.loss != "squared":
            prob = 0.5 * (1.0 + np.tanh(0.5 * z))
            b = np.minimum((prob * BINS).astype(np.int64), BINS - 1)
            pos = y > 0.5
            self.hist[1] += np.bincount(b[pos], weights=h[pos], minlength=BINS)
            self.hist[0] += np.bincount(b[~pos], weights=h[~pos], minlength=BINS)
        cw, cl = np.cumsum(h), np.cumsum(lv)
        first = self.examples
        while self.next_line <= first + z.size:  # the lines of VW's table inside this block
            i = self.next_line - first - 1
            w_all, l_all = self.weight + cw[i], self.loss_sum + cl[i]
            w_since, l_since = self.since_weight + cw[i], self.since_loss + cl[i]
            if self.out is not None:
                pred = z[i] if self.loss == "squared" else float(0.5 * (1.0 + np.tanh(0.5 * z[i])))
                print(f"{l_all / w_all:10.6f} {l_since / w_since:10.6f} {self.next_line:12d} {w_all:10.1f} "
                      f"{y[i]:8.4g} {pred:8.4f} {int(nnz[i]):8d}", file=self.out, flush=True)
            self.since_weight, self.since_loss = -cw[i], -cl[i]  # the block's rest is added below
            self.next_line *= 2
        self.examples += z.size
        self.weight += cw[-1]
        self.loss_sum += cl[-1]
        self.since_weight += cw[-1]
        self.since_loss += cl[-1]

    def auc(self) -> float | None:
        """Area under the ROC curve of the progressive probabilities (None: regression, one class)."""
        neg, pos = self.hist
        if self.loss == "squared" or pos.sum() == 0 or neg.sum() == 0:
            return None
        below = np.cumsum(neg) - neg  # negatives in lower bins
        return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))

    def summary(self, seconds: float, since: int = 0) -> dict:
        """The metrics so far; ``examples_per_s``: of the ``examples - since`` seen in ``seconds``."""
        return {"examples": self.examples, "weight": float(self.weight),
                KEYS[self.loss]: float(self.loss_sum / self.weight) if self.weight > 0 else None,
                "auc": self.auc(), "examples_per_s": (self.examples - since) / seconds if seconds > 0 else None}
