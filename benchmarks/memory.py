"""Peak resident memory of this process and of everything it started, sampled while a call
runs (psutil, every ``every`` seconds): the figure a user watching ``top`` would see.

Processes are put in three groups: ``driver`` (this Python process: its growth over its
size when the block began), ``jvm`` (Java descendants: Spark's driver and, in ``local[N]``
mode, its executors, which share that JVM) and ``workers`` (every other descendant: shardlearn's ranks, Dask workers and nannies, Ray's
raylet, GCS and actors, Spark's Python workers). Each group's peak is the largest sum of its
members' RSS seen in one sample; pages shared between processes (fork copy-on-write, shared
memory) count once per process, so a group's figure is an upper bound.

    with PeakRSS() as peak:
        est.fit(X, y)
    peak.mb  # {"driver": growth, "jvm": ..., "workers": ...}
"""
from __future__ import annotations

import os
import threading


class PeakRSS:
    def __init__(self, every: float = 0.1):
        import psutil

        self._psutil = psutil
        self._me = psutil.Process(os.getpid())
        self._every = every
        self._stop = threading.Event()
        self.mb = {"driver": 0.0, "jvm": 0.0, "workers": 0.0}

    def _sample(self) -> None:
        sums = {"driver": 0, "jvm": 0, "workers": 0}
        try:
            sums["driver"] = self._me.memory_info().rss
            kids = self._me.children(recursive=True)
        except self._psutil.Error:
            kids = []
        for p in kids:
            try:
                group = "jvm" if p.name().startswith("java") else "workers"
                sums[group] += p.memory_info().rss
            except self._psutil.Error:  # ended between the listing and the reading
                continue
        for k, v in sums.items():
            self.mb[k] = max(self.mb[k], v / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def __enter__(self) -> "PeakRSS":
        self._start = self._me.memory_info().rss / 2**20
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.mb["driver"] = max(0.0, self.mb["driver"] - self._start)
