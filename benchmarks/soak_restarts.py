"""Soak test of restarts: trials of a random SIGKILL on a random worker at a random
moment of a 2-worker fit with checkpoints and ``max_restarts=1``. Each trial's final
objective and parameters are compared with a clean (uninterrupted) run of the same
settings; the restart time is from the driver seeing the failure to the new group
resuming from the checkpoint (process start, ``import torch``, rendezvous, data
mapping and checkpoint load included).

    python benchmarks/soak_restarts.py --trials 20 --rows 1000000 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from machine import facts  # noqa: E402

import shardlearn  # noqa: E402
from shardlearn.data.synthetic import make_d1  # noqa: E402
from shardlearn.runtime import group  # noqa: E402

STRATEGIES = {  # deterministic settings: a resumed run must end where the clean one ends
    "gd": dict(solver="gd", max_iter=60, tol=0.0),
    "lbfgs": dict(solver="lbfgs", max_iter=60, tol=1e-12),
    "bsp": dict(solver="sgd", strategy="bsp", max_iter=4, batch_size=1024, tol=None),
    "local_sgd": dict(solver="sgd", strategy="local_sgd", max_iter=6, batch_size=1024, tol=None),
}
EVERY = {"gd": 5, "lbfgs": 3, "bsp": 100, "local_sgd": "0.5s"}  # steps, or a time


def _estimator(name, **extra):
    return shardlearn.LogisticRegression(alpha=1e-4, workers=2, random_state=0, **STRATEGIES[name], **extra)


def trial(name, X, y, clean, clean_seconds, rng):
    """One fit with a SIGKILL at a random moment of its expected run time."""
    ckdir = tempfile.mkdtemp(prefix="soak-")
    victim = int(rng.integers(2))
    delay = float(rng.uniform(0.1, 0.9) * clean_seconds)
    pids = group.get(2).pids  # the live group the fit will use
    killed = []

    def kill():
        try:
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(True)
        except ProcessLookupError:
            pass

    timer = threading.Timer(delay, kill)
    est = _estimator(name, checkpoint_dir=ckdir, checkpoint_every=EVERY[name], max_restarts=1)
    t = time.perf_counter()
    timer.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            est.fit(X, y)
        completed, error = True, None
    except Exception as e:  # noqa: BLE001 - a failed trial is a result
        completed, error = False, f"{type(e).__name__}: {e}"
    finally:
        timer.cancel()
        shutil.rmtree(ckdir, ignore_errors=True)
    seconds = time.perf_counter() - t
    result = getattr(est, "fit_result_", None) if completed else None
    restarts = result.restarts if result is not None else []
    rec = {"strategy": name, "victim_rank": victim, "kill_after_s": round(delay, 3), "killed": bool(killed),
           "completed": completed, "error": error, "fit_seconds": round(seconds, 3), "restarts": len(restarts),
           "restart_seconds": restarts[-1].get("restart_seconds") if restarts else None,
           "resumed_from": result.reports[0].get("resumed_from") if result is not None and restarts else None}
    if completed:
        rec["objective"] = float(est.objective(X, y))
        rec["objective_rel_diff"] = abs(rec["objective"] / clean["objective"] - 1.0)
        rec["coef_max_diff"] = float(np.max(np.abs(est.coef_ - clean["coef"])))
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    X, y = make_d1(args.rows)
    rng = np.random.default_rng(args.seed)
    names = list(STRATEGIES)
    clean = {}
    for name in names:
        est = _estimator(name).fit(X, y)  # also starts the group before the first timed fit
        t = time.perf_counter()
        est = _estimator(name).fit(X, y)
        clean[name] = {"seconds": time.perf_counter() - t, "objective": float(est.objective(X, y)),
                       "coef": est.coef_.copy(), "n_iter": int(est.n_iter_)}
        print(f"clean {name}: {clean[name]['seconds']:.2f} s, objective {clean[name]['objective']:.8f}", flush=True)
    records = []
    for i in range(args.trials):
        name = names[i % len(names)]
        rec = trial(name, X, y, clean[name], clean[name]["seconds"], rng)
        records.append(rec)
        print(json.dumps(rec), flush=True)
    _write(args, records, clean)
    return 0 if all(r["completed"] for r in records) else 1


def _write(args, records, clean):
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "soak-restarts")
    with open(base + ".jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    done = [r for r in records if r["completed"]]
    restarted = [r for r in done if r["restarts"]]
    times = [r["restart_seconds"] for r in restarted if r["restart_seconds"] is not None]
    lines = [f"# Soak: random SIGKILL during 2-worker fits ({len(records)} trials)", "",
             f"D1 {args.rows:,} rows x 100 (dense float32), logistic, alpha 1e-4, 2 local workers, "
             f"checkpoints every {EVERY} (steps, or a time), max_restarts=1; the victim (rank 0 or 1) and the moment "
             f"(10% to 90% of the clean fit's time) drawn with seed {args.seed}.", "",
             f"- completed: **{len(done)} of {len(records)}**; a kill landed in {sum(r['killed'] for r in records)} "
             f"(the others ended before their moment), {len(restarted)} restarted",
             f"- largest relative objective difference to the clean run: "
             f"{max((r['objective_rel_diff'] for r in done), default=float('nan')):.2e}; largest coefficient "
             f"difference: {max((r['coef_max_diff'] for r in done), default=float('nan')):.2e}",
             f"- restart time (failure seen -> training resumed): median {np.median(times) if times else float('nan'):.2f} s, "
             f"max {max(times) if times else float('nan'):.2f} s", "",
             "| strategy | clean fit s | clean objective |", "|---|---|---|"]
    lines += [f"| {n} | {c['seconds']:.2f} | {c['objective']:.8f} |" for n, c in clean.items()]
    lines += ["", "| # | strategy | victim | kill at s | restarts | resumed from step | restart s | fit s | "
              "objective rel. diff | coef max diff |", "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(records, 1):
        rs = "" if r["restart_seconds"] is None else f"{r['restart_seconds']:.2f}"
        lines.append(f"| {i} | {r['strategy']} | {r['victim_rank']} | {r['kill_after_s']:.2f} | {r['restarts']} | "
                     f"{r['resumed_from'] if r['resumed_from'] is not None else ''} | {rs} | {r['fit_seconds']:.2f} | "
                     f"{r.get('objective_rel_diff', float('nan')):.1e} | {r.get('coef_max_diff', float('nan')):.1e} |")
    fx = facts()
    lines += ["", f"Machine: {fx['cpu']}, {fx['cores']} cores, {fx['memory_gib']} GiB; Python {fx['python']}, "
              f"numpy {fx['numpy']}, scipy {fx['scipy']}, scikit-learn {fx['scikit-learn']}."]
    with open(base + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
