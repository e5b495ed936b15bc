"""Learning from a stream against Vowpal Wabbit on the same files (issue 15): one pass,
one example at a time, parsing included, progressive validation (each example scored
before it is learned from).

For each dataset the rows are written once as VW text (untimed): D2 (``--rows`` rows,
numeric feature names), elec2 and sea (``../shared/data``, in file order: both drift, so
order is the point), kddcup99 (hashed as ``bench_defaults.py`` does). Then, timed:

- ``shardlearn learn`` (the Python API of the command: ``online.learn.learn``, its
  default normalized rule, no penalty, a final checkpoint and model file included);
- Vowpal Wabbit 9 reading the text (``-d``, its parser included) and reading its own
  cache (written by an untimed first pass), logistic loss, no penalty.

Also the recovery time: ``shardlearn learn`` on D2 killed with SIGKILL after its second
checkpoint, then the same call again; the time from the kill to the restarted learner's
first new checkpoint (process start, imports, loading the checkpoint, one block learned).

    python benchmarks/bench_learn_vs_vw.py --rows 2000000 --out benchmarks/results/learn-vs-vw
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import DATA, save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from benchmarks.systems import write_vw  # noqa: E402

VW_RATE = 0.5  # VW's learning rate (shardlearn's default is 0.75): the same rule at the same settings


def _csv_to_vw(src: str, dst: str, label: str = "class") -> int:
    import pandas as pd

    df = pd.read_csv(src)
    y = df.pop(label).to_numpy()
    names = list(df.columns)
    vals = df.to_numpy(dtype=float)
    with open(dst, "w") as f:
        for yi, row in zip(y, vals):
            f.write(("1 |f " if yi > 0 else "-1 |f ") + " ".join(f"{n}:{v:.7g}" for n, v in zip(names, row)) + "\n")
    return len(y)


def write_data(name: str, folder: str, rows: int) -> tuple[str, int, int]:
    """The dataset as a VW text file: ``(path, rows, hash bits)``."""
    path = os.path.join(folder, f"{name}.vw")
    if name == "D2":
        from shardlearn.data.synthetic import D2_BITS, make_d2

        X, y = make_d2(rows)
        write_vw(path, X, y)
        return path, X.shape[0], D2_BITS
    if name == "elec2":
        return path, _csv_to_vw(os.path.join(DATA, "elec2", "elec.csv"), path), 18
    if name == "sea":
        return path, _csv_to_vw(os.path.join(DATA, "sea", "sea_big.csv"), path), 18
    from benchmarks.bench_defaults import load

    X, y, _, _ = load("kddcup99")
    write_vw(path, X, y)
    return path, X.shape[0], 18


def shardlearn_pass(path: str, bits: int, folder: str) -> dict:
    from shardlearn import OnlineLogisticRegression
    from shardlearn.online.learn import learn

    warm = os.path.join(folder, "warm.vw")  # load the compiled parser and kernel first (numba's cache)
    with open(path, "rb") as f, open(warm, "wb") as w:
        w.write(b"".join(f.readline() for _ in range(100)))
    learn(warm, OnlineLogisticRegression(hash_bits=bits, learning_rate=VW_RATE), fmt="vw",
          model_dir=os.path.join(folder, "warm-model"))
    shutil.rmtree(os.path.join(folder, "warm-model"))
    model = os.path.join(folder, "sl-model")
    t = time.perf_counter()
    out = learn(path, OnlineLogisticRegression(hash_bits=bits, learning_rate=VW_RATE), fmt="vw", model_dir=model)
    secs = time.perf_counter() - t
    shutil.rmtree(model, ignore_errors=True)
    return {"system": "shardlearn learn (normalized, parsing included)", "seconds": secs,
            "examples_s": out["examples"] / secs, "progressive_logloss": out["progressive_logloss"]}


def _vw_pass(pyvw, system: str, args: str) -> dict:
    t = time.perf_counter()
    w = pyvw.Workspace(args)
    w.run_parser()
    secs = time.perf_counter() - t
    row = {"system": system, "seconds": secs, "examples_s": w.get_weighted_examples() / secs,
           "progressive_logloss": w.get_sum_loss() / w.get_weighted_examples()}
    w.finish()
    return row


def vw_passes(path: str, bits: int, folder: str) -> list[dict]:
    from vowpalwabbit import pyvw

    opts = f"--loss_function logistic -b {bits} --quiet --holdout_off"
    cache = os.path.join(folder, "vw.cache")
    rows = [_vw_pass(pyvw, "Vowpal Wabbit 9, from the text (parsing included)", f"-d {path} {opts}")]
    _vw_pass(pyvw, "cache writing, untimed", f"-d {path} -c --cache_file {cache} {opts}")
    rows.append(_vw_pass(pyvw, "Vowpal Wabbit 9, from its cache", f"--cache_file {cache} {opts}"))
    os.unlink(cache)
    return rows


def recovery(path: str, bits: int, folder: str, every: int) -> dict:
    """Seconds from SIGKILL to the restarted learner's first new checkpoint."""
    model = os.path.join(folder, "kill-model")
    ckdir = os.path.join(model, "checkpoints")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    call = (f"from shardlearn import OnlineLogisticRegression as O; from shardlearn.online.learn import learn; "
            f"learn({path!r}, O(hash_bits={bits}, learning_rate={VW_RATE}), fmt='vw', model_dir={model!r}, "
            f"checkpoint_every={every})")
    env = dict(os.environ, PYTHONPATH=root)

    def steps():
        return [int(e.split("-")[1]) for e in os.listdir(ckdir) if e.startswith("ckpt-")] if os.path.isdir(ckdir) \
            else []

    proc = subprocess.Popen([sys.executable, "-c", call], env=env)
    while max(steps(), default=0) < 2 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    killed = time.perf_counter()
    proc.wait()
    last = max(steps())
    again = subprocess.Popen([sys.executable, "-c", call], env=env)
    while max(steps(), default=0) <= last and again.poll() is None:
        time.sleep(0.005)
    secs = time.perf_counter() - killed
    again.send_signal(signal.SIGKILL)
    again.wait()
    shutil.rmtree(model, ignore_errors=True)
    return {"recovery_s": secs, "checkpoint_every": every}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--data", default="D2,elec2,sea,kddcup99")
    ap.add_argument("--out", default="benchmarks/results/learn-vs-vw")
    args = ap.parse_args(argv)
    results, lines = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.data.split(","):
            path, n, bits = write_data(name, folder, args.rows)
            rows = [shardlearn_pass(path, bits, folder)] + vw_passes(path, bits, folder)
            for r in rows:
                results.append(dict(r, data=name, rows=n))
            lines += [f"**{name}** ({n:,} rows, 2^{bits} hashed columns)", "",
                      "| system | seconds | examples/s | progressive log-loss |", "|---|---|---|---|"]
            lines += [f"| {r['system']} | {r['seconds']:.2f} | {r['examples_s']:,.0f} | {r['progressive_logloss']:.5f} |"
                      for r in rows]
            lines.append("")
            if name == "D2":
                rec = recovery(path, bits, folder, every=max(n // 20, 1000))
                results.append(dict(rec, data=name))
                lines += [f"Recovery on D2 (SIGKILL after the 2nd checkpoint, every {rec['checkpoint_every']:,} "
                          f"examples): {rec['recovery_s']:.2f} s to the restarted learner's first new checkpoint.", ""]
            os.unlink(path)
    machine = facts()
    lines = ["# Learning from a stream: one pass against Vowpal Wabbit on the same VW text files", "",
             f"Machine: {machine}", ""] + lines
    os.makedirs(args.out, exist_ok=True)
    save(args.out, "stream", results, machine, lines)


if __name__ == "__main__":
    main()
