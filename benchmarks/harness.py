"""The benchmark harness (``shardlearn bench``): every shardlearn strategy and the systems
users would pick instead, on D1, D2 (``../shared/BENCHMARKS.md``) and a9a, in one run.

For each dataset: generate it (a smaller size is the first rows of the larger set), compute
L* with a float64 reference solver (cached under ``benchmarks/cache/``), then sweep each
system's budget (iterations, epochs, passes). Budgets are taken in rounds; within a round
every system runs once per repetition, systems alternating, so machine noise is shared; a
system stops sweeping once its median reaches 1.001 x L*. Each fit records fit seconds,
held-out log-loss, accuracy, AUC, peak RSS and bytes communicated (JSON lines); the
Markdown table gives each system's time to 1.01 x L* and 1.001 x L* (the smallest median
over budgets that reach it) and its ratio to the best competitor's; the PNG plots held-out
log-loss / L* against fit time.

    python benchmarks/harness.py --size quick --out benchmarks/results/bench-quick
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(__file__))
from machine import facts  # noqa: E402
from systems import ALPHA, competitor_systems, shardlearn_systems  # noqa: E402

from shardlearn.runtime.memory import peak_rss_mb, reset_peak_rss  # noqa: E402

SIZES = {"quick": {"D1": (20_000, 10_000), "D2": (20_000, 10_000)},
         "full": {"D1": (2_000_000, 200_000), "D2": (2_000_000, 200_000)}}
# quick: the first 3 budgets of each sweep, and a sweep stops after a budget whose median fit exceeds this
LIMITS = {"quick": {"budgets": 3, "fit_seconds": 10.0}, "full": {"budgets": None, "fit_seconds": 60.0}}
CACHE = os.path.join(os.path.dirname(__file__), "cache", "lstar-harness.json")


@dataclass
class Dataset:
    name: str
    X: object
    y: np.ndarray
    Xt: object
    yt: np.ndarray
    lstar: float = float("nan")

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.X)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


def load(name: str, rows: int, test_rows: int, data_dir: str) -> Dataset:
    if name == "D1":
        from shardlearn.data.synthetic import make_d1

        X, y = make_d1(rows)
        Xt, yt = make_d1(test_rows, split="test")
    elif name == "D2":
        from shardlearn.data.synthetic import make_d2

        X, y = make_d2(rows)
        Xt, yt = make_d2(test_rows, split="test")
    else:
        from sklearn.datasets import load_svmlight_file

        X, y = load_svmlight_file(os.path.join(data_dir, "a9a", "a9a"), n_features=123)
        Xt, yt = load_svmlight_file(os.path.join(data_dir, "a9a", "a9a.t"), n_features=123)
        X, Xt, y, yt = _int32(X), _int32(Xt), (y > 0).astype(int), (yt > 0).astype(int)
        if rows:
            X, y = X[:rows], y[:rows]
    return Dataset(name, X, np.asarray(y), Xt, np.asarray(yt))


def _int32(X):
    """CSR with 32-bit indices: load_svmlight_file gives 64-bit ones, which saga and SGDClassifier refuse."""
    X = X.tocsr()
    return sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)), shape=X.shape)


def metrics(w, b, Xt, yt) -> dict:
    from sklearn.metrics import roc_auc_score

    z = np.asarray(Xt @ w, dtype=np.float64).ravel() + b
    ll = float(np.mean(np.logaddexp(0, z) - yt * z))
    return {"heldout_logloss": ll, "accuracy": float(np.mean((z > 0) == (yt > 0))),
            "auc": float(roc_auc_score(yt, z)) if len(np.unique(yt)) == 2 else float("nan")}


def lstar(ds: Dataset) -> float:
    """Held-out log-loss of the float64 reference optimum (gradient max-norm < 1e-8), cached."""
    from bench_distributed import reference

    key = f"{ds.name}:{ds.X.shape[0]}:{ds.Xt.shape[0]}:{ALPHA}"
    cache = json.load(open(CACHE)) if os.path.exists(CACHE) else {}
    if key not in cache:
        keep, w, b, _ = reference(ds.X, ds.y, ALPHA)
        full = np.zeros(ds.n_features)
        full[keep] = w
        cache[key] = metrics(full, b, ds.Xt, ds.yt)["heldout_logloss"]
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        with open(CACHE, "w") as f:
            json.dump(cache, f, indent=1)
    return float(cache[key])


def run_dataset(ds: Dataset, systems, reps: int, out, log=print, max_fit_seconds=float("inf")) -> list[dict]:
    records, skipped, done = [], {}, set()
    live = []

    def keep(rec):
        records.append(rec)
        out.write(json.dumps(rec) + "\n")
        out.flush()

    for s in systems:
        why = s.unavailable(ds)
        if why:
            skipped[s.name] = why
            continue
        try:
            s.prepare(ds.X, ds.y)
            live.append(s)
        except Exception as e:  # noqa: BLE001 - a competitor that cannot start is reported, not fatal
            skipped[s.name] = f"could not start: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    for name, why in skipped.items():
        keep({"dataset": ds.name, "system": name, "skipped": why})
        log(f"{ds.name} {name}: skipped ({why})")
    for i in range(max((len(s.budgets) for s in live), default=0)):
        for rep in range(reps):
            for s in live:
                if i >= len(s.budgets) or s.name in done:
                    continue
                budget = s.budgets[i]
                reset_peak_rss()
                t = time.perf_counter()
                try:
                    w, b, fx = s.fit(ds.X, ds.y, budget)
                except Exception as e:  # noqa: BLE001
                    done.add(s.name)
                    keep({"dataset": ds.name, "system": s.name, "skipped": f"failed: {type(e).__name__}: {e}"[:300]})
                    continue
                secs = time.perf_counter() - t
                rec = {"dataset": ds.name, "system": s.name, "competitor": s.competitor, "budget": budget,
                       "budget_name": s.budget_name, "rep": rep, "fit_seconds": fx.pop("fit_seconds", secs),
                       "peak_rss_mb": peak_rss_mb(), "lstar": ds.lstar, **metrics(w, b, ds.Xt, ds.yt), **fx}
                rec["ratio_to_lstar"] = rec["heldout_logloss"] / ds.lstar
                keep(rec)
                log(f"{ds.name} {s.name} {s.budget_name}={budget} rep {rep}: {rec['fit_seconds']:.2f} s, "
                    f"{rec['ratio_to_lstar']:.5f} x L*")
        for s in live:
            budget = s.budgets[min(i, len(s.budgets) - 1)]
            med = budget_medians(records, s.name).get(budget)
            if med is not None and med[1] <= 1.001:
                done.add(s.name)
            if s.name not in done and med is not None and med[0] > max_fit_seconds and i + 1 < len(s.budgets):
                done.add(s.name)
                keep({"dataset": ds.name, "system": s.name,
                      "stopped": f"sweep stopped after {budget} {s.budget_name}: fits took over {max_fit_seconds:.0f} s"})
    return records


def budget_medians(records, name) -> dict:
    """``{budget: (median fit seconds, median held-out / L*)}`` of one system, budgets in the
    order they were run: the numbers every decision, table cell and plot point comes from."""
    by = {}
    for r in records:
        if r["system"] == name and "budget" in r:
            by.setdefault(r["budget"], []).append(r)
    return {b: (float(np.median([r["fit_seconds"] for r in rs])), float(np.median([r["ratio_to_lstar"] for r in rs])))
            for b, rs in by.items()}


def time_to(records, name, target):
    """``(median seconds, budget, median ratio)`` of the cheapest budget whose median reaches ``target``."""
    hits = [(secs, b, ratio) for b, (secs, ratio) in budget_medians(records, name).items() if ratio <= target]
    return min(hits, key=lambda h: h[0]) if hits else None


def table(ds_name, records) -> list[str]:
    recs = [r for r in records if r["dataset"] == ds_name]
    names = list(dict.fromkeys(r["system"] for r in recs))
    lines = []
    for target in (1.01, 1.001):
        comp = [time_to(recs, n, target) for n in names
                if any(r.get("competitor") for r in recs if r["system"] == n)]
        comp = [c[0] for c in comp if c is not None]
        best = min(comp) if comp else None
        lines += ["", f"**{ds_name}, time to {target} x L*** (best competitor: "
                      f"{'none reached it' if best is None else f'{best:.2f} s'})", "",
                  "| system | fit s (median) | budget | held-out / L* | ratio to best competitor |", "|---|---|---|---|---|"]
        for n in names:
            skip = next((r["skipped"] for r in recs if r["system"] == n and "skipped" in r), None)
            rs = [r for r in recs if r["system"] == n and "budget" in r]
            if skip and not rs:
                lines.append(f"| {n} | skipped: {skip} | | | |")
                continue
            hit = time_to(recs, n, target)
            if hit is None:
                low = min(ratio for _, ratio in budget_medians(recs, n).values())
                stop = next((r["stopped"] for r in recs if r["system"] == n and "stopped" in r), None)
                lines.append(f"| {n} | not reached{'; ' + stop if stop else ''} | up to {rs[-1]['budget']} "
                             f"{rs[-1]['budget_name']} | best {low:.4f} | |")
                continue
            ratio = "" if best is None else f"{hit[0] / best:.2f}"
            lines.append(f"| {n} | {hit[0]:.2f} | {hit[1]} {rs[0]['budget_name']} | {hit[2]:.4f} | {ratio} |")
    return lines


def plot(ds_name, records, path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    recs = [r for r in records if r["dataset"] == ds_name and "budget" in r]
    for n in dict.fromkeys(r["system"] for r in recs):
        ax.plot(*zip(*sorted(budget_medians(recs, n).values())), marker="o", label=n, linestyle="-" if n.startswith("shardlearn") else "--")
    ax.axhline(1.01, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(1.001, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_ylim(0.995, 1.15)
    ax.set_xlabel("fit seconds (median)")
    ax.set_ylabel("held-out log-loss / L*")
    ax.set_title(ds_name)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="shardlearn benchmark harness")
    ap.add_argument("--size", choices=("quick", "full"), default="quick")
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets", nargs="+", default=["D1", "D2", "a9a"])
    ap.add_argument("--rows", type=int, help="override the training rows (tests)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", nargs="+", help="run only systems whose name contains one of these")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild bench.md and the plots from OUT/bench.jsonl (e.g. of a run that was stopped)")
    ap.add_argument("--replace-from", metavar="DIR",
                    help="with --report-only: the systems measured in DIR/bench.jsonl replace OUT's rows of the "
                         "same systems and datasets (OUT/bench.jsonl is rewritten, replaced rows marked)")
    ap.add_argument("--note", default="", help="with --report-only: a sentence added to bench.md's header")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.report_only:
        records = _read_jsonl(os.path.join(args.out, "bench.jsonl"))
        if args.replace_from:
            records = replace_systems(records, _read_jsonl(os.path.join(args.replace_from, "bench.jsonl")),
                                      os.path.basename(os.path.normpath(args.replace_from)))
            with open(os.path.join(args.out, "bench.jsonl"), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        _write_md(args, records, float("nan"))
        return 0
    t0 = time.perf_counter()
    records = []
    with open(os.path.join(args.out, "bench.jsonl"), "w") as out:
        for name in args.datasets:
            rows, test_rows = SIZES[args.size].get(name, (None, None))
            if args.rows:
                rows, test_rows = args.rows, max(args.rows // 2, 1000)
            ds = load(name, rows, test_rows, args.data)
            ds.lstar = lstar(ds)
            print(f"{name}: {ds.X.shape[0]:,} x {ds.n_features:,}, L* {ds.lstar:.5f}", flush=True)
            systems = shardlearn_systems(ds) + competitor_systems()
            if args.only:
                systems = [s for s in systems if any(k in s.name for k in args.only)]
            limit = LIMITS[args.size]
            for s in systems:
                s.budgets = s.budgets[: limit["budgets"]]
            records += run_dataset(ds, systems, args.reps, out, log=lambda m: print(m, flush=True),
                                   max_fit_seconds=limit["fit_seconds"])
            for s in systems:
                s.close()
            _write_md(args, records, time.perf_counter() - t0)  # after each dataset: a long run keeps what it has
    return 0


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def replace_systems(records, newer, run):
    """``records`` with every (dataset, system) that ``newer`` measured taken from ``newer``
    instead, in the place of the rows they replace, each marked ``"run": run``."""
    fresh = {}
    for r in newer:
        fresh.setdefault((r["dataset"], r["system"]), []).append(dict(r, run=run))
    merged, placed = [], set()
    for r in records:
        key = (r["dataset"], r["system"])
        if key not in fresh:
            merged.append(r)
        elif key not in placed:
            merged += fresh[key]
            placed.add(key)
    return merged + [r for key, rows in fresh.items() if key not in placed for r in rows]


def _write_md(args, records, seconds):
    fx = facts()
    lines = [f"# Benchmark ({args.size})", "",
             f"Logistic regression, alpha {ALPHA}, held-out log-loss against L* (float64 reference). "
             f"Medians over {args.reps} repetitions, systems alternating. "
             + (f"Whole run {seconds / 60:.1f} min." if seconds == seconds else "Table rebuilt from bench.jsonl.")
             + (f" {args.note}" if args.note else "")
             + (" Quick size: the first 3 budgets of each sweep." if args.size == "quick" else "")
             + f" A sweep stops after a budget whose median fit takes over {LIMITS[args.size]['fit_seconds']:.0f} s"
               " or whose median reaches 1.001 x L*.",
             "Fit time is the fit call with data in memory (Spark: cached DataFrame; Dask: persisted arrays; "
             "VW: its cache file from a text file written untimed, parsing included; PyTorch DDP: the training "
             "loop inside the processes, process start excluded). Peak RSS (`peak_rss_mb`) is the harness "
             "process's: the whole of an in-process system (shardlearn in 1 process, scikit-learn, VW through "
             "pyvw), only the driver side of Spark, Dask-ML and DDP; shardlearn's workers report theirs in "
             "`worker_peak_rss_mb`."]
    for name in dict.fromkeys(r["dataset"] for r in records):
        lines += table(name, records)
        if plot(name, records, os.path.join(args.out, f"bench-{name}.png")):
            lines += ["", f"![{name}](bench-{name}.png)"]
    lines += ["", f"Machine: {fx['cpu']}, {fx['cores']} cores, {fx['memory_gib']} GiB; Python {fx['python']}, "
                  f"numpy {fx['numpy']}, scipy {fx['scipy']}, scikit-learn {fx['scikit-learn']}; "
                  + ", ".join(f"{m} {_version(m)}" for m in ("torch", "vowpalwabbit", "pyspark", "dask_ml"))]
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _version(module):
    from importlib import metadata

    try:
        return metadata.version({"dask_ml": "dask-ml"}.get(module, module))
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
