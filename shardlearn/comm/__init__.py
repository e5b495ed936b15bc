"""Transport only: the ``Collective`` protocol and its backends.

>>> local().size
1
"""
from shardlearn.comm.base import Collective, CommStats, LocalCollective


def local() -> LocalCollective:
    return LocalCollective()


__all__ = ["Collective", "CommStats", "LocalCollective", "local"]
