"""One model per group (issue 17, item 3): the batched per-group fits equal shardlearn's own
estimator fitted on each group's rows alone, in one process and on 2 workers (groups by
hash, exact rows per worker); the slow path (L1, hinge) is that estimator itself; routing,
single-class groups, unknown groups (error or fallback), model files, the CLI."""
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import shardlearn
from shardlearn import LinearRegression, LinearSVC, LogisticRegression, fit_per_group
from shardlearn.core.errors import ConfigError, DataError
from shardlearn.data.partition import key_hashes


def _data(G=40, rows=30, d=4, seed=0, classify=False):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(rows // 2, rows * 2, size=G)
    g = np.repeat(np.array(["g%03d" % k for k in range(G)]), sizes)
    X = rng.normal(size=(g.size, d)) * rng.uniform(0.5, 3.0, size=d)
    W = rng.normal(size=(G, d))
    k = np.searchsorted(np.unique(g), g)
    z = np.einsum("ij,ij->i", X, W[k]) + rng.normal(size=G)[k]
    y = (z + 2 * rng.normal(size=g.size) > 0).astype(int) if classify else z + rng.normal(size=g.size)
    return X, y, g


def _check_against_each_group(m, est, X, y, g, sw, atol):
    for k, name in enumerate(m.groups_):
        r = g == name
        ref = clone(est).fit(X[r], y[r], sample_weight=None if sw is None else sw[r])
        np.testing.assert_allclose(m.coef_[k], np.ravel(ref.coef_), atol=atol)
        assert m.intercept_[k] == pytest.approx(float(np.ravel(ref.intercept_)[0]), abs=atol)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("est,classify", [
    (LinearRegression(alpha=0.05, tol=1e-12), False), (LinearRegression(alpha=0.0, tol=1e-12), False),
    (LinearRegression(alpha=0.1, fit_intercept=False, tol=1e-12), False),
    (LogisticRegression(alpha=0.02, tol=1e-12, max_iter=2000), True),
    (LogisticRegression(alpha=0.1, fit_intercept=False, tol=1e-12, max_iter=2000), True)])
@pytest.mark.parametrize("weighted", [False, True])
def test_batched_fits_equal_the_estimator_on_each_group(est, classify, workers, weighted):
    X, y, g = _data(classify=classify)
    sw = np.random.default_rng(3).uniform(0.2, 3.0, size=y.size) if weighted else None
    m = fit_per_group(est, X, y, g, sample_weight=sw, workers=workers)
    _check_against_each_group(m, est, X, y, g, sw, atol=1e-6)
    assert m.groups_.tolist() == sorted(set(g))
    if workers == 2:  # each worker fitted exactly the rows of the groups its hash gives it
        owner = key_hashes(m.groups_) % 2
        per_group = pd.Series(g).value_counts().reindex(m.groups_).to_numpy()
        assert [r["rows"] for r in m.reports_] == [int(per_group[owner == k].sum()) for k in (0, 1)]
        assert [r["groups"] for r in m.reports_] == [int((owner == k).sum()) for k in (0, 1)]
    pred = m.predict(X, groups=g)
    k = np.searchsorted(m.groups_, g)
    z = np.einsum("ij,ij->i", X, m.coef_[k]) + m.intercept_[k]
    np.testing.assert_allclose(pred, z) if not classify else np.testing.assert_array_equal(pred, (z > 0).astype(int))


@pytest.mark.parametrize("est", [LogisticRegression(alpha=0.05, l1_ratio=0.5), LinearSVC(alpha=0.05)])
def test_settings_outside_the_batch_fit_the_estimator_itself_per_group(est):
    X, y, g = _data(G=6, classify=True)
    m = fit_per_group(est, X, y, g, workers=2)
    _check_against_each_group(m, est, X, y, g, None, atol=1e-12)


def test_single_class_groups_unknown_groups_fallback_and_files(tmp_path):
    X, y, g = _data(G=10, classify=True)
    y = np.where(g == "g003", 1, y)  # one group holds only positives
    labels = np.where(y == 1, "yes", "no")
    m = fit_per_group(LogisticRegression(alpha=0.05), X, labels, g)
    k = m.groups_.tolist().index("g003")
    assert m.single_[k] == 1 and (m.single_ >= 0).sum() == 1
    r = g == "g003"
    assert (m.predict(X[r], groups=g[r]) == "yes").all() and (m.predict_proba(X[r], groups=g[r])[:, 1] == 1).all()
    with pytest.raises(DataError, match=r"2 row\(s\) of groups never seen in training, e.g. 'new'; fit with fallback="):
        m.predict(X[:2], groups=np.array(["new", "new"]))
    with pytest.raises(DataError, match=r"groups has shape \(3,\); expected \(2,\), one group per row of X"):
        m.predict(X[:2], groups=g[:3])
    fb = fit_per_group(LogisticRegression(alpha=0.05), X, labels, g, fallback="pooled")
    pooled = LogisticRegression(alpha=0.05).fit(X, labels)
    mixed = np.array(["new", "g001", "zz"])
    got = fb.predict_proba(X[:3], groups=mixed)
    np.testing.assert_allclose(got[[0, 2]], pooled.predict_proba(X[[0, 2]]))
    np.testing.assert_allclose(got[1], m.predict_proba(X[1:2], groups=mixed[1:2])[0])
    fb.save(str(tmp_path / "m"))
    back = shardlearn.load(str(tmp_path / "m"))
    assert type(back) is shardlearn.GroupedModel and back.kind == "LogisticRegression"
    np.testing.assert_array_equal(back.predict_proba(X[:3], groups=mixed), got)
    np.testing.assert_array_equal(back.predict(X, groups=g), fb.predict(X, groups=g))


def test_bad_input_is_one_line():
    X, y, g = _data(G=4)
    with pytest.raises(DataError, match=r"groups has shape \(5,\); expected"):
        fit_per_group(LinearRegression(), X, y, g[:5])
    with pytest.raises(DataError, match="fit_per_group fits binary classifiers: y has 3 classes"):
        fit_per_group(LogisticRegression(), X, np.arange(y.size) % 3, g)
    from sklearn.linear_model import Ridge

    with pytest.raises(ConfigError, match="fit_per_group fits shardlearn's LinearRegression, LogisticRegression, "
                                          "LinearSVC; got Ridge"):
        fit_per_group(Ridge(), X, y, g)
    with pytest.raises(ConfigError, match="fallback must be None, 'pooled' or a fitted estimator"):
        fit_per_group(LinearRegression(), X, y, g, fallback="mean")


def _csv(path, X, y, g):
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    df.insert(1, "store", g)
    df["target"] = y
    df.to_csv(path, index=False)


@pytest.mark.parametrize("model", ["linear", "logistic"])
def test_cli_group_by_trains_evaluates_and_predicts(tmp_path, capsys, model):
    from shardlearn.cli import main
    from shardlearn.evaluation import evaluate

    X, y, g = _data(classify=model == "logistic")
    _csv(tmp_path / "d.csv", X, y, g)
    out = str(tmp_path / "m")
    assert main(["train", str(tmp_path / "d.csv"), "--label", "target", "--group-by", "store", "--model", model,
                 "--alpha", "0.05", "--workers", "2", "--fallback", "pooled", "--out", out]) == 0
    s = json.loads(capsys.readouterr().out)
    owner = key_hashes(np.unique(g)) % 2
    per_group = pd.Series(g).value_counts().reindex(np.unique(g)).to_numpy()
    assert s["rows"] == y.size and s["rows_per_worker"] == [int(per_group[owner == k].sum()) for k in (0, 1)]
    assert s["groups"] == 40 and s["features"] == 4 and s["fallback"] == "pooled"
    est = LinearRegression(alpha=0.05) if model == "linear" else LogisticRegression(alpha=0.05)
    want = fit_per_group(est, X, y if model == "linear" else y.astype(float), g)
    back = shardlearn.load(out)
    np.testing.assert_allclose(back.coef_, want.coef_, atol=1e-9)
    assert main(["evaluate", out, str(tmp_path / "d.csv")]) == 0
    got = json.loads(capsys.readouterr().out)
    ref = evaluate(want, X, y if model == "linear" else y.astype(float), tasks=g)
    key = "mse" if model == "linear" else "logloss"
    assert got[key] == pytest.approx(ref[key], rel=1e-6) and len(got["per_task"]) == 40
    assert got["task_mean"][key] == pytest.approx(ref["task_mean"][key], rel=1e-6)
    # a row of a new store goes to the pooled model
    _csv(tmp_path / "new.csv", X[:3], y[:3], np.array(["brand-new", g[1], "other"]))
    assert main(["predict", out, str(tmp_path / "new.csv"), "--output", str(tmp_path / "p.csv")]) == 0
    p = pd.read_csv(tmp_path / "p.csv")
    assert len(p) == 3
    fb = back.fallback_
    if model == "linear":
        np.testing.assert_allclose(p["prediction"][[0, 2]], fb.predict(X[[0, 2]]), rtol=1e-9)
        assert p["prediction"][1] == pytest.approx(want.predict(X[1:2], groups=g[1:2])[0], rel=1e-9)


def test_cli_unknown_group_without_fallback_is_one_line(tmp_path, capsys):
    from shardlearn.cli import main

    X, y, g = _data(G=5)
    _csv(tmp_path / "d.csv", X, y, g)
    assert main(["train", str(tmp_path / "d.csv"), "--label", "target", "--group-by", "store", "--model", "linear",
                 "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    _csv(tmp_path / "new.csv", X[:2], y[:2], np.array(["nope", g[0]]))
    code = main(["predict", str(tmp_path / "m"), str(tmp_path / "new.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "1 row(s) of groups never seen in training, e.g. 'nope'" in err and err.count("\n") == 1
    code = main(["train", str(tmp_path / "d.csv"), "--label", "target", "--group-by", "store", "--task-column",
                 "store", "--out", str(tmp_path / "m2")])
    err = capsys.readouterr().err
    assert code == 2 and "--group-by and --task-column are two different models" in err
