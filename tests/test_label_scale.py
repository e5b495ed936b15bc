"""A regression's labels at any scale (``runtime/label_scale.py``): the adaptive rules step in
units of the labels' RMS, per example and in mini-batches, in one process, on workers and from a
streamed file (before: 15 x the optimum's held-out MSE at 1,000 times a target it fits,
``benchmarks/bench_labels.py``; every test here fails without the scale)."""
import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file

from shardlearn import LinearRegression
from shardlearn.runtime import distributed
from shardlearn.runtime.config import TrainConfig


def _table(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * rng.lognormal(0, 2, 6)
    y = X @ (rng.normal(size=6) / X.std(axis=0)) + 0.5 * rng.normal(size=n)
    return X[1500:], y[1500:], X[:1500], y[:1500]


def _mse(predicted, y) -> float:
    return float(np.mean((predicted - y) ** 2))


def _best(X, y, Xt, yt, **penalty) -> float:
    return _mse(LinearRegression(tol=1e-10, max_iter=1000, **penalty).fit(X, y).predict(Xt), yt)


@pytest.mark.parametrize("optimizer, batch_size", [("normalized", 256), ("adagrad", 1), ("adagrad", 256),
                                                   ("adam", 64)])
def test_a_regression_learns_the_same_model_whatever_its_labels_unit(optimizer, batch_size):
    """Labels times 1e-3, 1e3 and 1e6 give the model of the labels as they are, in their unit
    (the adaptive sums grow with the labels squared; the steps now grow with the labels), per
    example and in mini-batches, and the default's model is near the optimum after 2 epochs."""
    X, y, Xt, yt = _table()
    opts = dict(alpha=1e-4, solver="sgd", optimizer=optimizer, batch_size=batch_size, max_iter=2, random_state=0)
    base = LinearRegression(**opts).fit(X, y).predict(Xt)
    if optimizer == "normalized":  # the default; AdaGrad's and Adam's default rates are slower at any scale
        assert _mse(base, yt) <= 1.03 * _best(X, y, Xt, yt, alpha=1e-4)
    tol = 1e-3 if optimizer == "adam" else 1e-7  # Adam's epsilon (1e-8) weighs at labels of 1e-3
    for s in (1e-3, 1e3, 1e6):
        scaled = LinearRegression(**opts).fit(X, y * s).predict(Xt) / s
        np.testing.assert_allclose(scaled, base, rtol=tol, atol=tol * np.abs(base).max())


@pytest.mark.parametrize("options", [dict(optimizer="ftrl", batch_size=1), dict(l1_ratio=0.5),
                                     dict(fit_intercept=False), dict(sample_weight=True)])
def test_a_regression_on_labels_in_the_thousands_reaches_its_optimum(options):
    """FTRL (its beta keeps it from exact equivariance), L1 (the optimum itself moves with the
    labels' unit), no intercept and importance weights: each near the optimum of the stated
    problem after 2 epochs on labels of RMS ~2,000."""
    X, y, Xt, yt = _table()
    y, yt = y * 1e3, yt * 1e3
    options = dict(options)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, y.size) if options.pop("sample_weight", False) else None
    penalty = dict(alpha=1e-4, l1_ratio=options.pop("l1_ratio", 0.0), fit_intercept=options.pop("fit_intercept", True))
    est = LinearRegression(solver="sgd", max_iter=2, random_state=0, **penalty, **options).fit(X, y, sample_weight=weights)
    ref = LinearRegression(tol=1e-10, max_iter=1000, **penalty).fit(X, y, sample_weight=weights)
    assert _mse(est.predict(Xt), yt) <= 1.05 * _mse(ref.predict(Xt), yt)


@pytest.mark.parametrize("strategy", ["bsp", "local_sgd", "asp", "hogwild"])
def test_workers_learn_labels_in_the_thousands(strategy):
    """Every worker steps at the scale of all the workers' labels (one allreduce)."""
    X, y, Xt, yt = _table()
    y, yt = y * 1e3, yt * 1e3
    est = LinearRegression(alpha=1e-4, strategy=strategy, workers=2, max_iter=2, random_state=0).fit(X, y)
    assert _mse(est.predict(Xt), yt) <= 1.05 * _best(X, y, Xt, yt, alpha=1e-4)


def test_partial_fit_keeps_the_first_calls_label_scale():
    """``partial_fit`` twice is ``fit(max_iter=2)`` on labels in the thousands; a later call on
    labels of another scale continues at the first call's steps."""
    X, y, _, _ = _table()
    y = y * 1e3
    opts = dict(alpha=1e-4, solver="sgd", schedule="constant", random_state=3)
    once = LinearRegression(max_iter=2, tol=None, **opts).fit(X, y)
    twice = LinearRegression(**opts)
    twice.partial_fit(X, y)
    scale = twice.fit_result_.state.label_scale
    twice.partial_fit(X, y)
    np.testing.assert_array_equal(twice.coef_, once.coef_)
    twice.partial_fit(X, y * 10)
    assert twice.fit_result_.state.label_scale == scale == pytest.approx(0.25 * np.sqrt(np.mean(y * y)))


def test_a_streamed_file_steps_at_its_labels_scale(tmp_path):
    """A file fit out of core reads its labels in the survey pass: the same scale, the same model
    as the fit that holds the rows."""
    X, y, Xt, yt = _table()
    path = str(tmp_path / "big.libsvm")
    dump_svmlight_file(X, y * 1e3, path)
    cfg = TrainConfig(solver="sgd", strategy="bsp", alpha=1e-4, workers=2, max_iter=2, random_state=0, shuffle=False)
    held = distributed.train_file("linear", cfg, {"data": path})
    streamed = distributed.train_file("linear", TrainConfig(**dict(cfg.__dict__, stream=True)), {"data": path})
    np.testing.assert_allclose(streamed.params["w"], held.params["w"], rtol=1e-6)
    predicted = Xt @ streamed.params["w"] + float(streamed.params["b"])
    assert _mse(predicted, yt * 1e3) <= 1.05 * _best(X, y * 1e3, Xt, yt * 1e3, alpha=1e-4)
