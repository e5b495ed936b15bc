"""Spark: shardlearn's estimators as ``pyspark.ml`` Estimators (``LogisticRegression``,
``LinearRegression``, ``LinearSVC``), usable in ``Pipeline`` and ``CrossValidator``, saved
and loaded with ``write().save()`` / ``load()``. ``pip install 'shardlearn[spark]'``.

``fit(df)`` repartitions the rows into ``numWorkers`` partitions (unless they already are)
and runs one barrier stage (``mapInArrow(..., barrier=True)``: Spark's barrier mode, as
TorchDistributor uses, all ranks start together). Each task is a rank: it reads its own
partition's rows as Arrow batches, never collected to the driver, joins the rendezvous
store the driver hosts (at ``spark.driver.host``, which every executor reaches), and runs
the local group's worker entry point (``runtime.engines.run_rank`` ->
``runtime.job.fit_rows``). The model's ``transform`` adds ``rawPrediction``,
``prediction`` and (logistic) ``probability`` columns, vectorised per Arrow batch.

    from shardlearn.spark import LogisticRegression

    model = LogisticRegression(featuresCol="features", labelCol="label", alpha=1e-4, numWorkers=2).fit(df)
    model.transform(test).select("prediction", "probability")
    model.write().overwrite().save("m"); LogisticRegressionModel.load("m")
"""
from __future__ import annotations

import json
import os

import numpy as np

from shardlearn.core.errors import ConfigError

try:
    from pyspark import keyword_only
    from pyspark.ml import Estimator, Model
    from pyspark.ml.param.shared import (HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol,
                                         HasRawPredictionCol, HasWeightCol, Param, Params, TypeConverters)
    from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter
except ImportError:  # pragma: no cover - the extra is missing
    raise ConfigError("shardlearn.spark needs pyspark: pip install 'shardlearn[spark]'") from None


class _Shared(HasFeaturesCol, HasLabelCol, HasWeightCol, HasPredictionCol, HasProbabilityCol, HasRawPredictionCol):
    alpha = Param(Params._dummy(), "alpha", "penalty strength (>= 0)", TypeConverters.toFloat)
    l1Ratio = Param(Params._dummy(), "l1Ratio", "share of L1 in the penalty, in [0, 1]", TypeConverters.toFloat)
    fitIntercept = Param(Params._dummy(), "fitIntercept", "fit an intercept", TypeConverters.toBoolean)
    maxIter = Param(Params._dummy(), "maxIter", "iterations (lbfgs, gd) or epochs (sgd); 0: the default",
                    TypeConverters.toInt)
    tol = Param(Params._dummy(), "tol", "stopping tolerance", TypeConverters.toFloat)
    solver = Param(Params._dummy(), "solver", "lbfgs, gd or sgd ('' : the default)", TypeConverters.toString)
    strategy = Param(Params._dummy(), "strategy", "how the ranks agree ('' : the solver's default)",
                     TypeConverters.toString)
    numWorkers = Param(Params._dummy(), "numWorkers", "ranks: one Spark barrier task each", TypeConverters.toInt)
    timeoutSeconds = Param(Params._dummy(), "timeoutSeconds", "rendezvous timeout of the ranks",
                           TypeConverters.toFloat)

    def _shared_defaults(self, alpha):
        self._setDefault(featuresCol="features", labelCol="label", predictionCol="prediction",
                         probabilityCol="probability", rawPredictionCol="rawPrediction", alpha=alpha, l1Ratio=0.0,
                         fitIntercept=True, maxIter=0, tol=1e-6, solver="", strategy="", numWorkers=2,
                         timeoutSeconds=60.0)


class _Estimator(Estimator, _Shared, MLWritable, MLReadable):
    KIND = ""  # shardlearn's estimator

    def _shardlearn(self):
        import shardlearn

        g = self.getOrDefault
        return getattr(shardlearn, self.KIND)(
            alpha=g("alpha"), l1_ratio=g("l1Ratio"), fit_intercept=g("fitIntercept"), max_iter=g("maxIter") or None,
            tol=g("tol"), solver=g("solver") or None, strategy=g("strategy") or None, workers=g("numWorkers"))

    def _fit(self, dataset):
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        est = self._shardlearn()
        n = self.getOrDefault("numWorkers")
        slots = dataset.sparkSession.sparkContext.defaultParallelism
        if not 1 <= n <= slots:  # barrier mode would wait for slots that never come
            raise ConfigError(f"spark: numWorkers={n}, but the cluster runs {slots} tasks at once (barrier mode "
                              "starts every rank together); ask for fewer or add executors")
        weight = self.getOrDefault("weightCol") if self.isSet("weightCol") else None
        cols = [vector_to_array(F.col(self.getFeaturesCol())).alias("x"), F.col(self.getLabelCol()).alias("y")]
        if weight:
            cols.append(F.col(weight).cast("double").alias("w"))
        rows = dataset.select(*cols)
        from sklearn.base import is_classifier

        from shardlearn.runtime.engines import fit_result, settings

        from shardlearn.runtime import launch

        first = rows.select("x").first()
        if first is None:
            raise ConfigError("spark: the DataFrame has no rows to fit")
        classes = None
        if is_classifier(est):  # the distinct labels only, not the rows
            classes = np.array(sorted(r[0] for r in rows.select("y").distinct().collect()))
        job = settings(est, classes, n)
        timeout = self.getOrDefault("timeoutSeconds")
        ranks = dict(job, timeout_s=timeout, size=n, n_features=len(first[0]))
        # the driver hosts the rendezvous (executors reach it, as Spark itself needs): the barrier's own
        # allGather would do, but each call waits about a second
        ranks["addr"] = dataset.sparkSession.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")
        ranks["port"] = launch.free_port(ranks["addr"])
        store = launch.host_store(ranks["addr"], ranks["port"], n, timeout)  # alive until the ranks are done
        if rows.rdd.getNumPartitions() != n:  # already n partitions (a cached frame): no shuffle per fit
            rows = rows.repartition(n)
        try:
            stage = rows.mapInArrow(lambda batches: _rank(batches, ranks), "result string", barrier=True)
            results = sorted((json.loads(r.result) for r in stage.collect()), key=lambda r: r["rank"])
        finally:
            del store
        est.adopt(fit_result(results, job, ranks["n_features"]))
        return self._copyValues(_MODELS[self.KIND](est))

    def write(self):
        return _ParamsWriter(self)

    @classmethod
    def read(cls):
        return _ParamsReader(cls)


def _rank(batches, job):
    """One barrier task: this partition's rows (Arrow batches, read as flat arrays with no
    per-row objects), the rendezvous at the driver, the shared entry point; one JSON line back."""
    import pyarrow as pa
    from pyspark import BarrierTaskContext

    from shardlearn.runtime.engines import run_rank

    rank, d = BarrierTaskContext.get().partitionId(), job["n_features"]
    frames = [b for b in batches if b.num_rows]
    X = np.vstack([_matrix(b.column("x"), d) for b in frames]) if frames else np.zeros((0, d))
    y = np.concatenate([b.column("y").to_numpy(zero_copy_only=False) for b in frames]) if frames else np.zeros(0)
    w = (np.concatenate([b.column("w").to_numpy(zero_copy_only=False) for b in frames]).astype(np.float64)
         if frames and "w" in frames[0].schema.names else None)
    out = run_rank(rank, job["size"], job["addr"], job["port"], f"shardlearn/spark-{job['port']}/", "fit_rows",
                   threads=1, timeout_s=job["timeout_s"], model=job["model"], cfg=job["cfg"], X=X, y=y,
                   sample_weight=w, n_outputs=job["n_outputs"], classes=job["classes"])
    params = {k: np.asarray(v).tolist() for k, v in (out["params"] or {}).items()}
    report = {k: v for k, v in out["report"].items() if isinstance(v, (int, float, str, dict))}
    yield pa.RecordBatch.from_pydict({"result": [json.dumps({"rank": rank, "params": params, "n_iter": int(out["n_iter"]),
                                                             "report": report})]})


def _matrix(column, d: int) -> np.ndarray:
    """An Arrow list<double> column of vectors of ``d`` values as a (rows, d) array, without a
    Python object per row; another length is refused in one line."""
    lengths = np.diff(np.asarray(column.offsets))
    if (lengths != d).any():
        raise ConfigError(f"spark: the features column holds vectors of {d} and of "
                          f"{int(lengths[lengths != d][0])} values; expected one length")
    return np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, d)


class _FittedModel(Model, _Shared, MLWritable, MLReadable):
    """A fitted shardlearn estimator inside a ``pyspark.ml`` Model."""

    def __init__(self, est=None):
        super().__init__()
        self._shared_defaults(0.0)
        self.est = est

    def _transform(self, dataset):
        import pandas as pd
        from pyspark.ml.functions import array_to_vector, vector_to_array
        from pyspark.sql import functions as F
        from pyspark.sql.functions import pandas_udf

        est = self.est
        raw_udf = pandas_udf(lambda s: pd.Series(list(_raw(est, np.stack(s.to_numpy())))), "array<double>")
        out = dataset.withColumn("__raw", raw_udf(vector_to_array(F.col(self.getFeaturesCol()))))
        if getattr(est, "classes_", None) is None:
            return out.withColumn(self.getPredictionCol(), F.col("__raw")[0]).drop("__raw")
        classes = [float(c) for c in est.classes_]
        out = out.withColumn(self.getRawPredictionCol(), array_to_vector(F.col("__raw")))
        position = F.expr("array_position(__raw, array_max(__raw))").cast("int")  # 1-based: the best class's
        out = out.withColumn(self.getPredictionCol(), F.element_at(F.array(*[F.lit(c) for c in classes]), position))
        if hasattr(est, "predict_proba"):
            proba = pandas_udf(lambda s: pd.Series(list(_proba(est, np.stack(s.to_numpy())))), "array<double>")
            out = out.withColumn(self.getProbabilityCol(),
                                 array_to_vector(proba(vector_to_array(F.col(self.getFeaturesCol())))))
        return out.drop("__raw")

    def write(self):
        return _ModelWriter(self)

    @classmethod
    def read(cls):
        return _ModelReader(cls)


def _raw(est, X):
    """Per row: ``[score]`` for regression, ``[-z, z]`` binary, ``z`` per class otherwise."""
    if getattr(est, "classes_", None) is None:
        return est.predict(X)[:, None]
    z = est.decision_function(X)
    return np.column_stack([-z, z]) if z.ndim == 1 else z


def _proba(est, X):
    return est.predict_proba(X)


class LogisticRegression(_Estimator):
    """shardlearn's ``LogisticRegression`` (binary or multinomial) as a Spark ML Estimator."""

    KIND = "LogisticRegression"

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._shared_defaults(1e-4)
        self._set(**self._input_kwargs)


class LinearRegression(_Estimator):
    """shardlearn's ``LinearRegression`` (least squares, elastic net) as a Spark ML Estimator."""

    KIND = "LinearRegression"

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._shared_defaults(0.0)
        self._set(**self._input_kwargs)


class LinearSVC(_Estimator):
    """shardlearn's ``LinearSVC`` (squared hinge) as a Spark ML Estimator."""

    KIND = "LinearSVC"

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._shared_defaults(1e-4)
        self._set(**self._input_kwargs)


class LogisticRegressionModel(_FittedModel):
    pass


class LinearRegressionModel(_FittedModel):
    pass


class LinearSVCModel(_FittedModel):
    pass


_MODELS = {"LogisticRegression": LogisticRegressionModel, "LinearRegression": LinearRegressionModel,
           "LinearSVC": LinearSVCModel}


class _ParamsWriter(MLWriter):
    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path):
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)


class _ParamsReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path):
        meta = DefaultParamsReader.loadMetadata(path, self.sc)
        inst = self.cls()
        DefaultParamsReader.getAndSetParams(inst, meta)
        inst._resetUid(meta["uid"])
        return inst


class _ModelWriter(_ParamsWriter):
    def saveImpl(self, path):
        super().saveImpl(path)
        self.instance.est.save(os.path.join(path, "shardlearn"))  # a shardlearn model directory: no pickle


class _ModelReader(_ParamsReader):
    def load(self, path):
        import shardlearn

        model = super().load(path)
        model.est = shardlearn.load(os.path.join(path, "shardlearn"))
        return model
