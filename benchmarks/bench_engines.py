"""What each engine costs on top (issue 19): one D1 fit (shardlearn's LogisticRegression,
L-BFGS to its default tolerance, 2 ranks) on the local worker group, through Dask
(LocalCluster of 2 processes), Ray (``ray.init(num_cpus=2)``) and Spark (``local[2]``,
shardlearn.spark), and Spark MLlib's own LogisticRegression on the same cached DataFrame,
all in the same run. Reported: fit seconds (median of ``--reps``; the engine started and
the data loaded into it before timing, every transfer to the ranks inside the time) and the
held-out log-loss over L* (a tight one-process fit at the same alpha).

    python benchmarks/bench_engines.py --out benchmarks/results/engines
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from benchmarks.timing import median_time  # noqa: E402

ALPHA = 1e-4


def held_out(proba, y) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(y, proba))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import shardlearn
    from shardlearn.data.synthetic import make_d1

    X, y = make_d1(args.rows)
    X = X.astype(np.float64)
    Xt, yt = make_d1(max(args.rows // 4, 1000), split="test")
    best = shardlearn.LogisticRegression(alpha=ALPHA, tol=1e-10, max_iter=1000).fit(X, y)
    L = held_out(best.predict_proba(Xt), yt)
    rows = []

    def add(system, est_or_proba, secs):
        proba = est_or_proba if isinstance(est_or_proba, np.ndarray) else est_or_proba.predict_proba(Xt)
        rows.append({"system": system, "seconds": secs, "held_out_over_L": held_out(proba, yt) / L})

    local = shardlearn.LogisticRegression(alpha=ALPHA, workers=2)
    local.fit(X[:5000], y[:5000])  # the group started
    add("local workers x2",
        *median_time(lambda: shardlearn.LogisticRegression(alpha=ALPHA, workers=2).fit(X, y), args.reps))
    add("one process", *median_time(lambda: shardlearn.LogisticRegression(alpha=ALPHA).fit(X, y), args.reps))

    import dask.array as da
    import distributed

    import shardlearn.dask as sdask

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        Xd = client.persist(da.from_array(X, chunks=(args.rows // 4, X.shape[1])))
        yd = client.persist(da.from_array(y, chunks=args.rows // 4))
        distributed.wait([Xd, yd])
        add("Dask LocalCluster x2", *median_time(
            lambda: sdask.fit(shardlearn.LogisticRegression(alpha=ALPHA), Xd, yd, client=client), args.reps))

    import ray

    import shardlearn.ray as sray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        add("Ray actors x2", *median_time(
            lambda: sray.fit(shardlearn.LogisticRegression(alpha=ALPHA), X, y, num_workers=2), args.reps))
    finally:
        ray.shutdown()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.ml.classification import LogisticRegression as MLlibLogistic
    from pyspark.ml.linalg import Vectors
    from pyspark.sql import SparkSession

    from shardlearn.spark import LogisticRegression as SparkShardlearn

    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "8g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.createDataFrame([(Vectors.dense(r), float(t)) for r, t in zip(X, y)], ["features", "label"])
        df = df.repartition(2).cache()
        df.count()
        test = spark.createDataFrame([(Vectors.dense(r),) for r in Xt], ["features"])
        model, secs = median_time(lambda: SparkShardlearn(alpha=ALPHA, numWorkers=2).fit(df), args.reps)
        add("Spark local[2], shardlearn.spark", model.est, secs)
        # MLlib minimises mean log-loss + regParam/2 ||w||^2 (elasticNetParam 0) in the raw features
        mllib, secs = median_time(lambda: MLlibLogistic(regParam=ALPHA, elasticNetParam=0.0, standardization=False,
                                                  maxIter=100, tol=1e-6).fit(df), args.reps)
        proba = np.stack(mllib.transform(test).select("probability").toPandas().probability.map(lambda v: v.toArray()))
        add("Spark MLlib LogisticRegression, local[2]", proba, secs)
    finally:
        spark.stop()
    machine = facts()
    lines = ["# Engines (benchmarks/bench_engines.py)", "",
             f"D1, {args.rows:,} rows x 100 features, alpha={ALPHA}; L* = {L:.5f} (held out). Medians of {args.reps}. "
             f"Machine: {machine.get('cpu', '?')}, {machine.get('cores')} cores.", "",
             "| system | fit seconds | held-out / L* |", "|---|---|---|"]
    lines += [f"| {r['system']} | {r['seconds']:.2f} | {r['held_out_over_L']:.4f} |" for r in rows]
    save(args.out, "engines", rows, machine, lines)


if __name__ == "__main__":
    main()
