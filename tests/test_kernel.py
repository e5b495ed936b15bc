"""The compiled per-example kernel against a plain Python reference of the same rules
(issue 14): every rule x loss, with and without penalties, intercept and importance
weights, over CSR and dense rows, to 1e-9. The normalized rule's importance-invariant
step is checked against scipy's ODE solver integrating the gradient flow itself."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from shardlearn.kernels import core
from shardlearn.kernels import sgd as kernel


def _dloss(loss, p, y):
    if loss == "squared":
        return 0.5 * (p - y) ** 2, p - y
    if loss == "logistic":
        return math.log1p(math.exp(-abs(p))) + max(p, 0) - y * p, 1 / (1 + math.exp(-p)) - y
    t = 2 * y - 1
    m = 1 - t * p
    if m <= 0:
        return 0.0, 0.0
    return (m, -t) if loss == "hinge" else (m * m, -2 * t * m)


def _flow(loss, p, y, a):
    """Where the prediction ends after gradient flow ``dp/dtau = -dloss/dp`` for time ``a``:
    integrated numerically (hinge's kink: its closed form, the flow stops at the margin)."""
    if loss == "hinge":
        t = 2 * y - 1
        return p + t * min(a, max(0.0, 1 - t * p))
    sol = solve_ivp(lambda tau, q: [-_dloss(loss, q[0], y)[1]], (0.0, a), [p], method="DOP853",
                    rtol=1e-13, atol=1e-14)
    return sol.y[0, -1]


def _softmax_logit(p, k):
    """Class ``k``'s score against the others': ``p_k - log sum_{j != k} e^p_j``."""
    rest = np.delete(np.asarray(p, dtype=float), k)
    return p[k] - (rest.max() + math.log(np.exp(rest - rest.max()).sum()))


def _reference(X, y, h, order, loss, rule, lr, power_t, beta, l1, l2, intercept, end=0.0, span=0.0, classes=1):
    """The rules as the module docstring states them, one row and one coordinate at a time
    (a dense row touches every coordinate, a sparse one and a softmax's those it holds). ``end``, ``span``: the
    linear schedule, each row's rate times its factor, a penalty catch-up's steps at the mean
    factor of the rows it stands for (integrated numerically here). ``classes`` K > 1 (loss
    "softmax"): coordinate ``(i, k)`` at ``i K + k``, each class stepping on ``softmax_k - [k = y]``,
    the normalized rule's multiplier the logistic flow of its score against the others'."""
    from scipy.integrate import quad

    def factor(tt):
        return 1.0 if span <= 0 else min(1.0, max(0.0, (end - tt) / span))

    dense = not sp.issparse(X)
    X = sp.csr_matrix(X)
    d, K = X.shape[1], classes
    n = (d + 1) * K
    w, g2, z, s, last = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
    t = nsum = 0.0
    prog = 0.0

    def rate(i, m=None):
        m = lr * (factor(t) if m is None else m)
        if rule == "sgd":
            return m / t ** power_t if power_t > 0 else m
        if g2[i] <= 0:
            return 0.0
        if rule == "adagrad":
            return m / math.sqrt(g2[i])
        return m * math.sqrt(t / nsum) / (s[i] * math.sqrt(g2[i]))

    def ftrl_w(i):
        if abs(z[i]) <= l1 * t:
            return 0.0
        return -(z[i] - math.copysign(l1 * t, z[i])) / ((beta + math.sqrt(g2[i])) / lr + l2 * t)

    def catch_up(i):
        k = t - last[i]
        m = (quad(factor, last[i], t, points=[end - span, end])[0] / k if k > 0 else factor(t)) if span > 0 else 1.0
        last[i] = t
        if k <= 0 or (l1 == 0 and l2 == 0) or w[i] == 0 or rate(i, m) <= 0:
            return
        x = rate(i, m) * l2  # (1 - x)^k
        v = (w[i] * math.exp(k * math.log1p(-x)) if x < 1 else 0.0) if l2 > 0 else w[i]
        cut = rate(i, m) * l1 * k
        w[i] = (v - cut if v > cut else v + cut if v < -cut else 0.0) if l1 > 0 else v

    def step(i, gi, pen=True):
        if rule == "ftrl":
            sigma = (math.sqrt(g2[i] + gi * gi) - math.sqrt(g2[i])) / lr
            z[i] += gi - sigma * w[i]
            g2[i] += gi * gi
            if pen:
                w[i] = ftrl_w(i)
            else:
                w[i] = -z[i] / ((beta + math.sqrt(g2[i])) / lr) if z[i] else 0.0
            return
        if rule != "sgd":
            g2[i] += gi * gi
        w[i] -= rate(i) * gi

    for r in order:
        if h[r] <= 0:
            continue
        t += h[r]
        cols = X.indices[X.indptr[r]:X.indptr[r + 1]]
        vals = X.data[X.indptr[r]:X.indptr[r + 1]]
        if dense and K == 1:  # a softmax's dense row skips its zeros, as a CSR row (K coordinates each)
            cols, vals = np.arange(d), X[r].toarray().ravel()
        p = [w[d * K + k] if intercept else 0.0 for k in range(K)]
        norm = 1.0 if intercept else 0.0
        for i, x in zip(cols, vals):
            for k in range(K):
                c = i * K + k
                if rule == "normalized":
                    if abs(x) > s[c]:
                        if s[c] > 0:
                            w[c] *= s[c] / abs(x)
                        s[c] = abs(x)
                    if s[c] > 0 and k == 0:
                        norm += (x / s[c]) ** 2
                if rule == "ftrl":
                    w[c] = ftrl_w(c)
                else:
                    catch_up(c)
                p[k] += w[c] * x
        nsum += h[r] * norm
        if K > 1:
            q = np.exp(np.array(p) - max(p))
            prog += h[r] * (math.log(q.sum()) + max(p) - p[int(y[r])])
            gs = list(q / q.sum() - (np.arange(K) == y[r]))
        else:
            lv, g = _dloss(loss, p[0], y[r])
            prog += h[r] * lv
            gs = [g]
        for k, g in enumerate(gs):
            if g == 0:
                continue
            if rule == "normalized":  # G counts the weight once; the step follows the loss's flow
                touched = [(i * K + k, x) for i, x in zip(cols, vals) if x != 0] + \
                    ([(d * K + k, 1.0)] if intercept else [])
                s[d * K + k] = 1.0 if intercept else s[d * K + k]
                for i, x in touched:
                    g2[i] += h[r] * (g * x) ** 2
                ppu = sum(x * x * rate(i) for i, x in touched)
                if K > 1:  # the logistic flow of the class's score against the others'
                    pk, lk, yk = _softmax_logit(p, k), "logistic", float(k == y[r])
                else:
                    pk, lk, yk = p[0], loss, y[r]
                u = (pk - _flow(lk, pk, yk, h[r] * ppu)) / ppu if ppu > 0 else 0.0  # a rate of 0: no step
                for i, x in touched:
                    w[i] -= rate(i) * x * u
                continue
            for i, x in zip(cols, vals):
                if x != 0:
                    step(i * K + k, h[r] * g * x)
            if intercept:
                s[d * K + k] = 1.0
                step(d * K + k, h[r] * g, pen=False)
    for i in range(d * K):
        if rule == "ftrl":
            w[i] = ftrl_w(i)
        else:
            catch_up(i)
    return np.array(w), prog


def _data(seed, dense):
    rng = np.random.default_rng(seed)
    X = sp.random(12, 6, density=0.5, random_state=seed, format="csr") * 3.0
    X.data -= 1.0
    X.data[::4] *= 40.0  # one feature in the millions' style of scale: normalized must cope
    y = (rng.random(12) < 0.5).astype(float)
    return (X.toarray() if dense else X), y


@pytest.mark.parametrize("rule", list(kernel.RULES))
@pytest.mark.parametrize("loss", list(kernel.LOSSES))
@pytest.mark.parametrize("penalty", [(0.0, 0.0), (0.01, 0.05)])
@pytest.mark.parametrize("intercept, weighted, dense", [(True, False, False), (False, True, False),
                                                        (True, True, True)])
def test_kernel_equals_the_reference(rule, loss, penalty, intercept, weighted, dense):
    X, y = _data(3, dense)
    if loss == "squared":
        y = y * 2.0 - 0.3
    h = np.linspace(0.5, 2.0, 12) if weighted else np.ones(12)
    h[5] = 0.0 if weighted else 1.0  # a zero weight is skipped
    order = np.random.default_rng(1).permutation(np.r_[np.arange(12), np.arange(12)])  # two epochs' worth
    lr, power_t = (0.05, 0.5) if rule == "sgd" else (0.3, 0.0)
    l1, l2 = penalty
    st = kernel.new_state(6, rule)
    out = kernel.run(st, X, y, h if weighted else None, order, loss=loss, rule=rule, lr=lr, power_t=power_t,
                     l1=l1, l2=l2, fit_intercept=intercept)
    before = st["ws"].copy()
    apart = kernel.finalized(st, rule=rule, lr=lr, power_t=power_t, l1=l1, l2=l2)
    np.testing.assert_array_equal(st["ws"], before)  # the state, its clocks too, left as it was
    w = kernel.finalize(st, rule=rule, lr=lr, power_t=power_t, l1=l1, l2=l2)
    np.testing.assert_array_equal(apart, w)  # what finalize does in place, apart
    ref, prog = _reference(X, y, h, order, loss, rule, lr, power_t, 1.0, l1, l2, intercept)
    tol = 1e-8 if rule == "normalized" else 1e-9  # the reference's ODE solver: ~1e-12 a step
    np.testing.assert_allclose(w, ref, rtol=tol, atol=1e-11)
    assert out[0] == pytest.approx(prog, rel=tol, abs=1e-11)
    assert out[1] == pytest.approx(h[order].sum(), rel=1e-12)


@pytest.mark.parametrize("rule", list(kernel.RULES))
@pytest.mark.parametrize("penalty", [(0.0, 0.0), (0.01, 0.05)])
@pytest.mark.parametrize("intercept, weighted, dense", [(True, False, False), (False, True, False),
                                                        (True, True, True), (False, False, True)])
def test_the_softmax_kernel_equals_the_reference(rule, penalty, intercept, weighted, dense):
    """K = 3 classes: K weights a feature, each class stepping on its own softmax gradient."""
    X, _ = _data(3, dense)
    y = np.random.default_rng(4).integers(0, 3, size=12).astype(float)
    h = np.linspace(0.5, 2.0, 12) if weighted else np.ones(12)
    h[5] = 0.0 if weighted else 1.0
    order = np.random.default_rng(1).permutation(np.r_[np.arange(12), np.arange(12)])
    lr, power_t = (0.05, 0.5) if rule == "sgd" else (0.3, 0.0)
    opts = dict(rule=rule, lr=lr, power_t=power_t, l1=penalty[0], l2=penalty[1], classes=3)
    st = kernel.new_state(6, rule, classes=3)
    out = kernel.run(st, X, y, h if weighted else None, order, loss="softmax", fit_intercept=intercept, **opts)
    w = kernel.finalize(st, **opts)
    ref, prog = _reference(X, y, h, order, "softmax", rule, lr, power_t, 1.0, penalty[0], penalty[1], intercept,
                           classes=3)
    tol = 1e-8 if rule == "normalized" else 1e-9
    np.testing.assert_allclose(w, ref, rtol=tol, atol=1e-11)
    assert out[0] == pytest.approx(prog, rel=tol, abs=1e-11)
    assert np.abs(w[:18].reshape(6, 3)).min(axis=0).max() > 0 or penalty[0] > 0  # every class learned


def test_the_softmax_kernel_names_a_label_that_is_no_class_code():
    X, _ = _data(3, True)
    y = np.zeros(12)
    y[7] = 3.0
    with pytest.raises(ValueError, match=r"^row 7: label 3.0 is not a class code 0..2$"):
        kernel.run(kernel.new_state(6, "normalized", 3), X, y, None, np.arange(12), loss="softmax",
                   rule="normalized", lr=0.5, classes=3)


@pytest.mark.parametrize("rule", ["normalized", "adagrad", "sgd"])
@pytest.mark.parametrize("penalty", [(0.0, 0.0), (0.01, 0.05), (0.0, 0.2)])
@pytest.mark.parametrize("intercept, weighted, dense", [(True, False, False), (False, True, False),
                                                        (True, True, True)])
@pytest.mark.parametrize("share", [1.0, 0.6])  # the run ends as the rate reaches 0, or after it does
def test_the_linear_schedule_equals_the_reference(rule, penalty, intercept, weighted, dense, share):
    """Each row steps at ``lr`` times its factor and a catch-up's penalty at its gap's mean
    factor: a coordinate untouched for rows of full rate and rows of none takes the first only."""
    X, y = _data(3, dense)
    h = np.linspace(0.5, 2.0, 12) if weighted else np.ones(12)
    order = np.random.default_rng(1).permutation(np.r_[np.arange(12), np.arange(12)])
    lr, power_t = (0.05, 0.5) if rule == "sgd" else (0.3, 0.0)
    end = share * h[order].sum()
    span = 0.7 * end
    l1, l2 = penalty
    opts = dict(rule=rule, lr=lr, power_t=power_t, l1=l1, l2=l2, end=end, span=span)
    st = kernel.new_state(6, rule)
    out = kernel.run(st, X, y, h if weighted else None, order, loss="logistic", fit_intercept=intercept, **opts)
    w = kernel.finalize(st, **opts)
    ref, prog = _reference(X, y, h, order, "logistic", rule, lr, power_t, 1.0, l1, l2, intercept, end, span)
    tol = 1e-8 if rule == "normalized" else 1e-9
    np.testing.assert_allclose(w, ref, rtol=tol, atol=1e-11)
    assert out[0] == pytest.approx(prog, rel=tol, abs=1e-11)
    plain = kernel.new_state(6, rule)
    kernel.run(plain, X, y, h if weighted else None, order, loss="logistic", fit_intercept=intercept,
               **dict(opts, end=0.0, span=0.0))
    assert np.abs(kernel.finalize(plain, **dict(opts, end=0.0, span=0.0)) - w).max() > 1e-3  # it does anneal


def test_chunks_equal_one_call():
    X, y = _data(4, False)
    order = np.random.default_rng(2).permutation(12)
    one, two = kernel.new_state(6, "normalized"), kernel.new_state(6, "normalized")
    opts = dict(loss="logistic", rule="normalized", lr=0.5, l1=0.01, l2=0.01)
    kernel.run(one, X, y, None, order, **opts)
    kernel.run(two, X, y, None, order[:5], **opts)
    kernel.run(two, X, y, None, order[5:], **opts)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])


def test_normalized_is_invariant_to_feature_scale():
    # Ross, Mineiro & Langford 2013: multiplying a feature by c divides its weight by c, predictions unchanged
    X, y = _data(5, True)
    c = np.array([1.0, 1e6, 1e-3, 1.0, 250.0, 1.0])
    a, b = kernel.new_state(6, "normalized"), kernel.new_state(6, "normalized")
    order = np.arange(12)
    kernel.run(a, X, y, None, order, loss="logistic", rule="normalized", lr=0.5)
    kernel.run(b, X * c, y, None, order, loss="logistic", rule="normalized", lr=0.5)
    wa, wb = kernel.weights(a), kernel.weights(b)
    np.testing.assert_allclose(wb[:6] * c, wa[:6], rtol=1e-9)
    assert wb[6] == pytest.approx(wa[6], rel=1e-9)


@pytest.mark.parametrize("loss", list(kernel.LOSSES))
@pytest.mark.parametrize("p, y", [(0.3, 1.0), (-2.0, 0.0), (4.0, 0.0), (-35.0, 1.0), (40.0, 1.0)])
def test_flow_composes_and_never_passes_the_label(loss, p, y):
    # importance invariance: weight a1 then a2 is weight a1 + a2, exactly, and no weight overshoots
    L = kernel.LOSSES[loss]
    for a1, a2 in [(0.1, 0.25), (3.0, 7.0), (1e-9, 2e-9)]:
        assert core._flow(L, core._flow(L, p, y, a1), y, a2) == pytest.approx(
            core._flow(L, p, y, a1 + a2), rel=1e-10, abs=1e-13)
    far = core._flow(L, p, y, 1e8)
    if loss == "squared":
        assert far == pytest.approx(y, abs=1e-9)
    elif loss == "logistic":
        assert far > p if y == 1.0 else far < p
        assert abs(far) < max(abs(p) + 1.0, 20.0)  # z + e^z grows by 1e8: z ~ 18.4, never an overflow
    else:
        t = 2 * y - 1
        assert t * far == pytest.approx(max(1.0, t * p))  # stops at the margin


def test_a_huge_importance_weight_lands_on_the_label():
    # the linear step would move the prediction by 1e6 x the error; the invariant one stops at y
    X = np.array([[2.0, 1.0], [1.0, 3.0]])
    st = kernel.new_state(2, "normalized")
    kernel.run(st, X, np.array([0.5, 2.0]), np.array([1e6, 1e6]), np.array([0, 1]), loss="squared",
               rule="normalized", lr=0.5)
    assert X[1] @ kernel.weights(st)[:2] + kernel.weights(st)[2] == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("x", [1e-12, 1e-7, 3e-5, 9.9e-5, 2e-4, 0.3, 0.999, 1.0, 2.0])
def test_the_l2_decay_is_the_power_it_replaces(x):
    # (1 - x)^k by a short series where x and k x are small (a pow per touched coordinate cost a
    # third of a penalised epoch): the same number as exp(k log1p(-x)) to rounding
    for k in [0.37, 1.0, 2.0, 7.0, 100.0, 1e4, 1e6, 3e7]:
        want = math.exp(k * math.log1p(-x)) if x < 1 else 0.0
        assert core._decay(x, k) == pytest.approx(want, rel=1e-14, abs=1e-300)


def test_a_larger_value_keeps_the_features_contribution():
    # NAG (Ross et al. 2013) and Vowpal Wabbit with the adaptive sum: a value above the scale
    # seen rescales the weight by s/|x|, so w * s is kept (the squared rescale of plain NG
    # halved elec2's early weights: progressive log-loss 2.6% off VW's, now within 0.01%)
    from shardlearn.kernels import predict

    st = kernel.new_state(1, "normalized")
    kernel.run(st, np.array([[1.0]]), np.array([1.0]), None, np.arange(1), loss="logistic", rule="normalized",
               lr=0.5, fit_intercept=False)
    w = kernel.weights(st)[0]
    assert w > 0
    assert predict.scores(st, np.array([[2.0]]), rule="normalized", lr=0.5, fit_intercept=False)[0] == \
        pytest.approx(w * 1.0, rel=1e-12)


@pytest.mark.parametrize("dense", [False, True])
def test_a_row_of_weight_zero_is_scored_not_learned(dense):
    X, y = _data(6, dense)
    h = np.ones(12)
    h[4] = 0.0
    opts = dict(loss="logistic", rule="normalized", lr=0.5, l1=0.01, l2=0.02)
    st, preds = kernel.new_state(6, "normalized"), np.empty(12)
    kernel.run(st, X, y, h, np.arange(12), predictions=preds, **opts)
    ref = kernel.new_state(6, "normalized")
    kernel.run(ref, X, y, None, np.arange(4), **opts)
    from shardlearn.kernels import predict

    row = sp.csr_matrix(X[4:5]) if dense else X[4:5]
    assert preds[4] == pytest.approx(predict.scores(ref, row, rule="normalized", lr=0.5, l1=0.01, l2=0.02)[0],
                                     rel=1e-12)
    skip = kernel.new_state(6, "normalized")  # and the row changed nothing
    kernel.run(skip, X, y, None, np.r_[0:4, 5:12], **opts)
    np.testing.assert_array_equal(skip["ws"], st["ws"])


def test_a_state_without_rows_finalizes_to_nothing():
    st = {"ws": np.zeros((0, 4)), "scalars": np.array([3.0, 2.0])}
    assert kernel.finalized(st, rule="normalized", lr=0.5, l2=0.1).shape == (0,)
    assert kernel.finalize(st, rule="ftrl", lr=0.5, l1=0.1).shape == (0,)


@pytest.mark.parametrize("rule", ["sgd", "adagrad", "normalized", "ftrl"])
def test_catching_up_some_keys_is_finalize_on_those_keys(rule):
    rng = np.random.default_rng(4)
    X = sp.random(300, 40, density=0.1, format="csr", random_state=5)
    y = (rng.random(300) < 0.4).astype(float)
    opts = dict(rule=rule, lr=0.5, l1=0.001 if rule == "ftrl" else 0.01, l2=0.02)
    st = kernel.new_state(40, rule)
    kernel.run(st, X, y, None, np.arange(300), loss="logistic", **opts)
    keys = np.array([0, 3, 17, 39, 40])  # the intercept (40) is never penalised
    done = {k: v.copy() for k, v in st.items()}
    kernel.catch_up(done, keys, **opts)
    full = {k: v.copy() for k, v in st.items()}
    kernel.finalize(full, **opts)
    np.testing.assert_array_equal(done["ws"][keys], full["ws"][keys])
    rest = np.setdiff1d(np.arange(41), keys)
    np.testing.assert_array_equal(done["ws"][rest], st["ws"][rest])
    np.testing.assert_array_equal(kernel.finalized(done, **opts), kernel.finalized(st, **opts))
    assert not np.array_equal(done["ws"][keys[:-1], kernel.W], st["ws"][keys[:-1], kernel.W])  # it did catch up


@pytest.mark.parametrize("rule", ["sgd", "adagrad", "normalized"])
def test_a_row_whose_clock_trails_a_coordinate_leaves_its_stamp(rule):
    """A Hogwild worker's clock may trail a coordinate's stamp, written by another worker a
    slice ahead (strategies/hogwild.py): its row takes no penalty there and leaves the stamp,
    so the next row at a later clock takes the decay of the gap from the stamp once. Moving
    the stamp back (as the kernel did) made that row take the trailing part twice."""
    opts = dict(rule=rule, lr=0.5, l2=0.05)
    X, y = np.array([[1.0, 0.0]]), np.array([1.0])
    st = kernel.new_state(2, rule)
    st["ws"][0] = [0.8, 4.0, 1.0, 100.0]  # weight, adaptive sum, scale, stamp: caught up to clock 100
    st["scalars"][:] = [60.0, 60.0]  # this worker's clock trails it by 40 rows
    kernel.run(st, X, y, None, np.array([0]), loss="logistic", **opts)
    assert st["ws"][0, kernel.L] == 100.0  # the old kernel left 61, this row's clock
    st["scalars"][:] = [120.0, 120.0]  # later: 20 rows past the stamp
    back = {k: v.copy() for k, v in st.items()}
    back["ws"][0, kernel.L] = 61.0  # from the stamp moved back: 59 rows of decay, not 20
    kernel.catch_up(st, np.array([0]), **opts)
    kernel.catch_up(back, np.array([0]), **opts)
    assert st["ws"][0, kernel.L] == back["ws"][0, kernel.L] == 120.0
    assert abs(back["ws"][0, kernel.W]) < abs(st["ws"][0, kernel.W])


@pytest.mark.parametrize("rule", ["sgd", "normalized"])
def test_catching_up_to_an_earlier_clock_leaves_later_rows_and_free_keys_alone(rule):
    """An exchange's start clock may be earlier than a row's own (another worker's change
    merged first): such a row already has the penalty, and its clock never moves back."""
    X = sp.random(200, 30, density=0.02, format="csr", random_state=1)
    y = (np.random.default_rng(1).random(200) < 0.5).astype(float)
    opts = dict(rule=rule, lr=0.5, l1=0.01, l2=0.02)
    st = kernel.new_state(30, rule)
    kernel.run(st, X, y, None, np.arange(200), loss="logistic", **opts)
    at = float(np.median(st["ws"][:30, kernel.L]))
    early = {"ws": st["ws"].copy(), "scalars": np.array([at, st["scalars"][1]])}
    late = early["ws"][:, kernel.L] >= at
    assert late.any() and (~late[:-1]).any()
    kernel.catch_up(early, np.arange(31), free=[3, 30], **opts)
    np.testing.assert_array_equal(early["ws"][late], st["ws"][late])
    np.testing.assert_array_equal(early["ws"][[3, 30]], st["ws"][[3, 30]])
    moved = ~late & (np.arange(31) != 3) & (np.arange(31) != 30) & (st["ws"][:, kernel.W] != 0)
    assert moved.sum() >= 5 and np.all(early["ws"][moved, kernel.L] == at)
    assert np.all(np.abs(early["ws"][moved, kernel.W]) < np.abs(st["ws"][moved, kernel.W]))


def test_a_merge_adds_each_workers_change_of_contribution_at_the_largest_scale():
    """Under the normalized rule a weight times its scale is what the kernel keeps when a
    larger |x| arrives, so merged changes add in those terms: after merging three workers'
    changes of the same coordinates, weight x scale equals the start's plus each worker's
    change of weight x scale, at the largest scale any of them saw (kernels.delta)."""
    from shardlearn.kernels import delta

    rng = np.random.default_rng(0)
    k = 50
    before = np.column_stack([rng.normal(size=k), rng.uniform(1, 2, k), 10 ** rng.uniform(0, 3, k), np.zeros(k)])
    afters = []
    for _ in range(3):
        a = before.copy()
        a[:, kernel.S] *= np.where(rng.random(k) < 0.5, 10 ** rng.uniform(0, 4, k), 1.0)  # some saw a larger |x|
        a[:, kernel.W] = rng.normal(size=k)
        a[:, kernel.G] += rng.uniform(0, 1, k)
        afters.append(a)
    ws = before.copy()
    keys = np.arange(k)
    delta.merge(ws, np.concatenate([keys] * 3), np.vstack([delta.change(before, a, "normalized") for a in afters]),
                "normalized")
    contribution = lambda rows: rows[:, kernel.W] * rows[:, kernel.S]  # noqa: E731
    expect = contribution(before) + sum(contribution(a) - contribution(before) for a in afters)
    np.testing.assert_allclose(contribution(ws), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ws[:, kernel.S], np.max([a[:, kernel.S] for a in afters], axis=0))
    np.testing.assert_allclose(ws[:, kernel.G], before[:, kernel.G] + sum(a[:, kernel.G] - before[:, kernel.G]
                                                                          for a in afters), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_shards_prefetched_gather_equals_numpys_fancy_index_and_checks_its_bounds(dtype):
    """``delta.rows_at`` (a shard's pull, its rows asked for ahead) returns ``ws[keys]`` as
    float64 for int32 and int64 keys, repeats and empty lists included, and refuses a key
    out of range as numpy's indexing would, never reading past the state."""
    from shardlearn.kernels import delta

    rng = np.random.default_rng(0)
    ws = rng.normal(size=(5000, 4)).astype(dtype)
    for keys in (np.sort(rng.choice(5000, 700, replace=False)), rng.integers(0, 5000, 50).astype(np.int32),
                 np.array([4999, 0, 4999]), np.zeros(0, dtype=np.int64)):
        got = delta.rows_at(ws, keys)
        assert got.dtype == np.float64 and got.shape == (keys.size, 4)
        assert np.array_equal(got, np.asarray(ws[keys], dtype=np.float64))
    for bad, first in ((np.array([3, 5000]), 5000), (np.array([-1, 2]), -1)):
        with pytest.raises(IndexError, match=f"index {first} is out of bounds for a state of 5000 rows"):
            delta.rows_at(ws, bad)
