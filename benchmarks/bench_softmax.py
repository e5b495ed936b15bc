"""Multinomial logistic regression under ``solver="sgd"`` at the defaults: the training
objective over the optimum's (F / F*) and the held-out log-loss over the optimum's (L / L*),
with held-out accuracy, for one process, the allreduce strategies, Hogwild and the
parameter-server strategies (README, "Softmax per example").

Data: scikit-learn's digits (1,797 x 64 pixel counts 0-16, 10 classes) and wine (178 x 13
raw chemistry, 3 classes), each split 75/25 with a fixed seed; a 3-class version of
``bench_centring.table`` (6,000 x 8 dense columns of scales 0.01 to 1,000, one 50 +- 1);
kddcup99's first 100,000 training rows, 38 numeric columns raw (byte counts in the millions)
and the 3 categorical ones one-hot, the classes seen there (held out: the next 50,000 rows'
known classes). F*, L*: the same estimator's L-BFGS fit (tol 1e-10) at the same alpha.

    python benchmarks/bench_softmax.py --out benchmarks/results/softmax
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_centring import table as centring_table  # noqa: E402
from benchmarks.bench_defaults import save  # noqa: E402
from benchmarks.machine import facts  # noqa: E402

STRATEGIES = {"sgd x1": dict(solver="sgd", workers=1), "bsp x2": dict(strategy="bsp", workers=2),
              "local_sgd x2": dict(strategy="local_sgd", workers=2), "hogwild x2": dict(strategy="hogwild", workers=2),
              "ssp x2": dict(strategy="ssp", workers=2), "asp x2": dict(strategy="asp", workers=2),
              "bsp x2 server": dict(strategy="bsp", workers=2, servers=1)}
EPOCHS = {"2 epochs": dict(max_iter=2), "defaults": {}}


def three_classes(seed=0):
    """``bench_centring.table`` with its score cut into 3 classes at its terciles."""
    X, _, yr = centring_table(seed=seed)
    cuts = np.quantile(yr, [1 / 3, 2 / 3])
    return X, np.searchsorted(cuts, yr)


def kddcup(rows=100_000, held=50_000):
    """kddcup99's first ``rows`` training rows (numeric raw, categorical one-hot) and the next
    ``held`` rows of a class seen in them."""
    import pandas as pd

    path = os.path.join(os.environ.get("SHARED", "/work/shared"), "data", "kddcup99", "kddcup.data_10_percent.gz")
    df = pd.read_csv(path, header=None, nrows=rows + held)
    y = df.pop(41).to_numpy()
    X = pd.get_dummies(df, columns=[1, 2, 3], dtype=float).to_numpy(dtype=np.float64)
    train = np.zeros(len(y), dtype=bool)
    train[:rows] = True
    keep = train | np.isin(y, np.unique(y[:rows]))
    return X[train], y[train], X[keep & ~train], y[keep & ~train]


def datasets(names=None) -> dict:
    """``{name: (X_train, X_held_out, y_train, y_held_out)}`` of the sets ``names`` (None: all)."""
    from sklearn.datasets import load_digits, load_wine
    from sklearn.model_selection import train_test_split

    def split(loader):
        X, y = loader(return_X_y=True)
        return train_test_split(X.astype(np.float64), y, test_size=0.25, random_state=0, stratify=y)

    def table():
        X, y = three_classes()
        return X[:4500], X[4500:], y[:4500], y[4500:]

    def kdd():
        Xt, yt, Xh, yh = kddcup()
        return Xt, Xh, yt, yh

    sets = {"digits": lambda: split(load_digits), "wine": lambda: split(load_wine), "3-class table": table,
            "kddcup99 100k": kdd}
    return {name: make() for name, make in sets.items() if not names or name in names}


def _objective(clf, X, y, alpha):
    from sklearn.metrics import log_loss

    return log_loss(y, clf.predict_proba(X), labels=clf.classes_) + 0.5 * alpha * float(np.sum(clf.coef_ ** 2))


def run(names=None, strategies=None, epochs=None):
    from sklearn.metrics import log_loss

    from shardlearn import LogisticRegression

    warnings.simplefilter("ignore")
    rows = []
    for name, (Xt, Xh, yt, yh) in datasets(names).items():
        ref = LogisticRegression(solver="lbfgs", tol=1e-10, max_iter=2000).fit(Xt, yt)
        f_star = _objective(ref, Xt, yt, ref.alpha)
        l_star = log_loss(yh, ref.predict_proba(Xh), labels=ref.classes_)
        for strategy, kw in STRATEGIES.items():
            if strategies and strategy not in strategies:
                continue
            for label, ekw in EPOCHS.items():
                if epochs and label not in epochs:
                    continue
                t0 = time.perf_counter()
                clf = LogisticRegression(random_state=0, **kw, **ekw).fit(Xt, yt)
                rows.append(dict(data=name, strategy=strategy, epochs=label, seconds=round(time.perf_counter() - t0, 2),
                                 F_over_Fstar=round(_objective(clf, Xt, yt, clf.alpha) / f_star, 4),
                                 L_over_Lstar=round(log_loss(yh, clf.predict_proba(Xh), labels=clf.classes_) / l_star,
                                                    4),
                                 accuracy=round(float(np.mean(clf.predict(Xh) == yh)), 4),
                                 optimum_accuracy=round(float(np.mean(ref.predict(Xh) == yh)), 4),
                                 optimizer=clf.train_config().optimizer))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for softmax.jsonl and softmax.md")
    p.add_argument("--data", default="", help="comma-separated data sets (default: all)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = run([d for d in args.data.split(",") if d])
    cols = ["data", "strategy", "epochs", "F_over_Fstar", "L_over_Lstar", "accuracy", "optimum_accuracy",
            "optimizer", "seconds"]
    machine = facts()
    lines = ["# Softmax per example: training objective and held-out log-loss over the optimum's", "",
             f"Machine: {machine}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    save(args.out, "softmax", rows, machine, lines)


if __name__ == "__main__":
    main()
