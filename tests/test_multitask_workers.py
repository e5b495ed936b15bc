"""Joint multi-task fits with the tasks partitioned across real worker processes (issue 17,
item 2): each worker holds the rows and parameters of its own tasks (a hash of the task id),
and the result equals one process's to 1e-6 over losses, penalties, intercept, weights,
solvers and worker counts; only the shared part's gradient and the solver's dot products
travel (counted)."""
import numpy as np
import pytest

from shardlearn import MultiTaskLinearRegression, MultiTaskLogisticRegression
from shardlearn.core.errors import ConfigError
from shardlearn.data.partition import key_hashes


def _data(n=900, d=5, T=30, seed=0, classify=False):
    rng = np.random.default_rng(seed)
    X, t = rng.normal(size=(n, d)) * rng.uniform(0.2, 5.0, size=d), rng.integers(T, size=n)
    W = rng.normal(size=d) + 0.5 * rng.normal(size=(T, d))
    z = np.einsum("ij,ij->i", X, W[t]) / 3 + rng.normal(size=T)[t]
    y = (z + rng.normal(size=n) > 0).astype(int) if classify else z + 0.3 * rng.normal(size=n)
    return X, y, np.array(["task-%d" % k for k in range(T)])[t]


def _all(m):
    return np.r_[m.coef_shared_, m.coef_tasks_.ravel(), m.intercept_]


@pytest.mark.parametrize("cls", [MultiTaskLinearRegression, MultiTaskLogisticRegression])
@pytest.mark.parametrize("l1_ratio,fit_intercept,weighted,solver", [
    (0.0, True, False, "lbfgs"), (0.0, False, True, "lbfgs"), (0.5, True, True, "lbfgs"),
    (1.0, False, False, "lbfgs"), (0.3, True, True, "gd")])
def test_two_workers_equal_one_process(cls, l1_ratio, fit_intercept, weighted, solver):
    X, y, t = _data(classify=cls is MultiTaskLogisticRegression)
    sw = np.random.default_rng(4).uniform(0.2, 3.0, size=y.size) if weighted else None
    kw = dict(alpha=0.02, task_alpha=0.3, l1_ratio=l1_ratio, fit_intercept=fit_intercept, solver=solver,
              max_iter=5000, tol=1e-10)
    one = cls(**kw).fit(X, y, tasks=t, sample_weight=sw)
    two = cls(**kw, workers=2).fit(X, y, tasks=t, sample_weight=sw)
    np.testing.assert_allclose(_all(two), _all(one), atol=1e-6)
    assert two.tasks_.tolist() == one.tasks_.tolist()
    np.testing.assert_allclose(two.predict(X, tasks=t) if cls is MultiTaskLinearRegression
                               else two.predict_proba(X, tasks=t), one.predict(X, tasks=t)
                               if cls is MultiTaskLinearRegression else one.predict_proba(X, tasks=t), atol=1e-6)
    # each worker read exactly the rows of the tasks its hash gives it
    owner = key_hashes(two.tasks_) % 2
    rows = [r["rows"] for r in two.fit_result_.reports]
    counts = {k: int(np.sum(owner[np.searchsorted(two.tasks_, t)] == k)) for k in (0, 1)}
    assert rows == [counts[0], counts[1]] and sum(rows) == len(y)
    assert [r["tasks"] for r in two.fit_result_.reports] == [int(np.sum(owner == 0)), int(np.sum(owner == 1))]


@pytest.mark.filterwarnings("ignore:3 local workers on 2 cores")
def test_three_workers_and_more_workers_than_tasks_hold_their_tasks():
    X, y, t = _data(n=300, T=2)
    one = MultiTaskLinearRegression(alpha=0.1, task_alpha=0.5, tol=1e-10).fit(X, y, tasks=t)
    three = MultiTaskLinearRegression(alpha=0.1, task_alpha=0.5, tol=1e-10, workers=3).fit(X, y, tasks=t)
    np.testing.assert_allclose(_all(three), _all(one), atol=1e-6)
    assert sorted(r["tasks"] for r in three.fit_result_.reports)[0] == 0  # a worker with no task still takes part


@pytest.mark.parametrize("l1_ratio", [0.0, 0.5])
def test_only_the_shared_part_travels(l1_ratio):
    """Per objective evaluation a worker sends the shared gradient and the loss (d + 1 numbers),
    and per iteration the solver's new dot products (3 (2m + 1) at most, m = 10 pairs), plus two
    numbers per trial point with L1; never a task's parameters: 30 and 300 tasks cost the same."""
    d, memory = 5, 10
    sent = {}
    for T in (30, 300):
        X, y, t = _data(n=3000, d=d, T=T)
        m = MultiTaskLinearRegression(alpha=0.05, task_alpha=0.5, l1_ratio=l1_ratio, workers=2).fit(X, y, tasks=t)
        for r in m.fit_result_.reports:
            bound = 8 * (r["evaluations"] * (d + 1 + (4 if l1_ratio else 0))
                         + (m.n_iter_ + 2) * 3 * (2 * memory + 3) + 4)  # + the weight total and w0's curvature
            bound += 8 * d
            assert r["bytes_sent"] <= bound, (T, r)
            if T == 300:  # far below one copy of the whole model (1,805 numbers) per evaluation
                assert r["bytes_sent"] / r["evaluations"] < 8 * (d + T * d + T) / 10
        sent[T] = max(r["bytes_sent"] / r["evaluations"] for r in m.fit_result_.reports)
    assert sent[300] <= 1.5 * sent[30]


def test_settings_are_checked_before_any_worker_starts():
    X, y, t = _data(n=60)
    for kw, text in [({"l1_ratio": 1.5}, r"l1_ratio must be in \[0, 1\], got 1.5"),
                     ({"solver": "sgd"}, "solver='sgd' is not known; expected one of lbfgs, gd"),
                     ({"workers": 0}, "workers must be a whole number >= 1, got 0"),
                     ({"alpha": -1.0}, "alpha and task_alpha must be >= 0")]:
        with pytest.raises(ConfigError, match=text):
            MultiTaskLinearRegression(**kw).fit(X, y, tasks=t)


def _write_csv(path, X, y, t, with_task=True):
    import pandas as pd

    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    if with_task:
        df.insert(2, "school", t)  # the task column sits among the features: it must not become one
    df["target"] = y
    df.to_csv(path, index=False)


@pytest.mark.parametrize("model", ["linear", "logistic"])
def test_cli_trains_evaluates_and_predicts_per_task(tmp_path, capsys, model):
    from shardlearn.cli import main
    import json

    X, y, t = _data(n=600, T=12, classify=model == "logistic")
    _write_csv(tmp_path / "train.csv", X[:450], y[:450], t[:450])
    _write_csv(tmp_path / "test.csv", X[450:], y[450:], t[450:])
    out = str(tmp_path / "m")
    assert main(["train", str(tmp_path / "train.csv"), "--label", "target", "--task-column", "school", "--model",
                 model, "--alpha", "0.05", "--task-alpha", "0.4", "--l1-ratio", "0.2", "--workers", "2",
                 "--tol", "1e-10", "--out", out]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 450 and sum(summary["rows_per_worker"]) == 450 and summary["features"] == 5
    assert summary["tasks"] == np.unique(t[:450]).size and sum(summary["tasks_per_worker"]) == summary["tasks"]
    cls = MultiTaskLinearRegression if model == "linear" else MultiTaskLogisticRegression
    ref = cls(alpha=0.05, task_alpha=0.4, l1_ratio=0.2, tol=1e-10).fit(X[:450], y[:450], tasks=t[:450])
    assert main(["evaluate", out, str(tmp_path / "test.csv")]) == 0
    got = json.loads(capsys.readouterr().out)
    key = "mse" if model == "linear" else "logloss"
    from shardlearn.evaluation import evaluate

    want = evaluate(ref, X[450:], y[450:], tasks=t[450:])
    assert got[key] == pytest.approx(want[key], rel=1e-6) and got["rows"] == 150
    assert set(got["per_task"]) == set(np.unique(t[450:])) and len(got["per_task"]) == len(want["per_task"])
    for name, m in want["per_task"].items():
        assert got["per_task"][name]["rows"] == m["rows"] and got["per_task"][name][key] == pytest.approx(m[key], rel=1e-6)
    assert got["task_mean"][key] == pytest.approx(np.mean([m[key] for m in want["per_task"].values()]), rel=1e-6)
    assert main(["predict", out, str(tmp_path / "test.csv"), "--output", str(tmp_path / "p.csv"),
                 "--id", "school"]) == 0
    import pandas as pd

    p = pd.read_csv(tmp_path / "p.csv")
    assert p["school"].tolist() == t[450:].tolist() and len(p) == 150
    want_pred = ref.predict(X[450:], tasks=t[450:])
    np.testing.assert_allclose(p["prediction"], want_pred, rtol=1e-6, atol=1e-8)


def test_cli_task_column_errors(tmp_path, capsys):
    from shardlearn.cli import main

    X, y, t = _data(n=60, T=3)
    _write_csv(tmp_path / "d.csv", X, y, t)
    for extra, text in [(["--task-column", "kid"], "column 'kid' not found"),
                        (["--task-column", "school", "--model", "hinge"],
                         "--task-column fits a joint linear or logistic model; --model hinge is not one"),
                        (["--task-column", "school", "--model", "linear", "--strategy", "bsp"],
                         "--strategy does not apply with --task-column")]:
        code = main(["train", str(tmp_path / "d.csv"), "--label", "target", "--out", str(tmp_path / "m"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and text in err and err.count("\n") == 1, err
    assert main(["train", str(tmp_path / "d.csv"), "--label", "target", "--model", "linear", "--task-column",
                 "school", "--out", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    _write_csv(tmp_path / "no_task.csv", X, y, t, with_task=False)
    code = main(["evaluate", str(tmp_path / "m"), str(tmp_path / "no_task.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "school" in err and err.count("\n") == 1, err
