"""The driver's spill into ``/dev/shm`` (``runtime.spill.Spill``): how long handing D2's CSR rows
(data, indices, indptr, labels) and D1's dense rows to the workers takes written one file after
another, as the spill did before 2026-12-07, against a thread a file, as it does now; and, for
one large dense file, two threads writing halves (``pwrite`` at offsets, or copies into one
shared map) against one ``np.save``. Writes to one tmpfs file take turns on its inode's lock,
to several files they do not (docs/gotchas.md).

    python benchmarks/bench_spill.py --rows 2000000 --reps 3 --out benchmarks/results/spill
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None


def _timed(write, files: dict) -> float:
    d = tempfile.mkdtemp(prefix="bench-spill-", dir=ROOT)
    try:
        t = time.perf_counter()
        write(d, files)
        return time.perf_counter() - t
    finally:
        shutil.rmtree(d, ignore_errors=True)


def one_after_another(d, files):
    for name, a in files.items():
        np.save(os.path.join(d, name + ".npy"), a)


def a_thread_a_file(d, files):
    with ThreadPoolExecutor(max(1, min(len(files), os.cpu_count() or 1))) as pool:
        list(pool.map(lambda item: np.save(os.path.join(d, item[0] + ".npy"), item[1]), files.items()))


def halves_by_pwrite(d, files, threads=2):
    """One file, its bytes written by ``threads`` threads at their offsets."""
    from numpy.lib import format as fmt

    with ThreadPoolExecutor(threads) as pool:
        for name, a in files.items():
            path = os.path.join(d, name + ".npy")
            with open(path, "wb") as f:
                fmt.write_array_header_1_0(f, fmt.header_data_from_array_1_0(a))
                start = f.tell()
            raw = memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
            step = -(-raw.nbytes // threads)
            fd = os.open(path, os.O_WRONLY)
            try:
                list(pool.map(lambda i: os.pwrite(fd, raw[i:i + step], start + i), range(0, raw.nbytes, step)))
            finally:
                os.close(fd)


def halves_by_map(d, files, threads=2):
    """One file, mapped, its row halves copied in by ``threads`` threads."""
    from numpy.lib import format as fmt

    with ThreadPoolExecutor(threads) as pool:
        for name, a in files.items():
            out = fmt.open_memmap(os.path.join(d, name + ".npy"), mode="w+", dtype=a.dtype, shape=a.shape)
            step = -(-a.shape[0] // threads)

            def put(i, out=out, a=a, step=step):
                out[i:i + step] = a[i:i + step]

            list(pool.map(put, range(0, a.shape[0], step)))
            out.flush()


def main(argv=None):
    from shardlearn.data import synthetic

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    X2, y2 = synthetic.make_d2(args.rows)
    X2 = X2.tocsr()
    csr = {"X.data": X2.data, "X.indices": X2.indices, "X.indptr": X2.indptr, "y": np.asarray(y2)}
    X1, y1 = synthetic.make_d1(args.rows)
    dense = {"X": np.ascontiguousarray(X1), "y": np.asarray(y1)}
    whole = {"X": dense["X"]}
    cases = [("D2 CSR, 4 files", csr, {"one after another": one_after_another, "a thread a file": a_thread_a_file}),
             ("D1 dense, 2 files", dense, {"one after another": one_after_another, "a thread a file": a_thread_a_file}),
             ("D1's X alone, 1 file", whole, {"np.save": one_after_another, "2 threads, pwrite halves": halves_by_pwrite,
                                              "2 threads, halves into one map": halves_by_map})]
    rows = []
    for label, files, ways in cases:
        mb = sum(a.nbytes for a in files.values()) / 2**20
        for rep in range(args.reps):  # the ways alternate within a repetition: the machine's drift hits each alike
            for way, write in ways.items():
                rows.append({"case": label, "mb": round(mb), "way": way, "rep": rep, "seconds": _timed(write, files)})
                print(rows[-1], flush=True)
    machine = facts()
    lines = [f"# The driver's spill into {ROOT}: seconds to write (benchmarks/bench_spill.py)", "",
             f"{args.rows:,} rows, {args.reps} repetitions (each way once a repetition, in turn); median and range.", "",
             f"Machine: {machine}", "", "| case | MB | way | seconds (median) | range |", "|---|---|---|---|---|"]
    for label, files, ways in cases:
        for way in ways:
            s = [r["seconds"] for r in rows if r["case"] == label and r["way"] == way]
            mb = next(r["mb"] for r in rows if r["case"] == label)
            lines.append(f"| {label} | {mb:,} | {way} | {np.median(s):.3f} | {min(s):.3f}-{max(s):.3f} |")
    save(args.out, "spill", rows, machine, lines)


if __name__ == "__main__":
    main()
