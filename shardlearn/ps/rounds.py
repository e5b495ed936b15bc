"""When the learners of one stream checkpoint together and when they stop: a clock table
(``server.Clock``, so ``ssp``'s waits work on it) that also answers each learner's tick
with the clocks of the next checkpoint round and of the stop.

Learners (``online/learn_group.py``) tick after every block they learn, and also when
their source had nothing for a moment (an *idle* tick), so a learner waiting for data
never holds the others up. Every tick reports the block's examples, whether the learner
has *finished* (its file ended, or its stream stayed empty for ``--stop-when-idle``) and
whether it was asked to *stop* (SIGINT/SIGTERM). The answer is ``(clock, checkpoint_at,
stop_at)``; a learner whose clock reaches ``checkpoint_at`` takes part in the checkpoint
(every learner does, at the same round: a consistent cut, Chandy & Lamport 1985), and at
``stop_at`` it writes the last one and ends.

A round is fixed at *the highest clock + 1* when it is decided (a checkpoint when enough
examples or seconds have passed and every learner is past the previous round; the stop
when one learner asks for it or every learner has finished), so every learner is below it
and hears of it in the answer to the tick that brings it there. An idle tick advances a
learner's clock only up to the others' highest clock or a decided round: a learner with no
data follows the busiest one and never leads it, so a stop decided while one learner works
through a backlog is at most one block after that learner's clock.

>>> r = Rounds(2, every_examples=100)
>>> r.advance(0, 60, idle=False), r.advance(1, 0, idle=True)  # (clock, checkpoint_at, stop_at)
((1, -1, -1), (1, -1, -1))
>>> r.advance(0, 50, idle=False)  # 110 examples: a round at the highest clock + 1
(2, 3, -1)
>>> r.advance(1, 0, idle=True), r.advance(1, 0, idle=True), r.advance(1, 0, idle=True)
((2, 3, -1), (3, 3, -1), (3, 3, -1))
"""
from __future__ import annotations

import threading
import time

import numpy as np

from shardlearn.ps.server import Clock


class Rounds(Clock):
    """The clock table of ``n_workers`` stream learners with their checkpoint and stop rounds
    (``every_examples`` examples or ``every_seconds`` seconds between checkpoints; None: none
    but the last)."""

    def __init__(self, n_workers: int, every_examples: int | None = None, every_seconds: float | None = None):
        super().__init__(n_workers)
        self.every_examples, self.every_seconds = every_examples, every_seconds
        self.finished = np.zeros(n_workers, dtype=bool)
        self.since, self.last = 0, time.monotonic()  # examples and time since the last round was decided
        self.learned = 0  # examples learned by all the learners since the table was made
        self.checkpoint_at = self.stop_at = -1
        self.rounds_lock = threading.Lock()

    def advance(self, worker: int, examples: int, idle: bool, finished: bool = False, stop: bool = False):
        """Learner ``worker`` learned a block of ``examples`` (``idle``: its source had none);
        its new clock and the rounds ``(clock, checkpoint_at, stop_at)`` (-1: none decided)."""
        with self.rounds_lock:
            clock = int(self.clocks[worker])
            others = np.delete(self.clocks, worker)
            limit = max(int(others.max()) if others.size else clock,
                        self.checkpoint_at if self.checkpoint_at > clock else -1, self.stop_at)
            if not idle or clock + 1 <= limit:
                self.tick(worker)
                clock += 1
            self.since += int(examples)
            self.learned += int(examples)
            self.finished[worker] |= bool(finished)
            top = int(self.clocks.max())
            if self.stop_at < 0 and (stop or self.finished.all()):
                self.stop_at = top + 1
            elif self.stop_at < 0 and self.checkpoint_at < int(self.clocks.min()) and self._due():
                self.checkpoint_at = top + 1
                self.since, self.last = 0, time.monotonic()
            return clock, self.checkpoint_at, self.stop_at

    def _due(self) -> bool:
        if self.every_examples is not None and self.since >= self.every_examples:
            return True
        return self.every_seconds is not None and time.monotonic() - self.last >= self.every_seconds
