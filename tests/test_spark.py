"""Spark (issue 19, item 1): shardlearn's estimators as pyspark.ml Estimators on a real
local[2] Spark: each barrier task is a rank reading its own partition, the result equals
the one-process fit, transform gives shardlearn's predictions, and the estimators work in
Pipeline and CrossValidator and save and load; too many ranks is one line at once."""
import os
import sys

import numpy as np
import pytest

pytest.importorskip("pyspark")

import shardlearn  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the executors' Python: this interpreter
    from pyspark.sql import SparkSession

    s = (SparkSession.builder.master("local[2]").appName("shardlearn-tests").config("spark.ui.enabled", "false")
         .config("spark.driver.memory", "2g").config("spark.sql.shuffle.partitions", "4").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    try:
        yield s
    finally:
        s.stop()


def _frame(spark, n=1200, seed=0, weights=False):
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [1.0, 5.0, 0.2, 1.0]
    z = X @ np.array([1.0, -0.2, 3.0, 0.5])
    y = (z + rng.normal(size=n) > 0).astype(float)
    w = rng.uniform(0.5, 2.0, size=n)
    rows = [(Vectors.dense(x), float(t), float(zz), float(ww)) for x, t, zz, ww in zip(X, y, z, w)]
    return spark.createDataFrame(rows, ["features", "label", "target", "w"]), X, y, z, w


def test_logistic_regression_equals_one_process_and_transforms(spark):
    from shardlearn.spark import LogisticRegression

    df, X, y, _, _ = _frame(spark)
    model = LogisticRegression(alpha=1e-3, tol=1e-10, numWorkers=2).fit(df)
    want = shardlearn.LogisticRegression(alpha=1e-3, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(model.est.coef_, want.coef_, rtol=1e-6, atol=1e-8)
    assert sum(r["rows"] for r in model.est.fit_result_.reports) == 1200 and len(model.est.fit_result_.reports) == 2
    out = model.transform(df).select("prediction", "probability", "rawPrediction").toPandas()
    np.testing.assert_allclose(np.stack(out.probability.map(lambda v: v.toArray())), want.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(out.prediction.to_numpy(), want.predict(X))


def test_linear_regression_with_a_weight_column(spark):
    from shardlearn.spark import LinearRegression

    df, X, _, z, w = _frame(spark)
    model = LinearRegression(labelCol="target", weightCol="w", alpha=0.01, tol=1e-10, numWorkers=2).fit(df)
    want = shardlearn.LinearRegression(alpha=0.01, tol=1e-10).fit(X, z, sample_weight=w)
    np.testing.assert_allclose(model.est.coef_, want.coef_, rtol=1e-6, atol=1e-8)
    pred = model.transform(df).select("prediction").toPandas().prediction.to_numpy()
    np.testing.assert_allclose(pred, want.predict(X), rtol=1e-9, atol=1e-9)


def test_pipeline_cross_validator_and_persistence(spark, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from shardlearn.spark import LogisticRegression

    df, X, y, _, _ = _frame(spark, n=800)
    cols = df.select(vector_to_array("features").alias("a"), "label")
    flat = cols.select(*[cols.a[i].alias(f"x{i}") for i in range(4)], "label")
    lr = LogisticRegression(numWorkers=2, tol=1e-8)
    pipe = Pipeline(stages=[VectorAssembler(inputCols=[f"x{i}" for i in range(4)], outputCol="features"), lr])
    grid = ParamGridBuilder().addGrid(lr.alpha, [1e-4, 10.0]).build()
    cv = CrossValidator(estimator=pipe, estimatorParamMaps=grid, evaluator=BinaryClassificationEvaluator(),
                        numFolds=2, seed=0)
    fitted = cv.fit(flat)
    assert fitted.avgMetrics[0] > fitted.avgMetrics[1] > 0.5  # the light penalty wins on AUC
    best = fitted.bestModel
    best.write().overwrite().save(str(tmp_path / "pipe"))
    back = PipelineModel.load(str(tmp_path / "pipe"))
    a = best.transform(flat).select("probability").toPandas().probability.map(lambda v: v[1]).to_numpy()
    b = back.transform(flat).select("probability").toPandas().probability.map(lambda v: v[1]).to_numpy()
    np.testing.assert_array_equal(a, b)
    assert back.stages[-1].est.alpha == 1e-4


def test_more_ranks_than_slots_is_refused_at_once(spark):
    from shardlearn.core.errors import ConfigError
    from shardlearn.spark import LinearSVC

    df, _, _, _, _ = _frame(spark, n=100)
    with pytest.raises(ConfigError, match="spark: numWorkers=3, but the cluster runs 2 tasks at once"):
        LinearSVC(numWorkers=3).fit(df)


def test_vectors_of_another_length_and_an_empty_frame_are_refused(spark):
    from pyspark.ml.linalg import Vectors

    from shardlearn.core.errors import ConfigError
    from shardlearn.spark import LogisticRegression

    rows = [(Vectors.dense([1.0, 2.0, 3.0]), 1.0)] * 20 + [(Vectors.dense([1.0, 2.0, 3.0, 4.0]), 0.0)] * 20
    df = spark.createDataFrame(rows, ["features", "label"]).coalesce(1)
    with pytest.raises(Exception, match="spark: the features column holds vectors of 3 and of 4 values"):
        LogisticRegression(numWorkers=2, timeoutSeconds=20).fit(df)
    with pytest.raises(ConfigError, match="spark: the DataFrame has no rows to fit"):
        LogisticRegression(numWorkers=2).fit(df.limit(0))
