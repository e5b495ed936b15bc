"""What each engine costs on top (issue 19): D1 (2,000,000 rows x 100 features, the
harness's alpha) fitted by shardlearn's LogisticRegression (L-BFGS, 2 ranks) on the local
worker group, through Dask (LocalCluster of 2 processes), Ray (``ray.init(num_cpus=2)``)
and Spark (``local[2]``, shardlearn.spark), and by Spark MLlib's own LogisticRegression on
the same cached DataFrame, all in one run.

Reported per system: time to 1.01 x L* (the smallest iteration budget of a sweep whose fit
reaches it held out; median of ``--reps`` fits at that budget, after one untimed fit
whose seconds are reported as the first fit: the engine's one-time start-up), the fit to
the system's own default tolerance (median seconds, held-out / L*), and the peak resident
memory during those default fits: the driver process's growth over its size before them,
the JVM (Spark: driver and executors share it in ``local[N]``) and every other process
the engine runs (benchmarks/memory.py). The
engine is started and the data loaded into it (Dask: persisted arrays; Ray: the arrays;
Spark: a Parquet file read and cached as a vector column) before timing; every transfer to
the ranks is inside the time. L* is a tight one-process fit at the same alpha.

    python benchmarks/bench_engines.py --out benchmarks/results/engines
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from benchmarks.memory import PeakRSS  # noqa: E402
from benchmarks.timing import median_time  # noqa: E402

ALPHA = 1e-6  # the harness's (benchmarks/systems.py)
BUDGETS = (2, 3, 5, 10, 20, 40, 80)  # L-BFGS iterations, ours and MLlib's alike
TARGET = 1.01


def held_out(proba, y) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, proba, labels=[0, 1]))


def measure(system: str, fit, proba, yt, lstar: float, reps: int) -> dict:
    """``fit(budget)`` (None: the system's default) -> a fitted thing; ``proba(it)`` -> held-out
    probabilities. Sweeps the budgets up to the first that reaches TARGET x L*, then the default."""
    row = {"system": system, "target_budget": None, "target_seconds": None}
    row["first_seconds"] = median_time(lambda: fit(BUDGETS[0]), 1)[1]  # the engine's one-time start-up
    for b in BUDGETS:
        it, secs = median_time(lambda: fit(b), 1)
        ratio = held_out(proba(it), yt) / lstar
        print(f"  {system}: budget {b}: {secs:.2f} s, {ratio:.5f} x L*", flush=True)
        if ratio <= TARGET:
            row["target_budget"] = b
            row["target_seconds"] = median_time(lambda: fit(b), reps)[1] if reps > 1 else secs
            break
    with PeakRSS() as peak:
        it, secs = median_time(lambda: fit(None), reps)
    row.update(default_seconds=secs, held_out_over_L=held_out(proba(it), yt) / lstar,
               peak_mb={k: round(v) for k, v in peak.mb.items()})
    print(f"  {system}: default fit {secs:.2f} s, {row['held_out_over_L']:.5f} x L*, peak MB {row['peak_mb']}",
          flush=True)
    return row


def spark_frame(spark, X, y, folder):
    """D1 as a Parquet file (a fixed-size list column, written by pyarrow without a row loop),
    read back by Spark as the vector column MLlib expects, cached."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    feats = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])
    path = os.path.join(folder, "d1.parquet")
    pq.write_table(pa.table({"x": feats.cast(pa.list_(pa.float64())), "label": y.astype(np.float64)}), path,
                   row_group_size=250_000)
    df = spark.read.parquet(path).select(array_to_vector(F.col("x")).alias("features"), "label")
    df = df.repartition(2).cache()
    df.count()
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import shardlearn
    from shardlearn.data.synthetic import make_d1

    X, y = make_d1(args.rows)
    Xt, yt = make_d1(max(args.rows // 10, 1000), split="test")
    best = shardlearn.LogisticRegression(alpha=ALPHA, tol=1e-10, max_iter=1000, workers=1).fit(X.astype(np.float64), y)
    lstar = held_out(best.predict_proba(Xt.astype(np.float64)), yt)
    print(f"D1 {args.rows:,} rows: L* = {lstar:.5f}", flush=True)
    rows = []

    def ours(**kw):  # one rank here (workers=None would choose 2 for D1's 800 MB); the engines start their own
        return shardlearn.LogisticRegression(alpha=ALPHA, max_iter=kw.get("max_iter"), workers=1)

    def est_proba(est):
        return est.predict_proba(Xt)

    from shardlearn.runtime import group

    rows.append(measure("one process", lambda b: ours(max_iter=b).fit(X, y), est_proba, yt, lstar, args.reps))
    rows.append(measure("local workers x2", lambda b: shardlearn.LogisticRegression(
        alpha=ALPHA, max_iter=b, workers=2).fit(X, y), est_proba, yt, lstar, args.reps))
    group.shutdown()  # its worker processes would count in the next systems' memory

    import dask.array as da
    import distributed

    import shardlearn.dask as sdask

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        Xd = client.persist(da.from_array(X, chunks=(args.rows // 4, X.shape[1])))
        yd = client.persist(da.from_array(y, chunks=args.rows // 4))
        distributed.wait([Xd, yd])
        rows.append(measure("Dask LocalCluster x2", lambda b: sdask.fit(ours(max_iter=b), Xd, yd, client=client),
                            est_proba, yt, lstar, args.reps))

    import ray

    import shardlearn.ray as sray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows.append(measure("Ray actors x2", lambda b: sray.fit(ours(max_iter=b), X, y, num_workers=2),
                            est_proba, yt, lstar, args.reps))
    finally:
        ray.shutdown()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.ml.classification import LogisticRegression as MLlibLogistic
    from pyspark.sql import SparkSession

    from shardlearn.spark import LogisticRegression as SparkShardlearn

    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "12g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with tempfile.TemporaryDirectory() as folder:
            df = spark_frame(spark, X, y, folder)
            rows.append(measure("Spark local[2], shardlearn.spark", lambda b: SparkShardlearn(
                alpha=ALPHA, numWorkers=2, maxIter=b or 0).fit(df), lambda m: m.est.predict_proba(Xt),
                yt, lstar, args.reps))

            def mllib_proba(m):  # the fitted coefficients applied here: 200k test rows need no Spark job
                z = Xt.astype(np.float64) @ m.coefficients.toArray() + m.intercept
                p = 1.0 / (1.0 + np.exp(-z))
                return np.column_stack([1 - p, p])

            # MLlib minimises mean log-loss + regParam/2 ||w||^2 (elasticNetParam 0): our alpha, raw features
            rows.append(measure("Spark MLlib LogisticRegression, local[2]", lambda b: MLlibLogistic(
                regParam=ALPHA, elasticNetParam=0.0, standardization=False, maxIter=b or 100, tol=1e-6).fit(df),
                mllib_proba, yt, lstar, args.reps))
    finally:
        spark.stop()
    machine = facts()
    machine.update(versions())
    lines = ["# Engines (benchmarks/bench_engines.py)", "",
             f"D1, {args.rows:,} rows x 100 features, alpha={ALPHA}; L* = {lstar:.5f} (held out, "
             f"{len(yt):,} rows). Time to {TARGET} x L*: the smallest of L-BFGS budgets {BUDGETS} that reaches it, "
             f"median of {args.reps} fits. Default fit: each system's own stopping rule. Peak RSS during the "
             f"default fits (benchmarks/memory.py): the driver's growth over its size before them, the JVM and every "
             f"other process the engine runs, absolute (shared pages count once per process). Machine: "
             f"{machine.get('cpu', '?')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB; "
             + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".", "",
             f"| system | first fit (s) | time to {TARGET} x L* (s) | iterations | default fit (s) | held-out / L* | "
             "driver + MB | JVM MB | other processes MB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = f"{r['target_seconds']:.2f}" if r["target_seconds"] is not None else "not reached"
        m = r["peak_mb"]
        lines.append(f"| {r['system']} | {r['first_seconds']:.2f} | {t} | {r['target_budget'] or '-'} | "
                     f"{r['default_seconds']:.2f} | "
                     f"{r['held_out_over_L']:.4f} | {m['driver']} | {m['jvm'] or '-'} | {m['workers']} |")
    save(args.out, "engines", rows, machine, lines)


def versions() -> dict:
    import dask
    import pyspark
    import ray

    return {"dask": dask.__version__, "ray": ray.__version__, "pyspark": pyspark.__version__}


if __name__ == "__main__":
    main()
