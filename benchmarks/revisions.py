"""Git revisions of this repository taken out side by side, to run the same command under
each (``PYTHONPATH`` set to the tree): what ``startup.py``, ``bench_moments.py`` and
``bench_ftrl_codecs.py`` compare (the last two through ``each``).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     t = trees(["HEAD"], d)
    ...     os.path.isfile(os.path.join(next(iter(t.values())), "shardlearn", "__init__.py"))
    True
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

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


def each(script: str, revs: list, args: list) -> dict:
    """``{short sha: answer}``: ``python script --here *args`` run in each revision's tree, its
    answer the JSON its last printed line holds."""
    got = {}
    with tempfile.TemporaryDirectory() as folder:
        for sha, tree in trees(revs, folder).items():
            run = subprocess.run([sys.executable, os.path.abspath(script), "--here", *args], cwd=tree, check=True,
                                 capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=tree))
            got[sha] = json.loads(run.stdout.strip().splitlines()[-1])
    return got
