"""A study, not a feature: would a learning-rate-free bet fix the datasets our default rule
misses after 2 epochs (w8a, mushrooms; issue 14)? Held-out log-loss / L* after 1 and 2
shuffled epochs, one process, alpha 1e-4 (the defaults sweep's, ``bench_defaults.py``), of:

- ``kernel``: ``LogisticRegression(solver="sgd", max_iter=2)``, the shipped default;
- ``normalized``: the study's own loop over the kernel's normalized rule (the compiled pieces of
  ``shardlearn/kernels/core.py``, so it tracks the kernel: the check that the loop is right);
- ``coin``: ScInOL2 alone, a per-coordinate coin-betting learner that is scale-invariant and has
  no learning rate (Kempka, Kotlowski & Warmuth 2019, "Adaptive scale-invariant online
  algorithms for learning linear models"; Orabona & Pal 2016, "Coin betting and parameter-free
  online learning"): a coordinate bets a fraction ``min(1, |theta|) / 2`` of its wealth,
  ``theta`` its summed negative gradients over ``sqrt(sum of squares + max |x|^2)``;
- ``sum``: both learners' weights added into one prediction, each fed the gradient of that
  prediction (Cutkosky 2019, "Combining online learning guarantees": the sum's regret is
  either learner's plus the other's regret at 0, a constant for the bettor);
- ``sum, bets averaged``: the same, its bets read as their average over the last epoch (the
  online-to-batch iterate) instead of the last.

kddcup99 also gets each learner's progressive loss and the final model's training objective.
The numba loop lives here, not in ``shardlearn/kernels``: the rule is not shipped
(``benchmarks/README.md`` says why).

    python benchmarks/bench_coin.py --out benchmarks/results/coin
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_defaults import load, save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402
from shardlearn.kernels import sgd as kernel  # noqa: E402
from shardlearn.kernels.core import G, S, W, _rate_normalized, _row_gradient, _tick, _touch, invariant_scale  # noqa: E402

LR, ALPHA, EPOCHS = 0.75, 1e-4, 2
LEARNERS = {"normalized": (True, False), "coin": (False, True), "sum": (True, True)}


@njit(inline="always")
def _bet(c, z, v):
    """ScInOL2's weight of a coordinate with state row ``c`` (its squared-gradient sum and
    largest |x|), summed negative gradients ``z`` and wealth ``v``."""
    den = math.sqrt(c[G] + c[S] * c[S])
    if den <= 0 or z == 0:
        return 0.0
    return math.copysign(min(1.0, abs(z) / den), z) / (2.0 * den) * v


@njit
def _pass(indptr, indices, data, y, order, ws, scalars, bets, out, lr, l2, learn_rule, learn_bets):
    """One pass over rows ``order``: logistic loss, the normalized rule's step (the kernel's,
    importance weight 1) and/or the bets. ``bets`` rows: summed negative gradients, wealth,
    the bet now, its sum over the pass's rows, the row it was last changed at."""
    d = ws.shape[0] - 1
    rates = np.empty(ws.shape[0])
    for j in range(order.shape[0]):
        r = order[j]
        t, base = _tick(scalars, 1.0, 2, 0.0)
        lo, hi = indptr[r], indptr[r + 1]
        ws[d, S] = 1.0
        p, norm = ws[d, W], 1.0
        for k in range(lo, hi + 1):
            i, x = (indices[k], data[k]) if k < hi else (d, 1.0)
            if k < hi:
                norm += _touch(2, ws[i], x, lr, 0.0, 1.0, base, t, 0.0, l2, 0.0, 0.0)
                p += ws[i, W] * x
            if learn_bets:
                b = bets[i]
                b[3] += b[2] * (j - b[4])  # the bet held since its last change
                b[4] = j
                b[2] = _bet(ws[i], b[0], b[1])
                p += b[2] * x
        g, base = _row_gradient(scalars, 1.0, norm, 1, p, y[r], out, 2, lr, 0.0, t)
        if g == 0:
            continue
        ppu = 0.0
        for k in range(lo, hi + 1):
            i, x = (indices[k], data[k]) if k < hi else (d, 1.0)
            ppu += _rate_normalized(ws[i], x, 1.0, g, base, rates, k - lo)
        u = invariant_scale(1, p, y[r], 1.0, ppu)
        for k in range(lo, hi + 1):
            i, x = (indices[k], data[k]) if k < hi else (d, 1.0)
            if learn_rule:
                ws[i, W] -= rates[k - lo] * u
            if learn_bets:
                b = bets[i]
                gi = g * x + (l2 * b[2] if k < hi else 0.0)
                b[0] -= gi
                b[1] -= gi * b[2]


@njit
def _bets_now(ws, bets, n, averaged):
    """Each coordinate's bet after a pass of ``n`` rows, or its average over the pass."""
    out = np.empty(ws.shape[0])
    for i in range(ws.shape[0]):
        now = _bet(ws[i], bets[i, 0], bets[i, 1])
        out[i] = (bets[i, 3] + now * (n - bets[i, 4])) / n if averaged else now
    return out


def _loss(w, X, y):
    z = X @ w[:-1] + w[-1]
    return float(np.mean(np.logaddexp(0, z) - y * z))


def study(X, y, Xt, yt, lstar, learn_rule, learn_bets, seed=0) -> dict:
    """Held-out / L* after each epoch (and with averaged bets), progressive loss, training objective."""
    state = kernel.new_state(X.shape[1], "normalized")
    bets = np.zeros((X.shape[1] + 1, 5))
    bets[:, 1] = 1.0  # each coordinate's starting wealth (ScInOL's epsilon)
    rng = np.random.default_rng(seed)
    res = {"held": [], "averaged": [], "progressive": []}
    for _ in range(EPOCHS):
        bets[:, 3:] = 0.0
        out = np.zeros(2)
        _pass(X.indptr, X.indices, X.data, y, rng.permutation(X.shape[0]), state["ws"], state["scalars"], bets, out,
              LR, ALPHA, learn_rule, learn_bets)
        w = kernel.finalized(state, rule="normalized", lr=LR, l2=ALPHA)
        last = w + (_bets_now(state["ws"], bets, X.shape[0], False) if learn_bets else 0.0)
        res["held"].append(_loss(last, Xt, yt) / lstar)
        if learn_bets:
            res["averaged"].append(_loss(w + _bets_now(state["ws"], bets, X.shape[0], True), Xt, yt) / lstar)
        res["progressive"].append(out[0] / out[1])
    res["objective"] = _loss(last, X, y) + ALPHA / 2 * float(last[:-1] @ last[:-1])
    return res


def main(argv=None):
    import scipy.sparse as sp
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=500_000, help="training rows of D1 and D2")
    p.add_argument("--data", default="a9a,w8a,mushrooms,kddcup99,D1,D2")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    rows = []
    for name in args.data.split(","):
        X, y, Xt, yt = load(name, args.rows)
        lstar = log_loss(yt, LogisticRegression(tol=1e-10).fit(X, y).predict_proba(Xt))
        shipped = LogisticRegression(solver="sgd", workers=1, max_iter=EPOCHS, random_state=0).fit(X, y)
        row = {"data": name, "rows": int(X.shape[0]), "lstar": lstar,
               "kernel": log_loss(yt, shipped.predict_proba(Xt)) / lstar}
        X, Xt = (sp.csr_matrix(a, dtype=np.float64) for a in (X, Xt))
        X.indices = X.indices.astype(np.int64)
        y, yt = np.asarray(y, dtype=np.float64), np.asarray(yt, dtype=np.float64)
        for label, (rule, bet) in LEARNERS.items():
            row[label] = study(X, y, Xt, yt, lstar, rule, bet)
        rows.append(row)
        print(row, flush=True)
    machine = facts()
    lines = [f"# A learning-rate-free bet beside the normalized rule: held-out log-loss / L* after {EPOCHS} epochs",
             "", "One process, alpha 1e-4, shuffled epochs (seed 0); after epoch 1 in brackets "
             "(`benchmarks/bench_coin.py`: what each column is).", "", f"Machine: {machine}", "",
             "| data | kernel (shipped) | normalized (study loop) | coin | sum | sum, bets averaged |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r['kernel']:.4f}"] + [f"{r[k]['held'][-1]:.4f} ({r[k]['held'][0]:.4f})" for k in LEARNERS]
        cells.append(f"{r['sum']['averaged'][-1]:.4f} ({r['sum']['averaged'][0]:.4f})")
        lines.append(f"| {r['data']} ({r['rows']:,} rows, L* {r['lstar']:.4f}) | " + " | ".join(cells) + " |")
    lines += ["", "Progressive log-loss of the last epoch and the final model's training objective (loss + "
              "alpha/2 |w|^2):", "", "| data | learner | progressive | objective |", "|---|---|---|---|"]
    lines += [f"| {r['data']} | {k} | {r[k]['progressive'][-1]:.5f} | {r[k]['objective']:.5f} |"
              for r in rows for k in LEARNERS]
    save(args.out, "coin", rows, machine, lines)


if __name__ == "__main__":
    main()
