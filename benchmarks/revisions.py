"""Git revisions of this repository taken out side by side, to run the same command under
each (``PYTHONPATH`` set to the tree): what ``startup.py`` and ``bench_moments.py`` compare.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     t = trees(["HEAD"], d)
    ...     os.path.isfile(os.path.join(next(iter(t.values())), "shardlearn", "__init__.py"))
    True
"""
from __future__ import annotations

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def trees(revs: list, folder: str) -> dict:
    """``{short sha: folder}``: each revision's committed tree, extracted by ``git archive``."""
    out = {}
    for rev in revs:
        sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout.strip()
        out[sha] = os.path.join(folder, sha)
        os.makedirs(out[sha], exist_ok=True)
        blob = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", out[sha]], input=blob, check=True)
    return out
