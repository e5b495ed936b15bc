"""Per-example SGD on the compiled kernel (issue 14): the estimators' solver="sgd" with the
normalized rule (or batch_size=1) in one process and over local_sgd workers."""
import re
import warnings

import numpy as np
import pytest
from sklearn.metrics import log_loss

import shardlearn
from shardlearn import LogisticRegression, LinearRegression
from tests.conftest import data_path


def _a9a():
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(data_path("a9a", "a9a", real=True), n_features=123)  # a9a's own figures
    Xt, yt = load_svmlight_file(data_path("a9a", "a9a.t", real=True), n_features=123)
    return X, y, Xt, (yt > 0) * 2 - 1


@pytest.fixture(scope="module")
def a9a():
    X, y, Xt, yt = _a9a()
    ref = LogisticRegression(alpha=1e-6, tol=1e-10).fit(X, y)
    return X, y, Xt, yt, log_loss(yt, ref.predict_proba(Xt))


@pytest.mark.parametrize("optimizer", ["normalized", "adagrad"])
def test_one_epoch_reaches_the_optimum_held_out_on_a9a(a9a, optimizer):
    X, y, Xt, yt, best = a9a
    clf = LogisticRegression(alpha=1e-6, solver="sgd", optimizer=optimizer, batch_size=1, max_iter=1,
                             random_state=0).fit(X, y)
    assert log_loss(yt, clf.predict_proba(Xt)) <= 1.01 * best
    assert clf.fit_result_.steps[0]["examples"] == X.shape[0]


@pytest.mark.parametrize("strategy", [dict(solver="sgd"), dict(strategy="local_sgd", workers=2),
                                      dict(strategy="hogwild", workers=2), dict(strategy="bsp", workers=2),
                                      dict(strategy="ssp", workers=2), dict(strategy="asp", workers=2),
                                      dict(strategy="bsp", workers=2, servers=1)])
def test_defaults_reach_the_optimum_held_out_on_d1_in_two_epochs(strategy):
    from shardlearn.data.synthetic import make_d1

    X, y = make_d1(40_000, n_features=20, seed=1)  # dense, badly scaled (scales 0.1 to 10)
    Xt, yt = make_d1(10_000, n_features=20, seed=1, split="test")
    best = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
    clf = LogisticRegression(max_iter=2, random_state=0, **strategy).fit(X, y)  # every other setting default
    assert clf.train_config().optimizer == "normalized"
    assert log_loss(yt, clf.predict_proba(Xt)) <= 1.01 * best


@pytest.fixture(scope="module")
def kddcup99():
    from shardlearn.data.readers import read

    parts = [read(data_path("kddcup99", f), label=41, header=False, categorical=[1, 2, 3], encoding="hash",
                  hash_bits=12) for f in ("kddcup.data_10_percent.gz", "corrected.gz")]
    return [a for Z, t in parts for a in (Z, (np.asarray(t) == "normal.").astype(int))]


@pytest.mark.parametrize("strategy,compression", [("bsp", "none"), ("asp", "none"), ("bsp", "int8"), ("asp", "int8")])
def test_merged_changes_keep_to_the_scale_on_kddcup99(kddcup99, strategy, compression):
    # raw byte counts up to 7e8. A worker's steps learned at a scale the other worker had
    # since outgrown landed on the merged weight unscaled: bsp x2 ended at 1.156 x L*
    # (kernels.delta). And int8 rounded every change in a block to the block's largest raw
    # value: asp x2 with int8 ended at 1.2-2.3 x L* (three seeds) until the codec saw weights
    # times their scale and adaptive sums over its square (comm.rows, units). One process,
    # local_sgd and hogwild end at 0.96-0.97 (the test file is another distribution: L-BFGS's
    # optimum is not the best there). Since merged clocks add (the penalty taken once), bsp and
    # asp x2 end at 0.984-0.991 plain, 0.965-0.969 int8 at this seed (0.98-1.009 over 3 seeds,
    # results/seeds-kddcup99-clock): closer to the optimum, which is not the best held out
    X, y, Xt, yt = kddcup99
    best = 0.349436  # log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt)), 20 s
    clf = LogisticRegression(max_iter=2, random_state=0, strategy=strategy, workers=2,
                             compression=compression).fit(X, y)
    assert log_loss(yt, clf.predict_proba(Xt)) <= 1.01 * best


def test_hogwild_anneals_nearer_the_optimum_than_at_a_constant_rate_on_kddcup99(kddcup99):
    """hogwild kept the constant rate by default for a while because it scored lower held out
    on kddcup99 (0.92-0.97 x L* against 1.009-1.028 annealed, in one run). Its training
    objective says why: at the constant rate it stopped further from the optimum (1.49-1.51 x
    F*, against 1.43-1.45 annealed, where bsp ends), and kddcup99's test file, another
    distribution, scores such a model better (benchmarks/results/seeds-kddcup99-hogwild*)."""
    X, y, Xt, yt = kddcup99
    best = 0.349436  # as in the test above
    fits = {s: LogisticRegression(max_iter=2, random_state=0, strategy="hogwild", workers=2, schedule=s).fit(X, y)
            for s in (None, "constant")}
    assert fits[None].train_config().schedule == "linear"
    objective = {s: f.objective(X, y) for s, f in fits.items()}
    assert objective[None] <= 0.98 * objective["constant"]
    # held out, hogwild's races move a fit more than its objective: 0.94-1.02 x L* over 6 draws at
    # bsp's objective (1.43-1.45 x F*; bsp 0.986-1.009), so only a loose guard against a wrong answer
    assert log_loss(yt, fits[None].predict_proba(Xt)) <= 1.03 * best


def test_raw_amounts_in_the_millions_need_no_standardising():
    # the credit-table case: unscaled columns made the stochastic strategies diverge (1,187 x L*)
    X, y = _credit_table()
    n = X.shape[0]
    Xt, yt = X[: n // 4], y[: n // 4]
    best = log_loss(yt, LogisticRegression(alpha=1e-6, tol=1e-10).fit(X, y).predict_proba(Xt))
    ratios = [log_loss(yt, LogisticRegression(alpha=1e-6, solver="sgd", optimizer="normalized", max_iter=epochs,
                                              tol=None, random_state=0).fit(X, y).predict_proba(Xt)) / best
              for epochs in (2, 5)]
    # the scale is the largest amount seen, so a heavy-tailed column learns slowly, but never diverges
    assert ratios[0] <= 1.035 and ratios[1] <= 1.02, ratios


def _credit_table(n=20_000):
    rng = np.random.default_rng(0)
    X = np.c_[rng.lognormal(12, 1.5, n), rng.normal(size=n), rng.integers(0, 5, n), rng.lognormal(3, 1, n)]
    z = 1e-6 * (X[:, 0] - 3e5) + X[:, 1] - 0.3 * X[:, 2] + 0.01 * X[:, 3]
    return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)


OVERSHOT = "over twice that of scoring every row 0"


@pytest.mark.parametrize("options", [dict(solver="sgd", optimizer="sgd", batch_size=1),
                                     dict(solver="sgd", optimizer="adagrad", batch_size=1, learning_rate=1.0),
                                     dict(strategy="asp", workers=2, optimizer="sgd", batch_size=1)])
def test_a_fit_whose_steps_overshoot_says_so_in_one_line(options):
    """Plain SGD on raw amounts in the millions ends an epoch at a mean log-loss of hundreds
    of nats (a constant 0.5 scores log 2): a RuntimeWarning says so and what to change, where
    the model used to come back silently; the default rule on the same table does not warn."""
    X, y = _credit_table()
    with pytest.warns(RuntimeWarning, match=OVERSHOT) as got:
        est = LogisticRegression(max_iter=2, random_state=0, **options).fit(X, y)
    assert est.fit_result_.final_loss > 2 * np.log(2)
    line = next(str(w.message) for w in got if OVERSHOT in str(w.message))
    assert "\n" not in line and f"optimizer={options['optimizer']!r}" in line and "'normalized' is scale-free" in line
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        LogisticRegression(max_iter=2, random_state=0, **{k: v for k, v in options.items()
                                                          if k in ("strategy", "workers")}).fit(X, y)
    assert not [w for w in quiet if OVERSHOT in str(w.message)]


def test_a_regression_whose_steps_overshoot_says_so_against_its_own_labels():
    """Squared loss has no label-free bar: with the labels at hand, a zero score's loss on them
    (mean y^2 / 2 = 5.49 here) is the bar; AdaGrad at rate 1 on raw amounts ends at ~56,000."""
    X, _ = _credit_table()
    y = 3 * X[:, 1] + 1e-6 * X[:, 0]
    with pytest.warns(RuntimeWarning, match=rf"mean loss .* {OVERSHOT} \(5.486\): optimizer='adagrad'"):
        LinearRegression(solver="sgd", optimizer="adagrad", batch_size=1, learning_rate=1.0, max_iter=2,
                         random_state=0).fit(X, y)


def test_the_command_line_says_when_the_steps_overshoot(tmp_path, capsys):
    from shardlearn.cli import main

    X, y = _credit_table(5000)
    path = tmp_path / "credit.csv"
    np.savetxt(path, np.c_[X, y], delimiter=",", header="amount,a,b,c,label", comments="", fmt="%.6g")
    common = ["train", str(path), "--label", "label", "--solver", "sgd", "--max-iter", "2", "--workers", "1"]
    assert main(common + ["--optimizer", "sgd", "--batch-size", "1", "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if OVERSHOT in line and "optimizer='sgd'" in line], err
    assert main(common + ["--out", str(tmp_path / "n")]) == 0
    assert OVERSHOT not in capsys.readouterr().err


@pytest.mark.parametrize("stream", [False, True])
def test_the_command_line_holds_a_regression_to_its_workers_labels(tmp_path, capsys, stream):
    """A file's regression: the workers report their labels' mean square, held in memory or
    surveyed out of core, and the driver warns against it as it does for arrays."""
    from shardlearn.cli import main

    X, _ = _credit_table(5000)
    path = tmp_path / "credit.csv"
    np.savetxt(path, np.c_[X, 3 * X[:, 1] + 1e-6 * X[:, 0]], delimiter=",", header="amount,a,b,c,target",
               comments="", fmt="%.6g")
    common = ["train", str(path), "--model", "linear", "--label", "target", "--solver", "sgd", "--max-iter", "2",
              "--workers", "1"] + (["--stream"] if stream else [])
    assert main(common + ["--optimizer", "adagrad", "--batch-size", "1", "--learning-rate", "1",
                          "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if re.search(rf"{OVERSHOT} \(5\.\d+\): optimizer='adagrad'", line)], err
    assert main(common + ["--out", str(tmp_path / "n")]) == 0
    assert OVERSHOT not in capsys.readouterr().err


@pytest.mark.parametrize("options", [dict(solver="sgd"), dict(strategy="asp", workers=2)])
def test_weights_that_overflow_are_an_error_not_a_model(options):
    """Plain SGD's squared loss on amounts in the millions overflows the weights to NaN within an
    epoch; the fit raises DivergedError in one line (scikit-learn's SGDRegressor raises a
    ValueError there) where it used to return a model predicting NaN. The default rule fits."""
    X, _ = _credit_table()
    y = 3 * X[:, 1] + 1e-6 * X[:, 0]
    # the parameter-server workers find it in a batch's loss, and push nothing of that batch
    what = "weights overflowed to NaN" if "strategy" not in options else r"loss overflowed to inf or NaN"
    with pytest.raises(shardlearn.DivergedError, match=rf"^the fit's {what}: optimizer='sgd' at "
                                                       r"learning_rate=0.05 overshoots .*'normalized' is scale-free"):
        LinearRegression(max_iter=2, random_state=0, optimizer="sgd", batch_size=1, **options).fit(X, y)
    est = LinearRegression(max_iter=2, random_state=0, **options).fit(X, y)
    assert np.isfinite(est.coef_).all() and est.score(X, y) > 0.9


def test_the_command_line_refuses_to_save_weights_that_overflowed(tmp_path, capsys):
    from shardlearn.cli import main

    X, _ = _credit_table(5000)
    path = tmp_path / "credit.csv"
    np.savetxt(path, np.c_[X, 3 * X[:, 1] + 1e-6 * X[:, 0]], delimiter=",", header="amount,a,b,c,target",
               comments="", fmt="%.6g")
    code = main(["train", str(path), "--model", "linear", "--label", "target", "--solver", "sgd", "--optimizer", "sgd",
                 "--batch-size", "1", "--max-iter", "2", "--workers", "1", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("shardlearn: error: the fit's weights overflowed"), err
    assert not (tmp_path / "m" / "model.json").exists()


@pytest.mark.parametrize("schedule", [None, "constant"])
def test_partial_fit_twice_equals_two_epochs(schedule):
    """At the constant schedule; ``partial_fit`` (no end known) runs the constant rate under the
    default schedule too, while ``fit``'s default anneals over its ``max_iter`` epochs."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 4)) * [1, 10, 0.1, 1]
    y = (X @ [1, 0.1, 5, -1] + rng.normal(size=500) > 0).astype(int)
    opts = dict(alpha=1e-3, l1_ratio=0.3, solver="sgd", optimizer="normalized", random_state=3)
    once = LogisticRegression(max_iter=2, tol=None, schedule="constant", **opts).fit(X, y)
    twice = LogisticRegression(schedule=schedule, **opts)
    twice.partial_fit(X, y, classes=[0, 1])
    twice.partial_fit(X, y)
    np.testing.assert_array_equal(twice.coef_, once.coef_)
    assert twice.intercept_ == once.intercept_
    annealed = LogisticRegression(max_iter=2, tol=None, **opts).fit(X, y)
    assert np.abs(annealed.coef_ - once.coef_).max() > 1e-2


def test_the_default_schedule_anneals_the_normalized_rule_in_fit_only():
    from shardlearn.runtime.config import TrainConfig

    cfg = TrainConfig(solver="sgd")
    assert (cfg.schedule, cfg.base_lr(), cfg.base_lr(epochs=1)) == ("linear", 3.0, 0.75)  # fit, partial_fit
    assert TrainConfig(solver="sgd", learning_rate=2.0).base_lr() == 2.0
    assert TrainConfig(solver="sgd", optimizer="adagrad").schedule == TrainConfig().schedule == "constant"
    assert TrainConfig(strategy="bsp", compression="int8").schedule == "constant"  # int8's rounding: README
    assert TrainConfig(strategy="bsp", compression="fp16").schedule == "linear"
    assert TrainConfig(strategy="hogwild").schedule == "linear"  # README: its constant rate only stopped early


@pytest.mark.parametrize("strategy", [dict(solver="sgd", workers=1), dict(strategy="bsp", workers=2),
                                      dict(strategy="local_sgd", workers=2), dict(strategy="asp", workers=2),
                                      dict(strategy="hogwild", workers=2)])
def test_the_linear_schedule_reaches_w8a_where_a_constant_rate_stalls(strategy):
    """w8a (3% positives) after 2 epochs: the constant rate ends at 1.06-1.12 x L*, the linear
    schedule from 3 at 1.010-1.019 (benchmarks/results/defaults-linear), local SGD x2 from
    3 sqrt(2) at 1.023 (from 3 it was 1.038). The schedule ends where each strategy's
    clock does: every worker's rows under bsp and asp (merged), a worker's own under local SGD;
    ended at half the run, the second epoch would learn nothing."""
    X, Xt, y, yt = _w8a()
    lstar = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
    got = {s: log_loss(yt, LogisticRegression(max_iter=2, random_state=0, schedule=s, **strategy).fit(X, y)
                       .predict_proba(Xt)) / lstar for s in (None, "constant")}
    assert got[None] <= 1.03
    assert got["constant"] >= 1.05


def _w8a():
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(data_path("w8a", "w8a", real=True))
    y = (y > 0).astype(int)
    idx = np.random.default_rng(0).permutation(X.shape[0])
    cut = int(0.75 * idx.size)
    return X[idx[:cut]], X[idx[cut:]], y[idx[:cut]], y[idx[cut:]]


@pytest.mark.parametrize("workers", [2, 4])
def test_local_sgd_default_rate_grows_with_the_square_root_of_its_workers(workers):
    """Each local SGD worker steps from its own adaptive sums and the average keeps 1/K of its
    change: at the one-process rate (3) w8a after 2 epochs ended at 1.038 (x2) and 1.074 (x4)
    x L*, at 3 sqrt(K) at 1.023 and 1.037, one process 1.019 (benchmarks/results/rates-local-sgd)."""
    X, Xt, y, yt = _w8a()
    lstar = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
    opts = dict(strategy="local_sgd", workers=workers, max_iter=2, random_state=0)
    got = {rate: log_loss(yt, LogisticRegression(learning_rate=rate, **opts).fit(X, y).predict_proba(Xt)) / lstar
           for rate in (None, 3.0, 3.0 * np.sqrt(workers))}
    assert got[None] == got[3.0 * np.sqrt(workers)]  # the default is exactly the scaled rate
    assert got[None] <= got[3.0] - 0.01


def test_checkpoint_and_resume_equal_an_uninterrupted_fit(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 5))
    y = X @ [1.0, -2.0, 0.5, 0.0, 3.0] + 0.1 * rng.normal(size=3000)
    opts = dict(alpha=1e-4, solver="sgd", optimizer="adagrad", batch_size=1, random_state=0, tol=None)
    full = LinearRegression(max_iter=3, **opts).fit(X, y)
    LinearRegression(max_iter=2, checkpoint_dir=str(tmp_path), **opts).fit(X, y)
    resumed = LinearRegression(max_iter=3, checkpoint_dir=str(tmp_path), **opts)
    from shardlearn.runtime import train
    import dataclasses

    cfg = dataclasses.replace(resumed.train_config(), resume=True)
    result = train(shardlearn.models.get("linear"), X, y, None, cfg, 1)
    np.testing.assert_array_equal(result.params["w"], full.coef_)
    assert result.n_iter == 3


def test_local_sgd_over_two_workers_reaches_the_optimum(a9a):
    X, y, Xt, yt, best = a9a
    clf = LogisticRegression(alpha=1e-6, solver="sgd", optimizer="normalized", strategy="local_sgd", workers=2,
                             max_iter=2, random_state=0).fit(X, y)
    assert log_loss(yt, clf.predict_proba(Xt)) <= 1.01 * best
    assert sum(r["rows"] for r in clf.fit_result_.reports) == X.shape[0]


@pytest.mark.parametrize("options, message", [
    (dict(optimizer="normalized"), "optimizer='normalized' learns one example at a time: solver='sgd'"),
    (dict(solver="lbfgs", optimizer="normalized", strategy="average", workers=2),
     "optimizer='normalized' learns one example at a time: solver='sgd'"),
    (dict(solver="sgd", optimizer="ftrl", batch_size=1, schedule="linear"),
     r"schedule='linear' anneals the per-example rules \(normalized, or adagrad or sgd with batch_size=1\), not FTRL"),
    (dict(solver="sgd", optimizer="adam", schedule="linear"),
     "schedule='linear' anneals the per-example rules .* not optimizer='adam' on mini-batches of 256"),
    (dict(solver="sgd", schedule="cosine"), "schedule='cosine' is not known; expected one of constant, invscaling, linear"),
])
def test_per_example_settings_that_cannot_run(options, message):
    X, y = np.eye(4), np.array([0, 1, 0, 1])
    with pytest.raises(shardlearn.ConfigError, match=message):
        LogisticRegression(**options).fit(X, y)


def test_hogwild_on_the_kernel_reaches_the_optimum_and_leaves_no_files(a9a):
    import glob

    X, y, Xt, yt, best = a9a
    before = set(glob.glob("/dev/shm/shardlearn-*/shardlearn-hogwild-*"))
    clf = LogisticRegression(alpha=1e-6, strategy="hogwild", workers=2, max_iter=2, random_state=0).fit(X, y)
    assert clf.get_params()["solver"] is None and clf.train_config().optimizer == "normalized"
    assert log_loss(yt, clf.predict_proba(Xt)) <= 1.01 * best
    assert [r["examples"] for r in clf.fit_result_.steps] == [X.shape[0]] * 2
    assert set(glob.glob("/dev/shm/shardlearn-*/shardlearn-hogwild-*")) - before == set()


@pytest.mark.parametrize("strategy", ["ssp", "asp"])
def test_parameter_server_fits_stop_when_they_stop_improving(strategy):
    # an ssp fit of 200k x 3 rows with default settings ran for over 20 minutes: tol was ignored
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 3))
    y = (X @ [1.0, -1.0, 0.5] + rng.normal(size=4000) > 0).astype(int)
    clf = LogisticRegression(strategy=strategy, workers=2, max_iter=300, tol=1e-3, random_state=0).fit(X, y)
    assert clf.get_params()["solver"] is None  # a stochastic strategy implies solver="sgd"
    assert 5 <= clf.n_iter_ < 40 and len(clf.fit_result_.steps) == clf.n_iter_
    default = LogisticRegression(strategy=strategy, workers=2, random_state=0).fit(X, y)
    assert default.n_iter_ <= 5


def test_a_merges_keys_are_the_sorted_columns_its_rows_touch():
    """Per-example bsp's keys of a merge (``online._keys``) through the compiled pass over a
    scratch equal ``np.unique`` of the rows' columns with the intercept last, and leave the
    scratch all False for the next merge; dense rows key every column."""
    import scipy.sparse as sp

    from shardlearn.strategies.online import _keys

    X = sp.random(300, 5000, density=0.01, format="csr", random_state=2)
    marks = np.zeros(X.shape[1], dtype=np.bool_)
    for part in (np.arange(0, 300, 7), np.random.default_rng(1).permutation(300)[:64], np.array([5])):
        got = _keys(X, part, marks)
        assert np.array_equal(got, np.append(np.unique(X[part].indices), 5000)) and got.dtype == np.int64
        assert not marks.any()
    assert _keys(X, np.zeros(0, dtype=np.int64), marks).size == 0
    assert np.array_equal(_keys(np.ones((3, 4)), np.arange(2)), np.arange(5))


def test_a_merge_wider_than_its_room_sends_the_rest_and_ends_the_same():
    """The plain merge's allgather carries ``room`` rows (a quarter above the last merge's widest
    change), not the width agreed from the rows' most stored columns; a change wider than the
    room sends the rest in a second allgather, and the merged state is the same either way
    (with L1/L2 and the intercept): the room decides the bytes, never the values."""
    import scipy.sparse as sp

    from shardlearn.comm import LocalCollective
    from shardlearn.kernels import sgd as kernel
    from shardlearn.strategies.online import _before, _merge_changes

    X = sp.random(400, 3000, density=0.01, format="csr", random_state=3)
    y = (np.random.default_rng(0).random(400) < 0.5).astype(float)
    opts = dict(rule="normalized", lr=0.5, power_t=0.5, l1=1e-4, l2=1e-3)
    marks, part = np.zeros(X.shape[1], dtype=np.bool_), np.arange(0, 400, 3)
    ends, sent = [], []
    for room in (None, [1], [10**9]):
        comm, state = LocalCollective(), kernel.new_state(3000, "normalized")
        keys, before = _before(state, X, part, opts, marks)
        kernel.run(state, X, y, np.ones(400), part, loss="logistic", fit_intercept=True, **opts)
        width = int(np.diff(X.indptr).max()) * part.size + 1
        assert _merge_changes(comm, state, keys, before, opts, width, room) == keys.size
        ends.append(state["ws"].copy())
        sent.append((comm.stats.calls, room))
    assert np.array_equal(ends[0], ends[1]) and np.array_equal(ends[0], ends[2]) and np.abs(ends[0]).max() > 0
    assert sent[1][0] == 2 and sent[2][0] == 1  # too little room: a second allgather; enough: one
    assert sent[1][1] == sent[2][1] == [keys.size + keys.size // 4 + 8]


@pytest.mark.parametrize("spec", ["int8", "fp16"])
def test_a_coded_merge_wider_than_its_room_is_sent_again_and_ends_the_same(spec):
    """The coded merge (``coded_changes.Coded``) sizes its payloads to the room too; a change
    wider than it has every worker send again at the widest, and the merged state and the
    residuals kept are those of a merge sized to the agreed width (int8's draws fill in order,
    so an encoding's rows do not depend on its padding)."""
    import scipy.sparse as sp

    from shardlearn.comm import LocalCollective, codecs
    from shardlearn.kernels import sgd as kernel
    from shardlearn.strategies.coded_changes import Coded
    from shardlearn.strategies.online import _before

    X = sp.random(400, 3000, density=0.01, format="csr", random_state=3)
    y = (np.random.default_rng(0).random(400) < 0.5).astype(float)
    opts = dict(rule="normalized", lr=0.5, power_t=0.5, l1=1e-4, l2=1e-3)
    marks = np.zeros(X.shape[1], dtype=np.bool_)
    ends, calls = [], []
    for room in (None, [1], [10**9]):
        comm, state = LocalCollective(), kernel.new_state(3000, "normalized")
        coded = Coded(codecs.parse(spec), 3000, opts)
        for part in (np.arange(0, 400, 3), np.arange(1, 400, 3)):  # two merges: the residuals carried
            keys, before = _before(state, X, part, opts, marks)
            kernel.run(state, X, y, np.ones(400), part, loss="logistic", fit_intercept=True, **opts)
            coded.merge(comm, state, keys, before, int(np.diff(X.indptr).max()) * part.size + 1, room)
        ends.append((state["ws"].copy(), coded.residual.copy()))
        calls.append(comm.stats.calls)
    for ws, res in ends[1:]:
        assert np.array_equal(ws, ends[0][0]) and np.array_equal(res, ends[0][1])
    assert np.abs(ends[0][1]).max() > 0  # the codec left something to carry
    assert calls == [2, 3, 2]  # too little room: the first merge sent again, the second fits the room it set
