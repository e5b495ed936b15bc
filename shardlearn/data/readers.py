"""Whole-data reading on top of ``open``: ``read(path, label=...) -> (X, y)``.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
>>> _ = open(p, "w").write("a,b,y\\n1,2,0\\n3,4,1\\n")
>>> X, y = read(p, label="y")
>>> X.tolist(), y.tolist()
([[1.0, 2.0], [3.0, 4.0]], [0, 1])
"""
from __future__ import annotations

from shardlearn.data.source import open as open_source


def read(path, label=None, format: str = "auto", n_features: int | None = None, require_label: bool = True, **options):
    """Read all rows of ``path``; options as for ``shardlearn.data.open``."""
    src = open_source(path, label, format=format, n_features=n_features, require_label=require_label, **options)
    return src.read()
