"""Serving while learning (issue 16): latency and throughput of ``POST /predict`` next to a
bare FastAPI endpoint returning a constant, measured in the same run by ``wrk`` (Debian's
``wrk``: ``apt-get install -y wrk``; a C load generator, so the client is not what limits).

- p50/p99 latency and requests/s of one 100-feature VW row at 1 and 16 connections, for the
  bare endpoint (the same JSON body parsed, a constant returned) and for
  ``shardlearn learn --follow --serve`` holding a model learned from 20,000 such rows;
- the same at 16 connections while the learner learns new lines and swaps in a new snapshot
  at every checkpoint (``--checkpoint-every 0.1s``): one wrk run long enough to hold at least
  100 swaps (a run that held fewer is run again, longer; the table shows the run that held
  them), its failed requests (non-2xx, socket errors) and its p99 against the bare
  endpoint's; once with the server in the learner's process (``learn --serve``), once with
  ``shardlearn serve DIR`` swapping in the checkpoints a learner in another process writes;
- the swap alone: a server reloading the newest checkpoint from disk and swapping it in
  every 0.1 s under 16 connections, with no learner competing for the CPU;
- rows/s of batches of 1, 64 and 1024 rows at 4 connections.

The bare endpoint at 16 connections is measured three times (first, between the swap
phases, last) and the median is the reference: on this shared 2-core machine one wrk run's
p99 varies by a factor of 1.5 from minute to minute. The lines a learner learns meanwhile
are written before the clock starts (the feeder only appends them), so formatting them
takes no CPU from the server. uvicorn runs with httptools and uvloop
(``uvicorn[standard]``, what ``shardlearn[serve]`` installs) for both servers.

    python benchmarks/bench_serve.py --out benchmarks/results/serve
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from shardlearn.runtime.launch import free_port  # noqa: E402

BARE = """
import sys
from fastapi import FastAPI
import uvicorn
app = FastAPI()
@app.post("/predict")
async def predict(body: dict):
    return {"predictions": [0.5], "model_version": 1}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _line(rng, label=True):
    x = rng.normal(size=100)
    y = 1 if x[:10].sum() + rng.normal() > 0 else -1
    feats = " ".join(f"f{j}:{v:.3f}" for j, v in enumerate(x))
    return (f"{y} " if label else "") + f"|a {feats}"


def _wait(url: str, timeout=120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            httpx.post(url + "/predict", json={"instances": ["|a f0:1"]}, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer")


def _unit(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]


def wrk(url: str, body: str, connections: int, seconds: float, folder: str) -> dict:
    """One wrk run: requests/s, p50/p99 latency (seconds), failed requests."""
    script = os.path.join(folder, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(body)}\n")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script,
                          url + "/predict"], capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_s": _unit(pct["50"]), "p99_s": _unit(pct["99"]),
            "failed": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, errors.groups())) if errors else 0)}


def _covering(run, swaps_now, swaps=100, seconds=15.0, tries=3) -> tuple[dict, int]:
    """``run(seconds)`` (a wrk run under some swapping) until one run held ``swaps`` swaps
    (``swaps_now()`` counts them), each try longer by what the last one lacked: that run's
    result and the swaps it held."""
    for _ in range(tries):
        before = swaps_now()
        r = run(seconds)
        held = swaps_now() - before
        if held >= swaps:
            return r, held
        seconds *= 1.3 * swaps / max(held, 1)
    return r, held


def _swaps(url, src, body, chunks, tmp, name) -> dict:
    """16 connections while lines are appended to the learner's file (50 every 20 ms, written
    beforehand) and a snapshot is swapped in at every checkpoint (every 0.1 s), in one wrk run
    that holds at least 100 swaps."""
    stop, fed = threading.Event(), [0]

    def feed():
        while not stop.is_set():
            with open(src, "a") as f:
                f.write(chunks[(fed[0] // 50) % len(chunks)])
            fed[0] += 50
            time.sleep(0.02)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        r, held = _covering(lambda seconds: wrk(url, body, 16, seconds, tmp),
                            lambda: httpx.get(url + "/model").json()["swaps"])
    finally:
        stop.set()
        feeder.join()
    print(f"{name}: {held} swaps, {fed[0]} lines fed", file=sys.stderr, flush=True)
    return dict(r, server=name, connections=16, batch=1, phase=f"{held} hot swaps", lines_learned_meanwhile=fed[0])


def _reload_swaps(model_dir, body, tmp) -> dict:
    """The swap alone: a server in this process answers 16 connections while a thread loads the
    newest checkpoint of ``model_dir`` from disk (checksums, arrays, a new model) and swaps it
    in every 0.1 s, with no learner competing for the 2 cores."""
    from shardlearn.online import snapshot
    from shardlearn.online.serve import Serving
    from shardlearn.online.server import Live, make_app

    first = snapshot.load(model_dir)
    live, stop = Live(first), threading.Event()

    def swap():
        v = first.version
        while not stop.is_set():
            v += 1
            live.swap(snapshot.load(model_dir)._replace(version=v))
            time.sleep(0.1)

    with Serving(make_app(live), "127.0.0.1", 0) as srv:
        quiet = wrk(srv.address, body, 16, 8, tmp)
        swapper = threading.Thread(target=swap)
        swapper.start()
        try:
            r, held = _covering(lambda seconds: wrk(srv.address, body, 16, seconds, tmp), lambda: live.swaps)
        finally:
            stop.set()
            swapper.join()
    return [dict(quiet, server="serve, in this process", connections=16, batch=1, phase="steady"),
            dict(r, server="serve, in this process", connections=16, batch=1,
                 phase=f"{held} hot swaps (reloads, no learner)", lines_learned_meanwhile=0)]


def _bare16(url, body, seconds, tmp, when) -> dict:
    return dict(wrk(url, body, 16, seconds, tmp), server="bare FastAPI (constant)", connections=16, batch=1,
                phase=f"steady ({when})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=8)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    src = os.path.join(tmp, "s.vw")
    with open(src, "w") as f:
        f.writelines(_line(rng) + "\n" for _ in range(20_000))
    row = _line(rng, label=False)
    one = json.dumps({"instances": [row]})
    chunks = ["".join(_line(rng) + "\n" for _ in range(50)) for _ in range(1000)]  # what the feeders append
    procs, rows, lines = [], [], []
    try:
        bare_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", BARE, str(bare_port)]))
        learner = subprocess.Popen([sys.executable, "-m", "shardlearn", "learn", src, "--follow", "--model-dir",
                                    os.path.join(tmp, "m"), "--serve", "127.0.0.1:0", "--checkpoint-every", "0.1s",
                                    "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(learner)
        ours = re.search(r"on (http://\S+)", learner.stderr.readline()).group(1)
        bare = f"http://127.0.0.1:{bare_port}"
        _wait(bare)
        _wait(ours)
        while httpx.get(ours + "/model").json()["examples"] < 20_000:
            time.sleep(0.2)
        for name, url in (("bare FastAPI (constant)", bare), ("shardlearn /predict", ours)):
            for c in (1, 16):
                r = wrk(url, one, c, args.seconds, tmp)
                rows.append(dict(r, server=name, connections=c, batch=1, phase="steady"))
        rows.append(_swaps(ours, src, one, chunks, tmp, "learn --serve (one process)"))
        rows.append(_bare16(bare, one, args.seconds, tmp, "between the swap phases"))
        # the learner in a process of its own, writing checkpoints; `shardlearn serve` swaps them in
        src2, port2 = os.path.join(tmp, "s2.vw"), free_port()
        shutil.copy(src, src2)
        procs.append(subprocess.Popen([sys.executable, "-m", "shardlearn", "learn", src2, "--follow", "--model-dir",
                                       os.path.join(tmp, "m2"), "--checkpoint-every", "0.1s", "--quiet"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while not os.path.isdir(os.path.join(tmp, "m2", "checkpoints")) or \
                not any(n.startswith("ckpt-") for n in os.listdir(os.path.join(tmp, "m2", "checkpoints"))):
            time.sleep(0.2)
        procs.append(subprocess.Popen([sys.executable, "-m", "shardlearn", "serve", os.path.join(tmp, "m2"), "--bind",
                                       f"127.0.0.1:{port2}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        served = f"http://127.0.0.1:{port2}"
        _wait(served)
        rows.append(dict(wrk(served, one, 16, args.seconds, tmp), server="shardlearn serve DIR", connections=16,
                         batch=1, phase="steady"))
        rows.append(_swaps(served, src2, one, chunks, tmp, "serve DIR, learner apart"))
        rows += _reload_swaps(os.path.join(tmp, "m2"), one, tmp)
        for batch in (1, 64, 1024):
            body = json.dumps({"instances": [row] * batch})
            r = wrk(ours, body, 4, args.seconds, tmp)
            rows.append(dict(r, server="shardlearn /predict", connections=4, batch=batch, phase="steady",
                             rows_per_s=r["requests_per_s"] * batch))
        rows.append(_bare16(bare, one, args.seconds, tmp, "last"))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    machine = facts()
    bare16 = {"p99_s": float(np.median([r["p99_s"] for r in rows if r["server"].startswith("bare") and
                                        r["connections"] == 16]))}
    lines += ["# Serving while learning (benchmarks/bench_serve.py)", "",
              f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; wrk, one 100-feature VW row "
              "per request unless the batch says otherwise; one run, ratios within it.", "",
              "| server | phase | connections | batch | requests/s | rows/s | p50 ms | p99 ms | failed |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['server']} | {r['phase']} | {r['connections']} | {r['batch']} | "
                     f"{r['requests_per_s']:,.0f} | "
                     f"{r.get('rows_per_s', r['requests_per_s'] * r['batch']):,.0f} | {r['p50_s'] * 1e3:.2f} | "
                     f"{r['p99_s'] * 1e3:.2f} | {r['failed']} |")
    lines.append("")
    for swapped in (r for r in rows if "swaps" in r["phase"]):
        lines.append(f"{swapped['server']}, during {swapped['phase']} ({swapped['lines_learned_meanwhile']:,} new "
                     f"lines learned meanwhile): {swapped['failed']} failed requests, p99 "
                     f"{swapped['p99_s'] * 1e3:.2f} ms = {swapped['p99_s'] / bare16['p99_s']:.2f}x the bare "
                     f"endpoint's at 16 connections (the median of its three runs, {bare16['p99_s'] * 1e3:.2f} ms).")
    save(args.out, "serve", rows, machine, lines)


if __name__ == "__main__":
    main()
