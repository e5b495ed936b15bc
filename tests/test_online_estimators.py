"""Online estimators (issue 15, part 1): ``learn_many`` equals a loop of ``learn_one``
exactly over every rule, loss, penalty and importance weights; predictions change no
weight; a saved model continues exactly after ``load``; the hashed model equals the
one-process ``solver="sgd"`` pass on the same columns; bad input gives one-line errors."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import shardlearn
from shardlearn import ConfigError, DataError, ModelFileError, OnlineLinearRegression, OnlineLogisticRegression
from shardlearn.online import features
from tests.conftest import data_path


def _table(n=120, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n) * 50.0, "b": rng.integers(0, 3, n).astype(float),
                       "city": rng.choice(["Oslo", "Lima", "Pune"], n), "c": rng.normal(size=n)})
    df.loc[5, "c"] = np.nan  # missing: skipped, in a dict and in the table alike
    df.loc[7, "city"] = None
    y = ((df["a"] / 50.0 + (df["city"] == "Oslo") - 0.5 + rng.normal(size=n)) > 0).astype(int).to_numpy()
    return df, y


def _dicts(df):
    return [{k: v for k, v in row.items()} for row in df.to_dict(orient="records")]


@pytest.mark.parametrize("rule", ["normalized", "adagrad", "ftrl", "sgd"])
@pytest.mark.parametrize("kind, loss", [("clf", "logistic"), ("clf", "hinge"), ("reg", "squared")])
@pytest.mark.parametrize("l1, l2, weighted, intercept", [(0.0, 0.0, False, True), (1e-3, 1e-2, True, True),
                                                         (0.0, 1e-3, True, False)])
def test_learn_many_equals_a_loop_of_learn_one(rule, kind, loss, l1, l2, weighted, intercept):
    df, y = _table()
    h = np.linspace(0.2, 3.0, len(y)) if weighted else None
    opts = dict(hash_bits=12, rule=rule, l1=l1, l2=l2, fit_intercept=intercept,  # plain SGD at a rate "a" allows
                learning_rate=(0.05 if kind == "clf" else 1e-4) if rule == "sgd" else None)
    make = (lambda: OnlineLogisticRegression(loss=loss, **opts)) if kind == "clf" else \
        (lambda: OnlineLinearRegression(**opts))
    target = y if kind == "clf" else df["a"].to_numpy() / 10.0 + y
    many, ones = make(), make()
    many.learn_many(df, target, sample_weight=h)
    for i, x in enumerate(_dicts(df)):
        ones.learn_one(x, target[i], 1.0 if h is None else h[i])
    np.testing.assert_array_equal(many._state["ws"], ones._state["ws"])
    assert np.isfinite(many._state["ws"]).all()  # (equal NaN states once passed here)
    assert many.progressive_loss_ == ones.progressive_loss_ and many.n_seen_ == ones.n_seen_ == len(y)
    np.testing.assert_array_equal(many.decision_function(df[:10]), [ones._score_one(x) for x in _dicts(df[:10])])


def test_predicting_between_examples_changes_nothing():
    df, y = _table()
    quiet, chatty = OnlineLogisticRegression(hash_bits=12, l1=1e-3, l2=1e-2), \
        OnlineLogisticRegression(hash_bits=12, l1=1e-3, l2=1e-2)
    rows = _dicts(df)
    for x, t in zip(rows, y):
        quiet.learn_one(x, t)
        chatty.predict_proba_one(x)
        chatty.predict_one(rows[0])
        chatty.learn_one(x, t)
    np.testing.assert_array_equal(quiet._state["ws"], chatty._state["ws"])


def test_the_hashed_model_equals_the_one_process_sgd_pass():
    # the same kernel under LogisticRegression(solver="sgd"): one epoch in file order over the
    # hashed columns gives the same weights (no penalty, no hash collision in this table; the
    # online learner knows no end, so the fit runs the constant rate too)
    df, y = _table(seed=3)
    df = df.fillna({"c": 0.0, "city": "Oslo"})
    m = OnlineLogisticRegression(hash_bits=16).learn_many(df, y)
    H = features.rows(df, 16)
    assert np.unique(H.indices).size == 6  # a, b, c and three cities: no collision
    ref = shardlearn.LogisticRegression(solver="sgd", alpha=0.0, max_iter=1, shuffle=False, tol=None, workers=1,
                                        schedule="constant")
    ref.fit(H, y)
    np.testing.assert_allclose(m.coef_, ref.coef_.ravel(), rtol=1e-9, atol=1e-12)
    assert m.intercept_ == pytest.approx(float(np.ravel(ref.intercept_)[0]), rel=1e-9)


def test_save_and_load_continue_exactly(tmp_path):
    df, y = _table()
    whole = OnlineLogisticRegression(hash_bits=12, rule="ftrl", l1=1e-3, classes=("no", "yes"))
    labels = np.where(y == 1, "yes", "no")
    whole.learn_many(df, labels)
    half = OnlineLogisticRegression(hash_bits=12, rule="ftrl", l1=1e-3, classes=("no", "yes"))
    half.learn_many(df[:60], labels[:60])
    half.save(str(tmp_path / "m"))
    back = shardlearn.load(str(tmp_path / "m"))
    assert isinstance(back, OnlineLogisticRegression) and back.get_params() == half.get_params()
    back.learn_many(df[60:], labels[60:])
    np.testing.assert_array_equal(back._state["ws"], whole._state["ws"])
    assert back.progressive_loss_ == pytest.approx(whole.progressive_loss_, rel=1e-12) and back.n_seen_ == 120
    assert back.predict_one(_dicts(df)[0]) in ("no", "yes")
    reg = OnlineLinearRegression(hash_bits=8)
    reg.learn_one({"x": 1.0}, 2.0)
    reg.save(str(tmp_path / "r"))
    assert shardlearn.load(str(tmp_path / "r")).predict_one({"x": 1.0}) == reg.predict_one({"x": 1.0})
    (tmp_path / "r" / "params.npz").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="params.npz: checksum does not match"):
        shardlearn.load(str(tmp_path / "r"))


def test_it_learns_a9a_online_close_to_the_optimum():
    # one pass in file order, one example at a time, defaults: held-out log-loss within 2% of
    # the L-BFGS optimum's (one epoch of the batch path's kernel reaches 1.01 x: test_online.py)
    from sklearn.datasets import load_svmlight_file
    from sklearn.metrics import log_loss

    X, y = load_svmlight_file(data_path("a9a", "a9a", real=True), n_features=123)
    Xt, yt = load_svmlight_file(data_path("a9a", "a9a.t", real=True), n_features=123)
    m = OnlineLogisticRegression().learn_many(X, (y > 0).astype(int))
    best = shardlearn.LogisticRegression(alpha=1e-6, tol=1e-10).fit(X, y)
    assert log_loss(yt > 0, m.predict_proba(Xt)[:, 1]) < 1.02 * log_loss(yt > 0, best.predict_proba(Xt)[:, 1])
    assert 0.3 < m.progressive_loss_ < 0.4 and m.n_seen_ == X.shape[0]


def test_namespaces_and_categories_hash_apart():
    one = features.one
    assert one({"id": 3}, 18)[0][0] != one({"user": {"id": 3}}, 18)[0][0] != one({"ad": {"id": 3}}, 18)[0][0]
    assert one({"city": "Oslo"}, 18)[0][0] != one({"city": "Lima"}, 18)[0][0]
    idx, val = one({"a": 0.0, "b": None, "c": float("nan"), "d": True}, 18)
    assert val.tolist() == [1.0] and idx.tolist() == [features.column("d", "", 18)]


@pytest.mark.parametrize("call, said", [
    (lambda m: m.learn_one({"a": 1.0}, 2), r"label 2 is not one of the classes \(0, 1\); pass classes="),
    (lambda m: m.learn_one({"a": float("inf")}, 1), "feature 'a': value inf is not finite"),
    (lambda m: m.learn_one({"a": [1, 2]}, 1), r"feature 'a': value \[1, 2\] is neither a number, a string nor None"),
    (lambda m: m.learn_one([1.0, 2.0], 1), "an example's features are a dict of name -> value, got list"),
    (lambda m: m.learn_many(np.array([[1.0, np.inf]]), [1]), "row 0, column 1: value inf is not finite"),
    (lambda m: m.learn_many(np.ones((3, 2)), [1, 0]), r"y has shape \(2,\); expected \(3,\)"),
    (lambda m: m.learn_many(pd.DataFrame({"s": ["a", 3]}), [1, 0]), "row 1, column 's': mixes strings"),
])
def test_bad_input_is_one_line(call, said):
    m = OnlineLogisticRegression(hash_bits=8)
    with pytest.raises(DataError, match=said):
        call(m)


def test_bad_options_are_one_line():
    with pytest.raises(ConfigError, match="hash_bits must be an integer in 1..30"):
        OnlineLogisticRegression(hash_bits=40)
    with pytest.raises(ConfigError, match="loss='squared' is not known to OnlineLogisticRegression"):
        OnlineLogisticRegression(loss="squared")
    with pytest.raises(ConfigError, match="rule='adam' is not known"):
        OnlineLinearRegression(rule="adam")
    m = OnlineLogisticRegression(hash_bits=8, loss="hinge")
    m.learn_one({"a": 1.0}, 1)
    with pytest.raises(ConfigError, match="probabilities need loss='logistic'"):
        m.predict_proba_one({"a": 1.0})
    assert m.predict(sp.csr_matrix(np.ones((2, 1)))).tolist() == [1, 1]


def test_a_learner_whose_weights_overflow_says_where_and_keeps_no_nan_model(tmp_path):
    """learn_many raises DivergedError naming the row whose loss overflowed (it used to return
    with every prediction NaN); a learner whose last row's step overflowed (no loss has seen
    it yet) refuses to be saved."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)) * 1e3
    m = OnlineLinearRegression(rule="sgd", learning_rate=0.5)
    with pytest.raises(shardlearn.DivergedError, match=r"^row (\d+): the loss overflowed to inf or NaN: rule='sgd' at "
                                                       r"learning_rate=0.5 overshoots .*'normalized' is scale-free") as e:
        m.learn_many(X, X @ [2.0, 3.0])
    assert 0 < e.value.row < 200 and str(e.value).startswith(f"row {e.value.row}: ")
    # the weights are NaN where the call stopped: every later call says so (a prediction used to
    # be NaN, and the next learn_many blamed its own row 0 on good data)
    lost = rf"^the weights overflowed at row {e.value.row} of an earlier call, 0 examples in \(rule='sgd' at " \
           r"learning_rate=0.5\) and are lost: start a new learner"
    for call in (lambda: m.predict(X[:3]), lambda: m.predict_one({"a": 1.0}),
                 lambda: m.learn_many(X[:5] / 1e3, X[:5] @ [2e-3, 3e-3]), lambda: m.save(str(tmp_path / "lost"))):
        with pytest.raises(shardlearn.DivergedError, match=lost):
            call()
    assert not (tmp_path / "lost").exists()
    twin = m.copy()  # a copy carries the loss; a restored state is whole again
    with pytest.raises(shardlearn.DivergedError, match=lost):
        twin.predict(X[:3])
    good = OnlineLinearRegression(rule="sgd", learning_rate=0.5).learn_many(X[:50] / 1e3, X[:50] @ [2e-3, 3e-3])
    m.restore(*good.snapshot())
    np.testing.assert_array_equal(m.predict(X[:3]), good.predict(X[:3]))
    last = OnlineLinearRegression(rule="sgd", learning_rate=1.0)
    last.learn_many(np.array([[1e200]]), np.array([1e150]))  # a loss of 5e299, then a weight of 1e350
    with pytest.raises(shardlearn.DivergedError, match="^the weights overflowed to inf or NaN: rule='sgd'"):
        last.save(str(tmp_path / "m"))
    assert not (tmp_path / "m" / "model.json").exists()


def test_a_stream_of_large_labels_learns_at_a_rate_in_their_unit():
    """A learner of a stream knows no labels up front, so its regression keeps Vowpal Wabbit's
    unscaled rule: on labels of RMS ~3,600 the default learns next to nothing in 2,000 examples
    (VW alike); a learning rate of 0.75 x the labels' RMS / 4 (what a fit's label scale does,
    ``runtime/label_scale.py``) learns them."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2)) * 1e3
    y = X @ [2.0, 3.0] + 300 * rng.normal(size=2000)
    half_var = 0.5 * np.mean(y * y)  # the kernel's loss is (p - y)^2 / 2
    default = OnlineLinearRegression().learn_many(X, y)
    scaled = OnlineLinearRegression(learning_rate=0.75 * np.sqrt(np.mean(y * y)) / 4).learn_many(X, y)
    assert default.progressive_loss_ > 0.5 * half_var and scaled.progressive_loss_ < 0.1 * half_var
