"""The systems the harness races, each behind one adapter: ``fit(X, y, budget)`` ->
``(w, b, facts)``, a linear model in the original feature space (held-out metrics are
then computed the same way for everyone), with ``facts`` such as bytes communicated.

A competitor whose package is missing (``pip install shardlearn[bench]``) or that cannot
take a dataset says why in ``unavailable``; the harness writes that into the table.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

ALPHA = 1e-6


class System:
    name = ""
    budgets: list = []
    budget_name = "max_iter"
    competitor = True

    def unavailable(self, dataset) -> str | None:
        return None

    def prepare(self, X, y) -> None:
        """Untimed, once per dataset: load the data the way this system wants it (a file, a cache)."""

    def fit(self, X, y, budget):
        """``(w, b, facts)``; ``facts["fit_seconds"]``, when given, replaces the harness's own
        timing (for systems whose call also starts processes or reads files)."""
        raise NotImplementedError

    def close(self):
        pass


def _missing(*modules) -> str | None:
    gone = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"{', '.join(gone)} not installed (pip install shardlearn[bench])" if gone else None


# --- shardlearn ---------------------------------------------------------------

class Shardlearn(System):
    competitor = False

    def __init__(self, name, budgets, sparse_only=False, **params):
        self.name, self.budgets, self.params, self.sparse_only = name, budgets, params, sparse_only
        self.budget_name = "epochs" if params.get("solver") == "sgd" else "max_iter"

    def unavailable(self, dataset):
        if self.sparse_only and not dataset.sparse:
            return "for sparse data (one weight per touched key)"
        return None

    def prepare(self, X, y):
        """A one-epoch fit of the first 20,000 rows, untimed: the workers started and their kernels
        compiled before the first timed fit (else that fit pays both: an `asp` 1-epoch fit on D2 took
        17.9 s as a run's first, ~5 s after), as a user's second fit in one process would find them."""
        import shardlearn

        t = time.perf_counter()
        shardlearn.LogisticRegression(alpha=ALPHA, **dict(self.params, max_iter=1)).fit(X[:20_000], y[:20_000])
        print(f"{self.name}: warm-up (start and compile) {time.perf_counter() - t:.1f} s", flush=True)

    def fit(self, X, y, budget):
        import shardlearn

        est = shardlearn.LogisticRegression(alpha=ALPHA, max_iter=budget, **self.params).fit(X, y)
        facts = {}
        if self.params.get("workers", 1) > 1:
            reps = est.fit_result_.reports
            facts["bytes_sent"] = int(sum(r.get("bytes_sent", 0) for r in reps))
            facts["worker_peak_rss_mb"] = [round(r["peak_rss_mb"], 1) for r in reps if "peak_rss_mb" in r]
        return est.coef_.ravel(), float(est.intercept_[0]), facts


def shardlearn_systems(dataset):
    untuned = dict(solver="sgd", random_state=0, tol=None)  # per example, the normalized rule at its default rate
    return [
        Shardlearn("shardlearn lbfgs, 1 process", [3, 5, 8, 12, 20, 40, 70], tol=1e-10, workers=1),
        Shardlearn("shardlearn sgd per example, 1 process", [1, 2], workers=1, **untuned),
        Shardlearn("shardlearn lbfgs, 2 workers", [3, 5, 8, 12, 20, 40, 70], tol=1e-10, workers=2),
        Shardlearn("shardlearn gd, 2 workers", [10, 30, 100], solver="gd", tol=1e-10, workers=2),
        Shardlearn("shardlearn bsp, 2 workers", [1, 2], workers=2, strategy="bsp", **untuned),
        Shardlearn("shardlearn local_sgd, 2 workers", [1, 2], workers=2, strategy="local_sgd", **untuned),
        Shardlearn("shardlearn ssp s=4, 2 workers", [1, 2], workers=2, strategy="ssp", **untuned),
        Shardlearn("shardlearn asp, 2 workers", [1, 2], workers=2, strategy="asp", **untuned),
        Shardlearn("shardlearn hogwild, 2 workers", [1, 2], workers=2, strategy="hogwild", **untuned),
    ]


# --- scikit-learn -------------------------------------------------------------

class Sklearn(System):
    def __init__(self, name, solver, budgets):
        self.name, self.solver, self.budgets = name, solver, budgets
        self.budget_name = "epochs" if solver == "sgd" else "max_iter"

    def unavailable(self, dataset):
        if self.solver == "newton-cholesky" and dataset.sparse and dataset.n_features > 200_000:
            return "newton-cholesky forms a dense Hessian of the 4M hashed columns"
        return None

    def fit(self, X, y, budget):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression, SGDClassifier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if self.solver == "sgd":  # the default "optimal" rate diverges at alpha 1e-6; adaptive is the safe choice
                est = SGDClassifier(loss="log_loss", alpha=ALPHA, max_iter=budget, tol=None, random_state=0,
                                    learning_rate="adaptive", eta0=0.01).fit(X, y)
            else:
                est = LogisticRegression(C=1.0 / (ALPHA * X.shape[0]), solver=self.solver, max_iter=budget,
                                         tol=1e-10).fit(X, y)
        return est.coef_.ravel(), float(est.intercept_[0]), {}


def sklearn_systems():
    return [Sklearn("scikit-learn lbfgs", "lbfgs", [50, 100, 200, 400]),
            Sklearn("scikit-learn newton-cholesky", "newton-cholesky", [2, 3, 5, 8]),
            Sklearn("scikit-learn saga", "saga", [1, 3, 10]),
            Sklearn("scikit-learn SGDClassifier", "sgd", [1, 3, 10])]


# --- Vowpal Wabbit --------------------------------------------------------------

class VowpalWabbit(System):
    name, budgets, budget_name = "Vowpal Wabbit", [1, 2, 4, 8], "passes"

    def unavailable(self, dataset):
        return _missing("vowpalwabbit")

    def prepare(self, X, y):  # the text file is written untimed; parsing it is in VW's time, as for a user
        self.folder = tempfile.mkdtemp(prefix="bench-vw-")
        self.path = os.path.join(self.folder, "train.vw")
        write_vw(self.path, X, y)

    def fit(self, X, y, budget):
        from vowpalwabbit import pyvw

        folder, path = self.folder, self.path
        bits = max(18, int(np.ceil(np.log2(X.shape[1] + 1))))
        model = os.path.join(folder, "model.vw")
        w = pyvw.Workspace(f"-d {path} --passes {budget} -c --cache_file {folder}/cache.{budget} -k --holdout_off "
                           f"--loss_function logistic -b {bits} -f {model} --quiet")
        w.run_parser()
        w.finish()
        m = pyvw.Workspace(f"-i {model} --readable_model {folder}/readable.txt -t --quiet")
        m.finish()
        return _read_vw_weights(os.path.join(folder, "readable.txt"), X.shape[1], bits)


def write_vw(path, X, y):
    """VW text format: ``1 | j:v ...`` / ``-1 | ...``, numeric feature names in the default namespace."""
    X = sp.csr_matrix(X)
    with open(path, "w") as f:
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.7g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi]))
            f.write(("1 | " if y[i] else "-1 | ") + feats + "\n")


def _read_vw_weights(path, d, bits):
    """VW's readable model: ``index:weight`` lines after the header. Numeric feature names in the
    default namespace hash to themselves; the constant (intercept) feature is VW's ``constant``
    hash 11650396 masked to ``bits``, which may share its weight with a feature (as in VW's own
    predictions, so it is kept in both places)."""
    import re

    w, b = np.zeros(d), 0.0
    pair = re.compile(r"^(\d+):(\S+)$")
    constant = 11650396 & ((1 << bits) - 1)
    with open(path) as f:
        for line in f:
            m = pair.match(line.strip())
            if m:
                k, v = int(m.group(1)), float(m.group(2))
                if k == constant:
                    b = v
                if k < d:
                    w[k] = v
    return w, b, {}


# --- Spark MLlib ---------------------------------------------------------------

class Spark(System):
    name, budgets = "Spark MLlib local[2]", [5, 10, 20, 50, 100]

    def __init__(self):
        self.spark, self.df = None, None

    def unavailable(self, dataset):
        return _missing("pyspark")

    def prepare(self, X, y):  # loading into Spark's cache is not fit time
        from sklearn.datasets import dump_svmlight_file

        if self.spark is None:
            from pyspark.sql import SparkSession

            self.spark = (SparkSession.builder.master("local[2]").appName("shardlearn-bench")
                          .config("spark.driver.memory", "8g").config("spark.ui.enabled", "false").getOrCreate())
            self.spark.sparkContext.setLogLevel("ERROR")
        if self.df is not None:
            self.df.unpersist()
        path = os.path.join(tempfile.mkdtemp(prefix="bench-spark-"), "train.svm")
        dump_svmlight_file(X, y, path, zero_based=False)
        self.df = self.spark.read.format("libsvm").option("numFeatures", str(X.shape[1])).load(path).cache()
        self.df.count()

    def fit(self, X, y, budget):
        from pyspark.ml.classification import LogisticRegression

        # standardization=False: with Spark's default (True) the L2 penalty falls on standardized
        # coefficients, a different objective from L*'s; on D2's rare hashed columns it overfits
        # (1.70 x L* held out at any budget, measured in the full run)
        model = LogisticRegression(maxIter=budget, regParam=ALPHA, elasticNetParam=0.0, tol=1e-12,
                                   standardization=False).fit(self.df)
        return model.coefficients.toArray(), float(model.intercept), {}

    def close(self):
        if self.spark is not None:
            self.spark.stop()


# --- Dask-ML -------------------------------------------------------------------

class DaskML(System):
    name, budgets = "Dask-ML LocalCluster(2)", [5, 10, 20, 50]

    def __init__(self):
        self.client = None

    def unavailable(self, dataset):
        if dataset.sparse and dataset.n_features > 10_000:
            return (f"dask-ml's LogisticRegression solvers take dense dask arrays; {dataset.n_features:,} "
                    "sparse columns do not fit densely")
        return _missing("dask_ml", "distributed")

    def prepare(self, X, y):  # the cluster and the arrays on its workers are not fit time
        import dask.array as da

        if self.client is None:
            from distributed import Client, LocalCluster

            self.client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                              dashboard_address=None))
        half = -(-X.shape[0] // 2)
        dense = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
        self.keep = np.flatnonzero(dense.std(axis=0) > 0)  # dask-ml refuses constant columns (it adds its own)
        self.Xd = da.from_array(dense[:, self.keep], chunks=(half, self.keep.size)).persist()
        self.yd = da.from_array(np.asarray(y, dtype=np.float64), chunks=half).persist()

    def fit(self, X, y, budget):
        from dask_ml.linear_model import LogisticRegression

        est = LogisticRegression(penalty="l2", C=1.0 / (ALPHA * X.shape[0]), solver="lbfgs", max_iter=budget,
                                 tol=1e-10).fit(self.Xd, self.yd)
        w = np.zeros(X.shape[1])
        w[self.keep] = np.asarray(est.coef_).ravel()
        return w, float(np.ravel(est.intercept_)[0]), {}

    def close(self):
        if self.client is not None:
            self.client.close()


# --- PyTorch DDP ---------------------------------------------------------------

class TorchDDP(System):
    """A hand-written DDP mini-batch loop (what a PyTorch user writes): 2 gloo processes,
    ``nn.Linear``, AdaGrad, batch 256, each process on half the rows."""

    name, budgets, budget_name = "PyTorch DDP, 2 gloo processes", [1, 2, 4], "epochs"

    def unavailable(self, dataset):
        if dataset.sparse and dataset.n_features > 10_000:
            return (f"a dense nn.Linear over {dataset.n_features:,} columns allreduces "
                    f"{dataset.n_features * 4 / 2**20:.0f} MB every step (dense input too)")
        return None

    def __init__(self):
        self.proc = None

    def prepare(self, X, y):  # the data files and the two processes: once per dataset, untimed
        self.close()
        self.folder = tempfile.mkdtemp(prefix="bench-ddp-")
        np.save(os.path.join(self.folder, "X.npy"), np.asarray(X.toarray() if sp.issparse(X) else X, np.float32))
        np.save(os.path.join(self.folder, "y.npy"), np.asarray(y, dtype=np.float32))
        script = os.path.join(os.path.dirname(__file__), "ddp_logistic.py")
        self.stderr = open(os.path.join(self.folder, "stderr.txt"), "w+")
        self.proc = subprocess.Popen([sys.executable, script, self.folder, str(ALPHA)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def fit(self, X, y, budget):
        t = time.perf_counter()
        self.proc.stdin.write(f"{budget}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "done":
            self.stderr.seek(0)
            raise RuntimeError(f"DDP run failed: {self.stderr.read()[-500:]}")
        out = np.load(os.path.join(self.folder, "model.npz"))
        # the training loop's time, measured inside the processes (started once in prepare)
        facts = {"fit_seconds": float(out["seconds"]), "wall_seconds": time.perf_counter() - t,
                 "bytes_sent": int(out["bytes"])}
        return out["w"], float(out["b"]), facts

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.stderr.close()
            self.proc = None


def competitor_systems():
    return sklearn_systems() + [VowpalWabbit(), Spark(), DaskML(), TorchDDP()]
