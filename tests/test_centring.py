"""Dense features far from 0 under the per-example kernel (``kernels.sgd.run``'s ``shift``,
``strategies/precond.centre``): the steps are taken in centred coordinates and written back,
so a feature like a year or an age no longer fights the intercept. Before, a logistic fit of
a table with one such column stalled at 1.09 x the optimum's objective after 5 epochs (1.085
after 20) and a regression at 1.32, under every strategy; every test here fails without it."""
import numpy as np
import pytest

from benchmarks.bench_centring import table as _table  # 8 dense columns of scales 0.01-1,000, one at 50 +- 1
from shardlearn import LinearRegression, LogisticRegression
from shardlearn.kernels import sgd as kernel


@pytest.mark.parametrize("rule", ["normalized", "adagrad", "sgd", "ftrl"])
@pytest.mark.parametrize("loss", ["logistic", "squared", "hinge"])
@pytest.mark.parametrize("l1, l2, weighted", [(0.0, 0.0, False), (1e-3, 1e-2, True)])
def test_the_shifted_kernel_equals_the_kernel_on_centred_rows(rule, loss, l1, l2, weighted):
    """``run(X, shift=m)`` is ``run(X - m)`` with the intercept written back as ``b - m . w``:
    the same weights, the same scores, the same progressive loss, for every rule, loss, penalty
    and importance weights (the state stays in the original coordinates)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5)) * [1.0, 3.0, 0.5, 1.0, 2.0] + [0.0, 40.0, -3.0, 1.0, 7.0]
    y = (X @ [1.0, 0.1, -2.0, 0.5, 0.3] - 1.0 + rng.normal(size=300) > 0).astype(float)
    if loss == "squared":
        y = X @ [1.0, 0.1, -2.0, 0.5, 0.3] + rng.normal(size=300)
    h = rng.uniform(0.1, 3.0, size=300) if weighted else None
    m = X.mean(axis=0)
    lr = {"normalized": 0.5, "adagrad": 0.3, "sgd": 0.002, "ftrl": 0.3}[rule]
    opts = dict(loss=loss, rule=rule, lr=lr, l1=l1, l2=l2, end=600.0, span=600.0)
    shifted, centred = kernel.new_state(5, rule), kernel.new_state(5, rule)
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(300)
        z1, z2 = np.empty(300), np.empty(300)
        out1 = kernel.run(shifted, X, y, h, order, shift=m, predictions=z1, **opts)
        out2 = kernel.run(centred, X - m, y, h, order, predictions=z2, **opts)
        np.testing.assert_allclose(out1, out2, rtol=1e-9)
        np.testing.assert_allclose(z1, z2, rtol=1e-9, atol=1e-9)
    w1, w2 = kernel.weights(shifted), kernel.weights(centred)
    np.testing.assert_allclose(w1[:-1], w2[:-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w1[-1], w2[-1] - m @ w2[:-1], rtol=1e-9, atol=1e-9)
    assert abs(m @ w2[:-1]) > 0.05  # the feature far from 0 carries weight: the write-back is tested


@pytest.mark.parametrize("rule", ["normalized", "adagrad", "sgd", "ftrl"])
@pytest.mark.parametrize("l1, l2, weighted", [(0.0, 0.0, False), (1e-3, 1e-2, True)])
def test_the_shifted_softmax_kernel_equals_the_kernel_on_centred_rows(rule, l1, l2, weighted):
    """The same for a softmax over 3 classes: each class's intercept takes back ``m . w_k``."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5)) * [1.0, 3.0, 0.5, 1.0, 2.0] + [0.0, 40.0, -3.0, 1.0, 7.0]
    z = X @ [1.0, 0.1, -2.0, 0.5, 0.3] + rng.normal(size=300)
    y = np.searchsorted(np.quantile(z, [1 / 3, 2 / 3]), z).astype(float)
    h = rng.uniform(0.1, 3.0, size=300) if weighted else None
    m = X.mean(axis=0)
    lr = {"normalized": 0.5, "adagrad": 0.3, "sgd": 0.002, "ftrl": 0.3}[rule]
    opts = dict(loss="softmax", rule=rule, lr=lr, l1=l1, l2=l2, end=600.0, span=600.0, classes=3)
    shifted, centred = kernel.new_state(5, rule, 3), kernel.new_state(5, rule, 3)
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(300)
        out1 = kernel.run(shifted, X, y, h, order, shift=m, **opts)
        out2 = kernel.run(centred, X - m, y, h, order, **opts)
        np.testing.assert_allclose(out1, out2, rtol=1e-9)
    w1, w2 = kernel.weights(shifted).reshape(6, 3), kernel.weights(centred).reshape(6, 3)
    np.testing.assert_allclose(w1[:-1], w2[:-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w1[-1], w2[-1] - m @ w2[:-1], rtol=1e-9, atol=1e-9)
    assert np.abs(m @ w2[:-1]).max() > 0.05


@pytest.mark.parametrize("rule", ["normalized", "adagrad", "sgd", "ftrl"])
@pytest.mark.parametrize("loss, classes", [("logistic", 1), ("squared", 1), ("hinge", 1), ("softmax", 3)])
def test_a_held_state_is_the_state_of_the_centred_rows(rule, loss, classes):
    """``run(X, shift=m, held=True)`` (Hogwild's shared state) keeps exactly the state of
    ``run(X - m)``: the intercept stays centred, nothing is written back per row, so a write
    another worker overwrites cannot move the intercept by ``m`` times a weight's change;
    ``online.params(..., held=m)`` writes it back once. Rows of weight 0 are scored centred."""
    from shardlearn.strategies import online

    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 4)) * [1.0, 3.0, 0.5, 2.0] + [0.0, 40.0, -3.0, 7.0]
    z = X @ [1.0, 0.1, -2.0, 0.3] + rng.normal(size=200)
    y = {"squared": z, "softmax": np.searchsorted(np.quantile(z, [1 / 3, 2 / 3]), z)}.get(loss, z > np.median(z))
    y = np.asarray(y, dtype=float)
    h = rng.uniform(0.1, 3.0, size=200)
    h[::17] = 0.0  # scored, not learned from
    m = X.mean(axis=0)
    lr = {"normalized": 0.5, "adagrad": 0.3, "sgd": 0.002, "ftrl": 0.3}[rule]
    opts = dict(loss=loss, rule=rule, lr=lr, l1=1e-3, l2=1e-2, end=400.0, span=400.0, classes=classes)
    held, centred = kernel.new_state(4, rule, classes), kernel.new_state(4, rule, classes)
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(200)
        z1, z2 = (np.empty(200), np.empty(200)) if classes == 1 else (None, None)
        out1 = kernel.run(held, X, y, h, order, shift=m, held=True, predictions=z1, **opts)
        out2 = kernel.run(centred, X - m, y, h, order, predictions=z2, **opts)
        np.testing.assert_array_equal(out1, out2)
        if classes == 1:
            np.testing.assert_array_equal(z1, z2)
    np.testing.assert_array_equal(held["ws"], centred["ws"])
    w = kernel.weights(centred)
    back = online.params(w, 4, classes, held=m)
    plain = online.params(w, 4, classes)
    np.testing.assert_allclose(back["b"], plain["b"] - m @ plain["w"], rtol=1e-12)
    assert np.abs(m @ plain["w"]).max() > 0.05  # the write-back moves the intercept: it is tested


def test_hogwild_workers_centre_on_every_row_together():
    """Hogwild's one held state needs one shift: ``precond.centre(..., comm)`` is the column
    mean of every worker's rows (two real processes), not each shard's own."""
    from shardlearn.runtime import group

    X = np.random.default_rng(5).normal(size=(100, 3)) + [0.0, 50.0, -20.0]
    X[::2, 2] += 10.0  # the two workers' rows (rank::2) have means 10 apart
    got = group.get(2).run("tests.worker_jobs:centre_together", X=X)
    want = np.where(np.abs(X.mean(axis=0)) > 0.1 * np.sqrt((X ** 2).mean(axis=0)), X.mean(axis=0), 0.0)
    for shift in got:
        np.testing.assert_allclose(shift, want, rtol=1e-12)


def test_without_an_intercept_or_on_sparse_rows_the_shift_is_not_taken():
    """No intercept to take the shift back: the kernel ignores it (centring would change the model)."""
    X = np.random.default_rng(2).normal(size=(50, 3)) + 5.0
    y = (X[:, 0] > 5.0).astype(float)
    a, b = kernel.new_state(3, "normalized"), kernel.new_state(3, "normalized")
    kernel.run(a, X, y, None, np.arange(50), loss="logistic", rule="normalized", lr=0.5, fit_intercept=False,
               shift=X.mean(axis=0))
    kernel.run(b, X, y, None, np.arange(50), loss="logistic", rule="normalized", lr=0.5, fit_intercept=False)
    np.testing.assert_array_equal(a["ws"], b["ws"])


STRATEGIES = [dict(solver="sgd", workers=1), dict(strategy="bsp", workers=2), dict(strategy="local_sgd", workers=2),
              dict(strategy="asp", workers=2), dict(strategy="ssp", workers=2), dict(strategy="hogwild", workers=2),
              dict(strategy="bsp", workers=2, servers=1)]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: f"{s.get('strategy', 'sgd')}{s.get('servers', '')}")
@pytest.mark.parametrize("estimator, options", [(LogisticRegression, {}),
                                                (LogisticRegression, dict(alpha=1e-3, l1_ratio=0.5)),
                                                (LogisticRegression, dict(weighted=True)),
                                                (LinearRegression, dict(alpha=1e-4)),
                                                (LinearRegression, dict(alpha=1e-4, weighted=True))],
                         ids=["logistic", "logistic-l1", "logistic-weighted", "linear", "linear-weighted"])
def test_every_strategy_reaches_the_optimum_with_a_feature_far_from_zero(strategy, estimator, options):
    """At the defaults (5 epochs) every synchronous strategy ends within 0.5% of the optimum's
    objective, the asynchronous ones within 3% (before: logistic 1.083-1.099, linear 1.20-1.34)."""
    options = dict(options)
    X, yb, yr = _table()
    y = yb if estimator is LogisticRegression else yr
    sw = np.random.default_rng(3).uniform(0.2, 3.0, size=y.size) if options.pop("weighted", False) else None
    best = estimator(tol=1e-10, max_iter=2000, **options).fit(X, y, sample_weight=sw).objective(X, y, sample_weight=sw)
    fit = estimator(random_state=0, **options, **strategy).fit(X, y, sample_weight=sw)
    # the asynchronous strategies' races move the result from run to run (bench_centring.py: asp up to 1.0031,
    # hogwild 1.0051; on a loaded machine a worker runs ahead: 1.014 seen); the synchronous ones repeat to the digit
    bound = {"hogwild": 1.03, "asp": 1.03, "ssp": 1.03}.get(strategy.get("strategy"), 1.005)
    assert fit.objective(X, y, sample_weight=sw) <= bound * best


@pytest.mark.parametrize("estimator", [LogisticRegression, LinearRegression])
def test_partial_fit_twice_equals_fit_and_keeps_the_first_calls_centre(estimator):
    """``partial_fit`` twice equals ``fit(max_iter=2)`` on such a table (both centre on the
    first call's rows, the second call keeps that centre); a regression's two calls at the
    constant rate end at 1.018 x the optimum's objective (before: 1.17)."""
    X, yb, yr = _table(3000)
    y = yb if estimator is LogisticRegression else yr
    opts = dict(alpha=1e-4, solver="sgd", random_state=0, shuffle=False, schedule="constant")
    fit = estimator(max_iter=2, **opts).fit(X, y)
    part = estimator(**opts)
    for _ in range(2):
        part.partial_fit(X, y, **({"classes": [0, 1]} if estimator is LogisticRegression else {}))
    np.testing.assert_allclose(part.coef_, fit.coef_, rtol=1e-10)
    np.testing.assert_allclose(part.intercept_, fit.intercept_, rtol=1e-10)
    if estimator is LinearRegression:
        best = estimator(alpha=1e-4, tol=1e-10, max_iter=2000).fit(X, y).objective(X, y)
        assert part.objective(X, y) <= 1.05 * best


@pytest.mark.parametrize("options", [["--solver", "sgd", "--workers", "1"],
                                     ["--strategy", "local_sgd", "--workers", "2"],
                                     ["--strategy", "asp", "--workers", "2"]], ids=["sgd", "local_sgd", "asp"])
@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "streamed"])
def test_a_csv_file_with_a_column_far_from_zero(tmp_path, capsys, options, stream):
    """``shardlearn train`` on such a CSV, read whole or streamed (centred on its survey pass's
    column sums, ``data.stream.survey``): near the optimum (before: 1.09 x, streamed and not)."""
    import pandas as pd

    import shardlearn
    from shardlearn.cli import main

    X, y, _ = _table()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]).assign(label=y)
    frame.to_csv(tmp_path / "t.csv", index=False)
    argv = ["train", str(tmp_path / "t.csv"), "--label", "label", "--model", "logistic", "--out", str(tmp_path / "m")]
    assert main(argv + options + (["--stream"] if stream else [])) == 0
    capsys.readouterr()
    best = LogisticRegression(tol=1e-10, max_iter=2000).fit(X, y).objective(X, y)
    bound = 1.03 if "asp" in options else 1.01  # asp's races: 1.0025 alone, 1.014 seen on a loaded machine
    assert shardlearn.load(str(tmp_path / "m")).objective(X, y) <= bound * best
