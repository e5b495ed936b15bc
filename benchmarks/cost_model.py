"""A cost model of a distributed fit (issue 18, item 5): time = compute + communication, the
communication of each collective an alpha-beta cost (Hockney 1994; Thakur, Rabenseifner &
Gropp 2005) whose constants are fitted to this machine's measurements
(``benchmarks/comm_probe.py`` over loopback and each shaped link, written by
``benchmarks/bench_links.py``):

- ring allreduce of n bytes over p ranks: ``2 (p - 1) alpha + 2 (p - 1) / p * n * beta``;
- tree (recursive halving/doubling) allreduce: ``2 log2(p) alpha + 2 (p - 1) / p * n * beta``
  (fewer latency terms, the same volume);
- allgather of an n-byte payload per rank (a sparsifier's exchange): ``(p - 1) (alpha + n beta)``;
- a quantizer's two-phase sum (all-to-all, then allgather, of one chunk's payload of
  ``n / p`` coordinates): ``(p - 1) (alpha + n beta)`` twice, the all-to-all's constants
  and the allgather's;
- parameter-server push or pull of n bytes split over s shards: ``alpha + n beta``, with the
  servers' links carrying ``p n / s`` bytes per round;
- per-example ``bsp``'s merges: allgathers of a width each merge sizes, priced from the run's
  calls and bytes (``merges``);
- every other collective of a run (the metrics' ``calls`` less the full-width calls its bytes
  make: a loss, a count, a line search's flag, a gradient narrower than the full width) a
  small allreduce: its latency terms alone.

The model is checked against the runs of ``bench_links.py`` (4 hosts, and 2 with ``--hosts 2``): its transfer seconds
against the collectives' measured seconds less the wait for a slower rank (per call where the
run timed every rank's calls: each call's shortest duration over the ranks is its transfer;
else per step, from every rank's compute seconds in the metrics; the error is stated), and then
extrapolates time to 1.01 x L* to 8, 64 and 256 workers (D2 and a9a from those runs; D1 from
the engines benchmark's one-process time, its 808-byte exchanges priced by the model). Assumptions, written into the
table: every worker has its own link of the measured speed (a non-blocking switch); compute
divides by the workers (data parallel, the measured 4-worker compute scaled); lbfgs takes
the same iterations at any p (its iterates do not depend on p); local SGD averages every
``sync_every x batch_size`` rows of each worker, so its averaging rounds per epoch fall as
1/p and its epochs to the target are taken as measured at 4.

    python benchmarks/cost_model.py benchmarks/results/links --out benchmarks/results/links
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine import facts  # noqa: E402

WORKERS = (8, 64, 256)


def fit(probe: dict) -> dict:
    """``{op: (alpha seconds, beta seconds per byte)}`` through the probe's smallest and largest
    calls (Hockney's two points: each constant read where it dominates, the latency at the
    small end, the bandwidth at the large). A least-squares fit in relative error over all
    sizes, used before, put the 100 Mbit/s link at 17 MB/s, above its shaped 12.5: the small
    calls outnumber the large ones and pulled the slope down."""
    p = probe["world_size"]
    out = {}
    for op, terms in (("allreduce", lambda n: (2 * (p - 1), 2 * (p - 1) / p * n)),
                      ("allgather", lambda n: (p - 1, (p - 1) * n)),
                      ("alltoall", lambda n: (p - 1, (p - 1) / p * n))):  # n: a rank's bytes to all
        if op not in probe:  # a probe from before all-to-all was timed
            continue
        sizes = sorted(int(k) for k in probe[op])
        t = {n: probe[op][str(n)] if str(n) in probe[op] else probe[op][n] for n in sizes}
        A = np.array([terms(sizes[0]), terms(sizes[-1])], dtype=np.float64)
        alpha, beta = np.linalg.solve(A, np.array([t[sizes[0]], t[sizes[-1]]]))
        out[op] = (max(float(alpha), 0.0), max(float(beta), 0.0))
    return out


def allreduce(c, p, n, tree=False):
    a, b = c["allreduce"]
    hops = 2 * math.ceil(math.log2(p)) if tree else 2 * (p - 1)
    return hops * a + 2 * (p - 1) / p * n * b


def allgather(c, p, n):
    a, b = c["allgather"]
    return (p - 1) * (a + n * b)


def per_call(rec, p: int) -> tuple[str, float]:
    """The big collective of a run at ``p`` workers and the bytes one call hands it per rank:
    a plain float64 allreduce; a quantizer's two phases (beyond 2 workers) of one chunk's
    payload each; a sparsifier's (or a 2-worker) allgather of the whole payload."""
    from shardlearn.comm import codecs

    codec = codecs.parse(rec["codec"])
    floats = rec["width"] + 1
    if codec is None:
        return "allreduce", 8.0 * floats
    if codec.sparsifier is None and p > 2:
        return "two_phase", float(codecs.payload_bytes(codec, -(-floats // p)))
    return "allgather", float(codecs.payload_bytes(codec, floats))


def sent(op: str, p: int, n: float) -> float:
    """Bytes a rank sends in one call (as the collectives count them)."""
    return {"allreduce": 2 * (p - 1) / p * n, "two_phase": 2 * (p - 1) * n, "allgather": (p - 1) * n}[op]


def seconds(c, op: str, p: int, n: float, tree=False) -> float:
    """One call's modelled seconds (``n``: one chunk's payload for a two-phase sum: an
    all-to-all, priced with the allgather's constants where the probe has none, then an allgather)."""
    if op == "allreduce":
        return allreduce(c, p, n, tree)
    if op == "allgather":
        return allgather(c, p, n)
    a, b = c.get("alltoall", c["allgather"])
    return (p - 1) * (a + n * b) + allgather(c, p, n)


SMALL = 16.0  # bytes of a small collective (a loss, a count, a flag): its cost is its latency


def full_calls(rec) -> float:
    """The full-width calls the measured run's bytes make (rank 0's, less the setup's agreements)."""
    q = rec.get("workers", 4)
    op, n = per_call(rec, q)
    return (rec["bytes_sent_rank0"] - rec.get("setup_bytes_rank0", 0.0)) / sent(op, q, n)


def small_calls(rec, big: float) -> float:
    """The run's collectives beyond its ``big`` ones (the full-width calls its bytes make) and
    the setup's agreement: the losses, counts and flags an iteration also exchanges (a
    two-phase sum is two calls), and, where a call carries less than the full width (D2's
    gradient covers its active columns, a fifth of the hashed width), the calls its bytes do
    not make whole. Each is priced its latency alone; every byte is priced with the big ones.
    0 for a record from before calls were counted."""
    if "calls_rank0" not in rec:
        return 0.0
    op, _ = per_call(rec, rec.get("workers", 4))
    per_big = 2 if op == "two_phase" else 1
    return max(rec["calls_rank0"] - big * per_big - (1 if rec.get("setup_bytes_rank0") else 0), 0.0)


def merges(c, rec, p) -> float:
    """Transfer seconds of per-example ``bsp``'s collectives at ``p`` workers: its merges of the
    touched coordinates' changes are allgathers of a width each merge sizes (``next_room``), so
    every call is priced as an allgather from the measured run's counts, ``(p - 1) (alpha + n beta)``
    with ``n`` the bytes a rank hands one call (rank 0's bytes over its calls and the ``q - 1``
    others; at ``p = q``: ``calls (q - 1) alpha + bytes beta``). A worker merges every
    ``step_rows`` of its own rows (a batch over ``p - 1`` beyond 2 workers, ``TrainConfig``'s
    rule), so at ``p`` its calls scale by its rows (``q / p``) over the rows of a merge, and a
    merge's payload with those rows (linearly: an upper bound where rows share columns)."""
    from shardlearn.runtime.config import TrainConfig

    q = rec.get("workers", 4)
    a, b = c["allgather"]
    per_merge = {k: TrainConfig(strategy="bsp").step_rows(workers=k) for k in (p, q)}
    calls = float(rec["calls_rank0"]) * q / p * per_merge[q] / per_merge[p]
    n = rec["bytes_sent_rank0"] / max(float(rec["calls_rank0"]), 1.0) / max(q - 1, 1) * per_merge[p] / per_merge[q]
    return calls * (p - 1) * (a + n * b)


ROWS = {"D2": 2_000_000, "D1": 200_000, "a9a": 32_561}  # bench_links.py's defaults, for records without "rows"


def rounds(rec, p: int) -> float:
    """Per-example ``local_sgd``'s averages an epoch at ``p`` workers over the measured run's. A
    worker averages every ``TrainConfig.average_rows`` of its rows and at its epoch's end: every
    64 batches, so the rounds fall as its shard shrinks, to one an epoch; under ``sign`` or a
    sparsifier (``coarse_codec``) every whole number of batches that leaves at least 64 averages
    an epoch (64 to 128), down to one batch, so they stay until a shard is under 64 batches, then
    fall. D2's 2M rows: ``int8`` 31 averages an epoch on 4 workers, 2 on 64; ``sign`` 66 on 4
    (every 30 batches), 123 on 64 (every batch of 31,250 rows), 31 on 256.

    >>> [round(rounds({"dataset": "D2", "codec": c, "workers": 4}, 64), 3) for c in ("int8", "sign")]
    [0.065, 1.864]
    >>> round(rounds({"dataset": "D2", "codec": "sign", "workers": 4}, 256), 3)
    0.47
    """
    from shardlearn.runtime.config import TrainConfig

    rows = rec.get("rows") or ROWS.get(rec["dataset"])
    q = rec.get("workers", 4)
    if not rows:
        return q / p
    cfg = TrainConfig(strategy="local_sgd", compression=rec["codec"])

    def per_epoch(k: int) -> int:
        mine = -(-int(rows) // k)
        return -(-mine // cfg.average_rows(mine))

    return per_epoch(p) / per_epoch(q)


def model_comm(c, rec, p, tree=False) -> float:
    """Transfer seconds of a run's collectives at ``p`` workers: its big calls (counted from the
    bytes rank 0 sent in the measured run, less the setup's agreements), its small ones (each a
    latency: ``small_calls``) and the setup's allreduce; per-example ``bsp``: ``merges``."""
    if rec["strategy"] == "bsp":
        return merges(c, rec, p)
    q = rec.get("workers", 4)  # the measured run's workers
    setup = rec.get("setup_bytes_rank0", 0.0)  # sent by the setup's allreduces: their payload is setup / ring share
    calls = full_calls(rec)
    small = small_calls(rec, calls)
    if rec["strategy"] == "local_sgd":  # its averaging rounds per epoch at p against the measured run's
        calls, small = calls * rounds(rec, p), small * rounds(rec, p)
    op, n = per_call(rec, p)
    return calls * seconds(c, op, p, n, tree) + small * allreduce(c, p, SMALL, tree) + (
        allreduce(c, p, setup / sent("allreduce", q, 1.0), tree) if setup else 0.0)


def framing(probes: dict) -> list:
    """Bytes rank 0's sockets sent per call against the bytes a collective counts, at the
    probe's smallest and largest sizes: gloo's own framing, which small payloads cannot hide."""
    out = ["", "On the wire (TCP_INFO, rank 0's sockets) per call, against the bytes counted for it:", "",
           "| link | op | 1 KB: counted | on the wire | 32 MB: counted | on the wire |", "|---|---|---|---|---|---|"]
    for link, pr in probes.items():
        p = pr["world_size"]
        share = {"allreduce": 2 * (p - 1) / p, "allgather": p - 1, "alltoall": (p - 1) / p}
        for op, f in share.items():
            wire = pr.get(f"wire_{op}")
            if not wire:
                continue
            sizes = sorted(int(k) for k in wire)
            got = [wire[str(n)] if str(n) in wire else wire[n] for n in (sizes[0], sizes[-1])]
            # a negative difference: a connection was closed between the readings (its counters went with it)
            cells = [f"{f * n:,.0f} | " + (f"{w:,.0f}" if w >= 0 else "-") for n, w in zip((sizes[0], sizes[-1]), got)]
            out.append(f"| {link} | {op} | " + " | ".join(cells) + " |")
    return out if len(out) > 5 else []


def d1_rows(path: str, consts: dict) -> list:
    """D1 from the engines benchmark (one process, time to 1.01 x L* at its L-BFGS budget): each
    evaluation allreduces 101 float64 (808 bytes), so D1 is latency-bound and no codec helps;
    about budget + 1 evaluations, compute divided by p."""
    if not path or not os.path.exists(path):
        return []
    one = next(json.loads(line) for line in open(path) if json.loads(line)["system"] == "one process")
    evals = one["target_budget"] + 1
    out = []
    for link, c in consts.items():
        if link.startswith("loopback"):
            continue
        for p in WORKERS:
            out.append({"dataset": "D1", "link": link, "strategy": "lbfgs", "codec": "none", "workers": p,
                        "ring": one["target_seconds"] / p + evals * allreduce(c, p, 808),
                        "tree": one["target_seconds"] / p + evals * allreduce(c, p, 808, tree=True)})
    return out


def evidence(rec) -> tuple:
    """How well a run's record serves the check, to pick among runs of one configuration: it
    counted its calls, then it timed every rank's calls (its waiting taken per call)."""
    return ("calls_rank0" in rec, bool(rec.get("wait_per_call")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="bench_links.py's folder (links*.jsonl, probe-*.json)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--engines", default=os.path.join(os.path.dirname(__file__), "results", "engines", "engines.jsonl"),
                    help="bench_engines.py's results: D1's one-process time to 1.01 x L*")
    args = ap.parse_args()
    consts, probes = {}, {}
    for name in sorted(os.listdir(args.results)):
        if name.startswith("probe-") and name.endswith(".json"):
            with open(os.path.join(args.results, name)) as f:
                probes[name[6:-5]] = json.load(f)
            consts[name[6:-5]] = fit(probes[name[6:-5]])
    reached = {}  # every links*.jsonl (the whole run, then any longer sweep of one plan): the runs that reached
    for name in sorted(os.listdir(args.results)):
        if name.startswith("links") and name.endswith(".jsonl"):
            for r in map(json.loads, open(os.path.join(args.results, name))):
                # asp's and bsp-server's pushes and pulls go by RPC, and plain local_sgd on D2's sparse
                # rows averages the touched union (strategies/sparse_average.py: three collectives of
                # varying widths a window): neither is priced here; per-example bsp's merges, allgathers
                # of varying widths, are (``merges``), from runs that counted their calls
                sparse_average = r["strategy"] == "local_sgd" and r["codec"] == "none" and r["dataset"] == "D2"
                key = (r["dataset"], r["link"], r["strategy"], r["codec"], r.get("workers", 4))
                # a run that counted its calls first, then one that timed every rank's calls (its waiting per call)
                counted = evidence(r) >= evidence(reached.get(key, {}))
                by_rpc = r["strategy"] in ("asp", "bsp-server") or (r["strategy"] == "bsp" and "calls_rank0" not in r)
                reached_target = r.get("target_seconds") is not None and "width" in r
                if reached_target and not by_rpc and not sparse_average and counted:
                    reached[key] = r
    runs = list(reached.values())
    lines = ["# Cost model (benchmarks/cost_model.py)", "", "Fitted constants (alpha: seconds per message hop; "
             "beta: seconds per byte, as bandwidth):", "", "| link | op | alpha (us) | bandwidth (MB/s) |",
             "|---|---|---|---|"]
    for link, c in consts.items():
        for op, (a, b) in c.items():
            lines.append(f"| {link} | {op} | {a * 1e6:.0f} | {1 / b / 1e6 if b > 0 else float('inf'):.1f} |")
    lines += framing(probes)
    lines += ["", "Check against the measured runs on namespaced hosts (4 hosts on this machine's 2 cores, and 2: "
              "one a core): rank 0's communication seconds less its waiting for a slower rank is the measured "
              "transfer, against the model's. The waiting is taken per call (each collective's shortest "
              "duration over the ranks is its transfer: the rank that came last waited for nobody) where the "
              "run timed every rank's calls, else per step (the slowest rank's compute less rank 0's):", "",
              "| dataset | link | hosts | strategy | codec | collectives (latency only) | comm s | of which waiting | "
              "waiting per | transfer s | model s | error |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    errors, rows = [], []
    for r in runs:
        c = consts.get(r["link"])
        if c is None:
            continue
        q = r.get("workers", 4)
        m = model_comm(c, r, q)
        wait = r.get("wait_seconds", 0.0)
        transfer = max(r["comm_seconds"] - wait, 1e-9)
        err = (m - transfer) / transfer
        errors.append((abs(err), transfer > 0.5, q))
        small = 0.0 if r["strategy"] == "bsp" else small_calls(r, full_calls(r)) if "calls_rank0" in r else None
        called = f"{r['calls_rank0']} ({small:.0f})" if small is not None else "-"  # bsp: every merge priced whole
        lines.append(f"| {r['dataset']} | {r['link']} | {q} | {r['strategy']} | {r['codec']} | {called} | "
                     f"{r['comm_seconds']:.2f} | {wait:.2f} | {'call' if r.get('wait_per_call') else 'step'} | "
                     f"{transfer:.2f} | {m:.2f} | {err:+.0%} |")
        compute = max(r["target_seconds"] - r["comm_seconds"], 0.0)
        for p in WORKERS if q == 4 else ():  # the extrapolation starts from the 4-host runs
            rows.append({"dataset": r["dataset"], "link": r["link"], "strategy": r["strategy"], "codec": r["codec"],
                         "workers": p, "ring": (compute + wait) * 4 / p + model_comm(c, r, p),
                         "tree": (compute + wait) * 4 / p + model_comm(c, r, p, tree=True)})
    for q in sorted({q for _, _, q in errors}, reverse=True):
        errs = [(e, large) for e, large, hosts in errors if hosts == q]
        big = [e for e, large in errs if large]
        lines += ["", f"{q} hosts: median absolute error of the model's transfer seconds "
                      f"{np.median([e for e, _ in errs]):.0%} (largest {max(e for e, _ in errs):.0%}); where the "
                      "measured transfer is over 0.5 s: "
                      + (f"median {np.median(big):.0%}, largest {max(big):.0%}." if big else "none.")]
    if errors:
        lines += ["", "Runs marked `call` (2026-12-06) took each collective's wait off per call and gave every "
                      "host one BLAS thread, its share of the 2 cores (`benchmarks/hosts.py`). Runs marked `step` "
                      "are older: waiting estimated per step (an lbfgs iteration holds several collectives, and "
                      "the rank that waits can change from one to the next), and two OpenBLAS threads a host, "
                      "whose idle spinning slowed every collective of the 4-host runs (a9a's 1 KB allreduces took "
                      "a median 82 ms on every rank, 8.7 ms with a thread each: `call_times.py`): the small "
                      "exchanges of a9a's and D1's lbfgs were 58-88% below the model then. Where a run's transfer "
                      "is tens of milliseconds (a9a and D1: 6-29 calls), what is left is a few milliseconds a "
                      "call either way: a host's turn on the 2 cores, which the probe's ranks, calling gloo back "
                      "to back and idle otherwise, do not wait for. At the large end the per-call estimate is a "
                      "lower bound: the ranks that came first have already sent into their peers' socket buffers "
                      "while the last one computed, so its duration misses that part of the transfer (D2's "
                      "`local_sgd` with `int8`, 413 calls and 159 MB sent by rank 0 at 100 Mbit/s: 9.0 s, under "
                      "the 12.7 s its bytes need at the link's 12.5 MB/s; the model's +95% there is mostly that)."]
    lines += ["", "Extrapolated time to 1.01 x L* (seconds; compute and waiting scaled by 4/p, communication by "
              "the model; plain: ring or tree allreduce of float64; quantizers: two phases of chunk payloads; "
              "sparsifiers: allgather of payloads; per-example bsp: its merges' allgathers, at any codec):", "",
              "| dataset | link | strategy | codec | " + " | ".join(f"{p} workers (ring / tree)" for p in WORKERS) + " |",
              "|---|---|---|---|" + "---|" * len(WORKERS)]
    d1 = [] if any(r["dataset"] == "D1" for r in runs) else d1_rows(args.engines, consts)  # measured D1 first
    rows += d1
    keyed = {}
    for r in rows:
        keyed.setdefault((r["dataset"], r["link"], r["strategy"], r["codec"]), {})[r["workers"]] = r
    for (ds, link, strategy, codec), by in keyed.items():
        cells = [f"{by[p]['ring']:.1f} / {by[p]['tree']:.1f}" if codec == "none" and strategy != "bsp"
                 else f"{by[p]['ring']:.1f}"
                 for p in WORKERS]
        lines.append(f"| {ds} | {link} | {strategy} | {codec} | " + " | ".join(cells) + " |")
    machine = facts()
    lines += ["", "Assumptions: every worker has its own link of the measured speed (a non-blocking switch); compute "
              "and the wait for the slowest rank divide by the workers (the measured 4-worker figures scaled: "
              "a straggler's share is taken as constant, which real clusters' tails exceed); lbfgs takes the "
              "same iterations at any p; local SGD's averaging rounds per "
              "epoch are the code's at each shard's rows (`TrainConfig.average_rows`: every 64 batches, "
              "so they fall with p to one an epoch; under `sign` or a sparsifier 64 an epoch until a shard is "
              "under 64 batches) and its epochs to the target stay as measured at 4 workers; a quantizer's "
              "two-phase sum moves a ring's volume at its width, so its saving holds at any p, but a "
              "sparsifier's payloads travel by allgather, whose volume grows with p while a ring allreduce's "
              "does not, so past p ~ 2 x (its ratio) it costs more than it saves (GRACE, Xu et al. 2021).",
              f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores."]
    with open(os.path.join(args.out, "cost_model.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "cost_model.json"), "w") as f:
        json.dump({"constants": consts, "extrapolated": rows}, f)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
