"""What a process pays before its first line of work, at git revisions side by side: the
figures behind ``docs/gotchas.md``'s "every process pays for the package's imports". Each
revision's tree is taken out with ``git archive`` and run from there (``PYTHONPATH``), in the
same interpreter; the commands alternate between revisions, ``--reps`` times, and the table
gives each command's median and range of wall seconds:

- ``import shardlearn.cli`` (what ``shardlearn ...`` imports before parsing),
- ``import shardlearn.runtime.worker`` (a local worker's own import, before its job's),
- ``shardlearn --help``,
- ``shardlearn train`` of a9a on 2 local workers (``bsp``, its defaults), start to exit.

    python benchmarks/startup.py --revs f2ca4fe HEAD --out benchmarks/results/startup.md
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import revisions  # noqa: E402
from benchmarks.machine import facts  # noqa: E402


def commands(data: str, out: str) -> dict:
    a9a = os.path.join(data, "a9a", "a9a")
    return {"import shardlearn.cli": ["-c", "import shardlearn.cli"],
            "import shardlearn.runtime.worker": ["-c", "import shardlearn.runtime.worker"],
            "shardlearn --help": ["-m", "shardlearn", "--help"],
            "shardlearn train a9a, 2 local workers": ["-m", "shardlearn", "train", a9a, "--workers", "2",
                                                     "--strategy", "bsp", "--out", out]}


def timed(tree: str, argv: list) -> float:
    env = dict(os.environ, PYTHONPATH=tree)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=tree, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revs", nargs="+", default=["HEAD"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        trees = revisions.trees(args.revs, folder)
        cmds = commands(os.path.abspath(args.data), os.path.join(folder, "model"))
        for tree in trees.values():  # numba's caches and the OS's file cache warm before any timed run
            for argv in cmds.values():
                timed(tree, argv)
        secs = {(c, sha): [] for c in cmds for sha in trees}
        for _ in range(args.reps):
            for c, argv in cmds.items():
                for sha, tree in trees.items():
                    secs[c, sha].append(timed(tree, argv))
    m = facts()
    lines = ["# Start-up seconds by revision (benchmarks/startup.py)", "",
             f"Wall seconds from a process's start to its exit, median (range) of {args.reps} runs a revision, "
             "revisions alternated. Machine: " + f"{m['cpu']}, {m['cores']} cores, Python {m['python']}.", "",
             "| command | " + " | ".join(trees) + " |", "|---|" + "---|" * len(trees)]
    for c in cmds:
        cells = [f"{np.median(secs[c, sha]):.2f} ({min(secs[c, sha]):.2f}-{max(secs[c, sha]):.2f})" for sha in trees]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
