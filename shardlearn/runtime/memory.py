"""Peak resident memory of this process, per fit.

VmHWM from ``/proc/self/status``, not ``ru_maxrss``: a worker is forked and exec'd from the
driver, and ru_maxrss keeps the driver's peak across exec on Linux. Writing ``5`` to
``/proc/self/clear_refs`` restarts the count, so a persistent worker (or the benchmark
harness) reports each fit's own peak rather than the largest fit it ever ran.

>>> reset_peak_rss(); peak_rss_mb() > 0
True
"""
from __future__ import annotations


def reset_peak_rss() -> None:
    """Start this process's peak-memory count afresh (a no-op where /proc does not allow it)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB since start or the last ``reset_peak_rss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
