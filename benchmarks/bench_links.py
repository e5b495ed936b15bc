"""Compression on slow links (issue 18): four hosts made of network namespaces
(``benchmarks/hosts.py``: veth pairs on a bridge, each host's egress limited by ``tc tbf``
to 1 Gbit/s or 100 Mbit/s), each running the README's multi-node line
(``torchrun ... -m shardlearn train``) on its shard of D2's first ``--rows`` rows (LIBSVM,
2^22 hashed columns, 818,292 of them active at 2M rows: a 6.5 MB float64 gradient) and of
a9a, and of D1's first ``--d1-rows`` (Parquet, 100 dense features: its exchanges are
latency-bound). For each link, strategy and
codec: time to 1.01 x L* held out (the smallest budget of a sweep that reaches it; the
fit's own seconds from rank 0's metrics, start-up and file reading excluded), the bytes
rank 0 sent and the final held-out log-loss over L*; and, for the cost model
(``benchmarks/cost_model.py``), each link's collective seconds by size
(``benchmarks/comm_probe.py``: ``probe-LINK.json``, and over loopback with 2 and 4 local
processes). Needs root.

    python benchmarks/bench_links.py --out benchmarks/results/links
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.hosts import Hosts  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

TARGET = 1.01
PLANS = {  # strategy options, codecs, budgets by dataset (lbfgs iterations; epochs)
    "lbfgs": (["--strategy", "lbfgs", "--tol", "0"], ["none", "fp16", "int8"],
              ("--max-iter", {"D2": (2, 3, 4, 6, 10), "a9a": (4, 8, 15, 30), "D1": (3, 5, 8, 15, 30)})),
    "local_sgd": (["--strategy", "local_sgd"], ["none", "int8", "topk:0.1+int8", "sign"],
                  ("--max-iter", {"D2": (1, 2, 4), "a9a": (1, 2, 4), "D1": (1, 2, 4)})),
    # AdaGrad mini-batches of 256: dense averages of the whole change (every 8 steps; under sign 64 an
    # epoch at least), each worker's AdaGrad sums its own; not in the full sweep
    "local_sgd-adagrad": (["--strategy", "local_sgd", "--optimizer", "adagrad"], ["none", "int8", "sign"],
                          ("--max-iter", {"D2": (1, 2, 4), "a9a": (1, 2, 4), "D1": (1, 2, 4)})),
    # per example, merging the touched coordinates' changes every 256 rows a worker (coded_changes.py)
    "bsp": (["--strategy", "bsp"], ["none", "fp16", "int8"],
            ("--max-iter", {"D2": (1, 2, 4), "a9a": (1, 2, 4), "D1": (1, 2, 4)})),
    # per example over the parameter server (a shard on each host): coded pushes, packed pulls
    "asp": (["--strategy", "asp"], ["none", "fp16", "int8"],
            ("--max-iter", {"D2": (1, 2, 4), "a9a": (1, 2, 4), "D1": (1, 2, 4)})),
    # bsp over one dedicated server (the last host): rank 0 only learns, so its received bytes are
    # the pulls' answers (exact state rows plain, packed ones under a codec); not in the full sweep
    "bsp-server": (["--strategy", "bsp", "--servers", "1"], ["none", "fp16", "int8"],
                   ("--max-iter", {"D2": (1, 2, 4), "a9a": (1, 2, 4), "D1": (1, 2, 4)})),
}
SWEEP = ("lbfgs", "local_sgd", "bsp", "asp")  # the plans of a run without --only


def chosen(only) -> list:
    """The plans a run sweeps: the one ``--only`` names (``[dataset, plan]``), else ``SWEEP``."""
    return [only[1]] if only is not None else list(SWEEP)


def waited(steps: list) -> float:
    """Seconds rank 0 spent in collectives waiting for a slower rank: per call where every rank
    timed its calls (rank 0's communication seconds less ``transfer_seconds``, each call's
    shortest duration over the ranks: ``runtime/progress.by_rank``), else per step, the slowest
    rank's compute seconds less rank 0's (the rest of its communication seconds is transfer)."""
    out = 0.0
    for s in steps:
        theirs = [c for c in s.get("compute_seconds_by_rank") or [] if c is not None]
        if "transfer_seconds" in s:
            out += max(s["comm_seconds"] - s["transfer_seconds"], 0.0)
        elif theirs:
            out += max(max(theirs) - s["compute_seconds"], 0.0)
    return out


def write(folder, name, X, y):
    from sklearn.datasets import dump_svmlight_file

    path = os.path.join(folder, f"{name}.svm")
    dump_svmlight_file(X, y, path, zero_based=False)
    return path


def parquet(folder, name, X, y):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.path.join(folder, f"{name}.parquet")
    cols = {f"x{j}": X[:, j] for j in range(X.shape[1])}
    pq.write_table(pa.table(dict(cols, target=y)), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--d1-rows", type=int, default=200_000)
    ap.add_argument("--only", help="DATASET:PLAN (e.g. D2:local_sgd): that sweep alone, with --budgets and --codecs, "
                                   "saved as OUT/NAME.jsonl and .md")
    ap.add_argument("--budgets", default="4,8")
    ap.add_argument("--codecs", default="none,int8")
    ap.add_argument("--name", default="links")
    ap.add_argument("--links", default="1gbit,100mbit")
    ap.add_argument("--hosts", type=int, default=4, help="namespaced hosts (2: one per core of this machine, "
                    "so no host waits for another's compute to be scheduled)")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--render", action="store_true", help="only redraw OUT/NAME.md from its .jsonl")
    args = ap.parse_args()
    if args.render:
        path = os.path.join(args.out, f"{args.name}.jsonl")
        recs = [json.loads(line) for line in open(path)]
        with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
            f.write("\n".join(render(recs, recs[0].get("machine", {}), args.rows, args.d1_rows,
                                     recs[0].get("workers", 4))) + "\n")
        return
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore")
    from sklearn.datasets import load_svmlight_file
    from sklearn.metrics import log_loss

    import shardlearn
    from shardlearn.data.synthetic import make_d1, make_d2

    rows, port = [], 29700
    probe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "comm_probe.py")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    only = args.only.split(":") if args.only else None  # one dataset and plan, budgets and codecs given
    if only is not None and (len(only) != 2 or only[1] not in PLANS):
        ap.error(f"--only {args.only}: expected DATASET:PLAN with PLAN one of {', '.join(PLANS)}")
    for p in (2, 4) if only is None else ():  # loopback: the same collectives between local processes
        subprocess.run([torchrun, "--standalone", "--nproc-per-node", str(p), probe,
                        os.path.join(args.out, f"probe-loopback-{p}.json")], capture_output=True, check=True)
    with tempfile.TemporaryDirectory() as folder:
        X, y = make_d2(args.rows)
        Xt, yt = make_d2(args.rows // 10, split="test")
        sets = [("D2", write(folder, "d2", X, y), Xt, yt, 1e-6, [])]
        Xa, ya = load_svmlight_file(os.path.join(args.data, "a9a", "a9a"), n_features=123)
        Xat, yat = load_svmlight_file(os.path.join(args.data, "a9a", "a9a.t"), n_features=123)
        sets.append(("a9a", os.path.join(args.data, "a9a", "a9a"), Xat, (yat > 0).astype(int), 1e-4, []))
        X1, y1 = make_d1(args.d1_rows)  # dense: 101 coordinates, latency-bound exchanges
        X1t, y1t = make_d1(args.d1_rows // 10, split="test")
        sets.append(("D1", parquet(folder, "d1", X1, y1), X1t, y1t, 1e-6, ["--label", "target"]))
        refs = {"D2": (X, y), "a9a": (Xa, (ya > 0).astype(int)), "D1": (X1, y1)}
        # the compiled kernels built (numba caches them next to their source, for the hosts' processes too)
        # before any timed run, so no codec's first run pays the compilation: by the same command on 2 local
        # workers over a small file of each format, since what only a group runs (the sparse average's
        # column marks) is compiled there alone and rows read from Parquet are typed apart from in-memory
        # ones (an in-memory warm-up on one worker left D1's first local_sgd run 14 s of compiling)
        small = [(write(folder, "a9a-warm", Xa[:2000], ya[:2000]), []),
                 (parquet(folder, "d1-warm", X1[:2000], y1[:2000]), ["--label", "target"])]
        # sparse rows (a9a, D2) and dense ones (D1): two kernels each
        for plan in dict.fromkeys(("lbfgs", "local_sgd", "bsp", "asp", *chosen(only))):
            for warm, read in small:
                subprocess.run([sys.executable, "-m", "shardlearn", "train", warm, *PLANS[plan][0], "--max-iter", "1",
                                "--workers", "2", "--out", os.path.join(folder, "warm"), *read], check=True,
                               capture_output=True)
        for name, path, Xt_, yt_, alpha, read in sets:
            if only is not None and name != only[0]:
                continue
            Xr, yr = refs[name]
            best = shardlearn.LogisticRegression(alpha=alpha, tol=1e-9, max_iter=2000, workers=1).fit(Xr, yr)
            lstar = log_loss(yt_, best.predict_proba(Xt_[:, : Xr.shape[1]])[:, 1])
            print(f"{name}: L* {lstar:.5f}", flush=True)
            for link in args.links.split(","):
                with Hosts(args.hosts, rate=link) as hosts:
                    if name == "D2" and only is None:  # the collectives' own seconds on this link, for the cost model
                        port += 1
                        probe_out = os.path.join(args.out, f"probe-{link}.json")
                        print(f"  {link}: probe", hosts.torchrun([probe, probe_out], port=port, timeout=600)[0],
                              flush=True)
                    for plan in chosen(only):
                        opts, codecs, (flag, by_set) = PLANS[plan]
                        budgets = by_set[name] if only is None else [int(b) for b in args.budgets.split(",")]
                        for codec in codecs if only is None else args.codecs.split(","):
                            rec = {"dataset": name, "link": link, "strategy": plan, "codec": codec, "workers": args.hosts,
                                   "rows": int(Xr.shape[0]), "target_budget": None, "target_seconds": None}
                            for b in budgets:
                                port += 1
                                out = os.path.join(folder, f"m{port}")
                                metrics = os.path.join(folder, f"m{port}.jsonl")
                                codes, logs = hosts.torchrun(
                                    ["-m", "shardlearn", "train", path, "--alpha", str(alpha), "--random-state", "0",
                                     "--compression", codec, flag, str(b), "--metrics", metrics, "--out", out, *opts,
                                     *read],
                                    port=port, timeout=900)
                                if codes != [0] * args.hosts:
                                    print(f"  {link} {plan} {codec} {b}: failed {codes}\n{logs[0][-1500:]}", flush=True)
                                    break
                                steps = [json.loads(line) for line in open(metrics)]
                                est = shardlearn.load(out)
                                width = est.coef_.shape[-1]
                                ratio = log_loss(yt_, est.predict_proba(Xt_[:, :width])[:, 1]) / lstar
                                secs = steps[-1]["time"]
                                sent = sum(s["bytes_sent"] for s in steps)
                                later = steps[1:] or steps
                                steady = sum(s["bytes_sent"] for s in later) / len(later)
                                setup = max(steps[0]["bytes_sent"] - steady, 0)
                                rec.update(seconds=secs, budget=b, held_out_over_L=ratio, bytes_sent_rank0=sent,
                                           wire_bytes_sent_rank0=sum(s.get("wire_bytes_sent", 0) for s in steps),
                                           wire_bytes_received_rank0=sum(s.get("wire_bytes_received", 0)
                                                                         for s in steps),
                                           setup_bytes_rank0=setup, steps=len(steps),
                                           calls_rank0=sum(s.get("calls", 0) for s in steps),
                                           comm_seconds=sum(s["comm_seconds"] for s in steps),
                                           wait_seconds=waited(steps),
                                           wait_per_call=all("transfer_seconds" in s for s in steps),
                                           compute_seconds=sum(s.get("compute_seconds", 0.0) for s in steps),
                                           width=int(width))
                                print(f"  {link} {plan} {codec} {flag} {b}: {secs:.1f} s, {ratio:.5f} x L*, "
                                      f"{sent / 1e6:.1f} MB sent by rank 0 ({rec['wire_bytes_sent_rank0'] / 1e6:.1f} "
                                      f"on the wire, {rec['wire_bytes_received_rank0'] / 1e6:.1f} received), "
                                      f"comm {rec['comm_seconds']:.2f} s of which waiting "
                                      f"{rec['wait_seconds']:.2f}", flush=True)
                                if ratio <= TARGET:
                                    rec.update(target_budget=b, target_seconds=secs)
                                    break
                            rows.append(rec)
    machine = facts()
    save(args.out, args.name, rows, machine, render(rows, machine, args.rows, args.d1_rows, args.hosts))


def _size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def render(rows: list, machine: dict, d2_rows: int, d1_rows: int, hosts: int = 4) -> list:
    """The Markdown table of a run's records (``--render`` redraws it from a saved ``.jsonl``)."""
    lines = ["# Compression on shaped links (benchmarks/bench_links.py)", "",
             f"{hosts} hosts (network namespaces, veth on a bridge, egress of each host limited by tc tbf), the README's "
             f"torchrun line on each; D2 first {d2_rows:,} rows (LIBSVM, 2^22 columns; test: a tenth as many), "
             f"a9a whole, D1 first {d1_rows:,} rows (Parquet); L* the held-out log-loss of a tight one-process fit "
             f"on the same rows. Time to {TARGET} x L* held out: the first budget of the sweep that reaches it, the "
             "fit's own seconds (rank 0's metrics; start-up and file reading excluded, the setup's agreements of "
             "active columns and scaling included). Bytes: sent by rank 0 over that fit, as its collectives "
             "counted them and as its TCP connections carried them (TCP_INFO), and what they received (a dash: "
             "not recorded by that run). Communication seconds: rank 0's time in collectives, of which waiting: "
             "its seconds in them less each call's shortest duration over the ranks (runs since 2026-12-06; "
             "before: the slowest rank's compute less rank 0's, summed over steps). "
             f"One run each; this machine has 2 cores for the {hosts} hosts"
             + (", so each host's compute runs at about half speed." if hosts > 2 else "."),
             f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores.", "",
             "| dataset | link | strategy | codec | time to 1.01 x L* (s) | budget | sent by rank 0, counted | "
             "on the wire | received on the wire | comm s | of which waiting | held-out / L* |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = f"{r['target_seconds']:.1f}" if r["target_seconds"] is not None else "not reached"
        lines.append(f"| {r['dataset']} | {r['link']} | {r['strategy']} | {r['codec']} | {t} | {r.get('budget', '-')} | "
                     f"{_size(r.get('bytes_sent_rank0', 0))} | {_size(r.get('wire_bytes_sent_rank0', 0))} | "
                     f"{_size(r['wire_bytes_received_rank0']) if 'wire_bytes_received_rank0' in r else '-'} | "
                     f"{r.get('comm_seconds', 0):.2f} | {r.get('wait_seconds', 0):.2f} | "
                     f"{r.get('held_out_over_L', float('nan')):.5f} |")
    return lines


if __name__ == "__main__":
    main()
