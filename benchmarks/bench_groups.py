"""One model per group at scale (issue 17, item 3): 10,000 small groups (20 to 80 rows,
10 features), one ridge and one L2-logistic model per group, in the same run:

- shardlearn ``fit_per_group`` on in-memory arrays, 1 and 2 workers (the worker group
  started and numba compiled before timing: a warm-up fit on the first rows);
- shardlearn ``train DATA --group-by g`` from the CSV file, 2 workers (reading included);
- Spark ``groupBy(...).applyInPandas`` with one scikit-learn ``Ridge`` /
  ``LogisticRegression`` per group, ``local[2]``, from the same CSV (reading included; the
  Spark session is started before timing);
- pandas ``groupby`` + scikit-learn in one process (the loop a user writes first).

Each model is the same objective in every system (mean loss + ``alpha/2 ||w||^2``;
scikit-learn's penalties scaled by each group's rows). Medians of ``--reps`` runs; the
largest coefficient difference from shardlearn's is reported per baseline.

    python benchmarks/bench_groups.py --out benchmarks/results/groups
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from benchmarks.timing import median_time  # noqa: E402
from shardlearn import LinearRegression, LogisticRegression, fit_per_group  # noqa: E402

ALPHA = 0.01
FEATURES = [f"x{j}" for j in range(10)]


def data(groups=10_000, d=10, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(20, 81, size=groups)
    g = np.repeat(np.arange(groups), sizes)
    X = rng.normal(size=(g.size, d))
    W = rng.normal(size=(groups, d))
    z = np.einsum("ij,ij->i", X, W[g]) + rng.normal(size=groups)[g]
    y = z + rng.normal(size=g.size)
    yc = (z + 2 * rng.normal(size=g.size) > 0).astype(int)
    return X, y, yc, np.array(["store-%05d" % k for k in range(groups)])[g]


def sklearn_fit(pdf: pd.DataFrame, label: str, logistic: bool) -> pd.DataFrame:
    """One group's scikit-learn model, as a one-row frame (what applyInPandas returns)."""
    from sklearn.linear_model import LogisticRegression as SkLogistic
    from sklearn.linear_model import Ridge

    X, y, n = pdf[FEATURES].to_numpy(), pdf[label].to_numpy(), len(pdf)
    if logistic:
        if np.unique(y).size < 2:
            coef, b = np.zeros(len(FEATURES)), 0.0
        else:
            m = SkLogistic(C=1.0 / (ALPHA * n), tol=1e-8, max_iter=1000).fit(X, y)
            coef, b = m.coef_[0], m.intercept_[0]
    else:
        m = Ridge(alpha=ALPHA * n).fit(X, y)
        coef, b = m.coef_, m.intercept_
    return pd.DataFrame([[pdf["g"].iloc[0], b, *coef]], columns=["g", "b", *FEATURES])


def spark_per_group(spark, path, label, logistic):
    schema = "g string, b double, " + ", ".join(f"{c} double" for c in FEATURES)
    df = spark.read.csv(path, header=True, inferSchema=True).select("g", label, *FEATURES)
    out = df.groupBy("g").applyInPandas(lambda pdf: sklearn_fit(pdf, label, logistic), schema=schema)
    return out.toPandas().sort_values("g")


def pandas_per_group(frame, label, logistic):
    return pd.concat([sklearn_fit(pdf, label, logistic) for _, pdf in frame.groupby("g", sort=True)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--no-spark", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    X, y, yc, g = data(args.groups)
    n_groups = np.unique(g).size
    tmp = tempfile.mkdtemp(prefix="bench-groups-")
    path = os.path.join(tmp, "groups.csv")
    frame = pd.DataFrame(X, columns=FEATURES).assign(g=g, y=y, yc=yc)
    frame.to_csv(path, index=False)
    spark = None
    if not args.no_spark:
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this interpreter
        spark = (SparkSession.builder.master("local[2]").appName("shardlearn-groups")
                 .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false")
                 .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
    rows = []
    for label, est in (("y", LinearRegression(alpha=ALPHA)), ("yc", LogisticRegression(alpha=ALPHA))):
        logistic, target = label == "yc", frame[label].to_numpy()
        model = None
        for workers in (1, 2):
            fit_per_group(est, X[:3000], target[:3000], g[:3000], workers=workers)  # warm: group, numba
            model, secs = median_time(lambda: fit_per_group(est, X, target, g, workers=workers), args.reps)
            rows.append({"model": type(est).__name__, "system": f"shardlearn fit_per_group, {workers} worker(s)",
                         "seconds": secs, "models_per_s": n_groups / secs})
        from shardlearn.cli import main as cli

        argv = ["train", path, "--label", label, "--group-by", "g", "--features", ",".join(FEATURES), "--model",
                "logistic" if logistic else "linear", "--alpha", str(ALPHA), "--workers", "2",
                "--out", os.path.join(tmp, f"m-{label}")]
        _, secs = median_time(lambda: cli(argv), args.reps)
        rows.append({"model": type(est).__name__, "system": "shardlearn train --group-by (CSV), 2 workers",
                     "seconds": secs, "models_per_s": n_groups / secs})
        ref = pd.DataFrame(np.column_stack([model.intercept_, model.coef_]), columns=["b", *FEATURES])
        baselines = [("pandas groupby + scikit-learn, 1 process", lambda: pandas_per_group(frame, label, logistic))]
        if spark is not None:
            baselines.append(("Spark applyInPandas + scikit-learn, local[2]",
                              lambda: spark_per_group(spark, path, label, logistic)))
        for name, fn in baselines:
            reps = 1 if "pandas" in name else args.reps
            got, secs = median_time(fn, reps)
            diff = float(np.abs(got[["b", *FEATURES]].to_numpy() - ref.to_numpy()).max())
            rows.append({"model": type(est).__name__, "system": name, "seconds": secs, "models_per_s": n_groups / secs,
                         "max_coef_diff_vs_shardlearn": diff})
    if spark is not None:
        spark.stop()
    machine = facts()
    lines = ["# One model per group (benchmarks/bench_groups.py)", "",
             f"{n_groups:,} groups, {len(g):,} rows, 10 features; alpha={ALPHA}. Medians of {args.reps} "
             f"(pandas: one run). Machine: {machine.get('cpu', '?')}, {machine.get('cores')} cores.", "",
             "| model | system | seconds | models/s | x Spark | max coef diff |", "|---|---|---|---|---|---|"]
    for r in rows:
        spark_row = next((s for s in rows if s["model"] == r["model"] and s["system"].startswith("Spark")), None)
        ratio = f"{spark_row['seconds'] / r['seconds']:.1f}" if spark_row else "-"
        diff = r.get("max_coef_diff_vs_shardlearn")
        lines.append(f"| {r['model']} | {r['system']} | {r['seconds']:.2f} | {r['models_per_s']:,.0f} | {ratio} | "
                     f"{'-' if diff is None else f'{diff:.1e}'} |")
    save(args.out, "groups", rows, machine, lines)


if __name__ == "__main__":
    main()
