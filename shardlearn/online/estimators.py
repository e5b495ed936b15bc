"""Online estimators: learn from one example at a time (River's ``learn_one`` /
``predict_one`` on feature dicts) or from tables (``learn_many`` / ``partial_fit``),
on the per-example kernel every stochastic strategy runs (``kernels/sgd.py``: Vowpal
Wabbit's normalized adaptive rule with its importance-invariant step by default,
AdaGrad, FTRL-Proximal, SGD; lazy L1/L2). Features are hashed into ``2**hash_bits``
columns (``online/features.py``), so the model's width is fixed before the first
example and new features need nothing.

``learn_many(X, y)`` equals a loop of ``learn_one`` over the rows exactly (one kernel
pass over the rows in order); a prediction between two learned examples changes no
weight. ``progressive_loss_`` is the mean loss of each example before it was learned
from (progressive validation, Blum, Kalai & Langford 1999; VW's "average loss").

>>> m = OnlineLogisticRegression(hash_bits=10)
>>> for i in range(200):
...     m.learn_one({"x": i % 2}, i % 2)
>>> m.predict_one({"x": 1}), m.predict_one({"x": 0})
(1, 0)
>>> m.predict_proba_one({"x": 1})[1] > 0.9
True
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shardlearn.core import modelfile
from shardlearn.core.errors import ConfigError, DataError, DivergedError, ModelFileError, overshoot
from shardlearn.data import vwtext
from shardlearn.data.interactions import pairs_array
from shardlearn.kernels import predict as kpredict
from shardlearn.kernels import sgd as kernel
from shardlearn.online import features
from shardlearn.online.instances import Rows
from shardlearn.runtime.config import DEFAULT_LEARNING_RATE, PER_EXAMPLE_RULES


class _OnlineLinear:
    """What the online estimators share: the kernel's state, hashing, learning, saving."""

    LOSSES: tuple = ()

    def __init__(self, *, loss: str, hash_bits: int = 18, rule: str = "normalized", learning_rate: float | None = None,
                 l1: float = 0.0, l2: float = 0.0, fit_intercept: bool = True, power_t: float = 0.0, interactions=()):
        if loss not in self.LOSSES:
            raise ConfigError(f"loss={loss!r} is not known to {type(self).__name__}; expected one of "
                              f"{', '.join(self.LOSSES)}")
        if rule not in PER_EXAMPLE_RULES:
            raise ConfigError(f"rule={rule!r} is not known; expected one of {', '.join(PER_EXAMPLE_RULES)}")
        if not (isinstance(hash_bits, (int, np.integer)) and 1 <= hash_bits <= 30):
            raise ConfigError(f"hash_bits must be an integer in 1..30, got {hash_bits!r}")
        for name, v in (("l1", l1), ("l2", l2), ("power_t", power_t)):
            if not v >= 0:
                raise ConfigError(f"{name} must be >= 0, got {v!r}")
        lr = DEFAULT_LEARNING_RATE[rule] if learning_rate is None else float(learning_rate)
        if not lr > 0:
            raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}")
        try:
            pairs_array(list(interactions))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"interactions: {e}") from None
        self.interactions = [str(p) for p in interactions]
        self.loss, self.hash_bits, self.rule, self.learning_rate = loss, int(hash_bits), rule, learning_rate
        self.l1, self.l2, self.fit_intercept, self.power_t = float(l1), float(l2), bool(fit_intercept), float(power_t)
        self._opts = dict(rule=rule, lr=lr, power_t=self.power_t, l1=self.l1, l2=self.l2)
        self._state = kernel.new_state(1 << self.hash_bits, rule)
        self._progress = np.zeros(2)  # sum of weight x loss before learning, sum of weight
        self.n_seen_ = 0
        self._lost = None  # why the weights were lost, once a call overflowed them

    # --- learning ----------------------------------------------------------
    def learn_one(self, x: dict, y, w: float = 1.0) -> None:
        """Learn from one example: feature dict ``x``, label ``y``, importance weight ``w``."""
        idx, val = features.one(x, self.hash_bits, self.interactions)
        X = sp.csr_matrix((val, idx, np.array([0, idx.size])), shape=(1, 1 << self.hash_bits))
        self._learn(X, self._targets([y]), np.array([float(w)]))

    def learn_many(self, X, y, sample_weight=None):
        """Learn from the rows of a table (numpy, scipy.sparse, pandas), in order; equals a loop
        of ``learn_one`` over its rows' dicts."""
        H = features.rows(X, self.hash_bits, self.interactions)
        y = np.asarray(y)
        if y.shape != (H.shape[0],):
            raise DataError(f"y has shape {y.shape}; expected ({H.shape[0]},), one label per row of X")
        h = np.ones(H.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if h.shape != (H.shape[0],) or not np.all(np.isfinite(h)) or (h < 0).any():
            raise DataError(f"sample_weight must hold {H.shape[0]} finite values >= 0")
        self._learn(H, self._targets(y), h)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """scikit-learn's name for ``learn_many``."""
        return self.learn_many(X, y, sample_weight)

    def learn_block(self, X, labels, h, predictions=None) -> np.ndarray:
        """Rows of a parsed stream (``online/formats.py``: hashed CSR with the interactions already
        added, labels as the file writes them, importance weights); ``predictions`` receives each
        row's progressive score.
        Returns the targets learned (classification: positive when the label is > 0, as
        Vowpal Wabbit's -1/+1, and 0/1 files, read)."""
        y = self.stream_targets(np.asarray(labels, dtype=np.float64))
        self._learn(X, y, h, predictions)
        return y

    def stream_targets(self, labels: np.ndarray) -> np.ndarray:
        """The targets the kernel learns for a stream's labels (as ``learn_block`` reads them)."""
        return labels

    @property
    def kernel_options(self) -> dict:
        """The kernel's settings: ``rule``, ``lr`` (the default resolved), ``power_t``, ``l1``, ``l2``."""
        return dict(self._opts)

    def _learn(self, X, y, h, predictions=None) -> None:
        self._usable()
        z = np.empty(X.shape[0]) if predictions is None else predictions
        out = kernel.run(self._state, X, y, h, np.arange(X.shape[0]), loss=self.loss,
                         fit_intercept=self.fit_intercept, predictions=z, **self._opts)
        row = kernel.overflowed(out, self.loss, z, y, h)
        if row is not None:  # the weights are lost: said at once, not served as NaN predictions
            why = f"the loss overflowed to inf or NaN: {self._overshoot()}"
            self._lost = f"row {row} of an earlier call, {self.n_seen_} examples in"
            raise DivergedError(f"row {row}: {why}", row=row, reason=why)
        self._progress += out
        self.n_seen_ += int(np.count_nonzero(h > 0))

    def _usable(self) -> None:
        """Refuse a learner whose weights an earlier call overflowed: the kernel updates them in
        place, so they are NaN where that call stopped, and every later prediction or step
        would be NaN or be blamed on its own rows."""
        if self._lost is not None:
            raise DivergedError(f"the weights overflowed at {self._lost} (rule={self.rule!r} at learning_rate="
                                f"{self._opts['lr']:g}) and are lost: start a new learner, or load a saved model, "
                                "with a lower learning_rate or the default rule 'normalized'")

    def _overshoot(self) -> str:
        return overshoot("rule", self.rule, self._opts["lr"])

    # --- predicting ----------------------------------------------------------
    def _score_one(self, x: dict) -> float:
        idx, val = features.one(x, self.hash_bits, self.interactions)
        return float(self._scores(sp.csr_matrix((val, idx, np.array([0, idx.size])),
                                                shape=(1, 1 << self.hash_bits)))[0])

    def _scores(self, H) -> np.ndarray:
        self._usable()
        return kpredict.scores(self._state, H, fit_intercept=self.fit_intercept, **self._opts)

    def _text_scores(self, buf: bytes, n: int):
        """Scores of ``n`` Vowpal Wabbit lines (no interactions) parsed in one compiled call
        (``data.vwtext.quick``: a served request's rows), or None where a line needs the full
        parse (``online/instances.py``)."""
        parsed = vwtext.quick(buf, self.hash_bits)
        if parsed is None or parsed[0].size != n + 1:  # an empty line is no example: the full path names it
            return None
        indptr, indices, values = parsed
        return self._scores(Rows(values, indices, indptr, (n, 1 << self.hash_bits)))

    def decision_function(self, X) -> np.ndarray:
        """Scores ``w . x + b`` of a table's rows (read-only: the model does not change)."""
        return self._scores(features.rows(X, self.hash_bits, self.interactions))

    @property
    def progressive_loss_(self) -> float:
        """Mean loss of each example before it was learned from (NaN before any)."""
        return float(self._progress[0] / self._progress[1]) if self._progress[1] > 0 else float("nan")

    @property
    def coef_(self) -> np.ndarray:
        """The weights (``2**hash_bits``), each brought up to date with the penalty."""
        return self._finalized()[:-1]

    @property
    def intercept_(self) -> float:
        """The intercept (never penalised, so never behind: no finalized copy of the state)."""
        return float(kernel.weights(self._state)[-1])

    def _finalized(self) -> np.ndarray:
        return kernel.finalized(self._state, **self._opts)

    # --- model files -----------------------------------------------------------
    def get_params(self) -> dict:
        return {"loss": self.loss, "hash_bits": self.hash_bits, "rule": self.rule,
                "learning_rate": self.learning_rate, "l1": self.l1, "l2": self.l2,
                "fit_intercept": self.fit_intercept, "power_t": self.power_t, "interactions": list(self.interactions)}

    def snapshot(self) -> tuple[dict, dict]:
        """The whole learning state: ``(arrays, facts)`` that ``restore`` takes back. Only the
        coordinates ever touched are kept (a 2**22-wide state is 128 MB, a stream touches a
        fraction of it), so a checkpoint costs what was learned, not the hash width."""
        self._usable()
        ws = self._state["ws"]
        rows = np.flatnonzero(ws.any(axis=1))
        state_rows = ws[rows]
        if not np.isfinite(np.sum(state_rows[:, kernel.W])):  # a last row's overflow no loss has seen yet
            raise DivergedError(f"the weights overflowed to inf or NaN: {self._overshoot()}")
        return ({"rows": rows, "state_rows": state_rows, "scalars": self._state["scalars"],
                 "progress": self._progress}, {"n_seen": self.n_seen_})

    def copy(self):
        """An independent copy: the same settings and the whole learning state (one copy of each
        array, no scan: what a learner publishing a snapshot to its server pays)."""
        out = type(self)(**self.get_params())
        out._state = {k: np.array(v) for k, v in self._state.items()}
        out._progress, out.n_seen_, out._lost = self._progress.copy(), self.n_seen_, self._lost
        return out

    def restore(self, arrays: dict, facts: dict) -> None:
        rows, state_rows = np.asarray(arrays["rows"]), np.asarray(arrays["state_rows"])
        scalars, progress = arrays["scalars"], arrays["progress"]
        width = self._state["ws"].shape[0]
        if state_rows.shape != (rows.size, 4) or (rows.size and (rows.min() < 0 or rows.max() >= width)) or \
                scalars.shape != (2,) or progress.shape != (2,):
            raise ModelFileError(f"the state's rows do not fit hash_bits={self.hash_bits}")
        ws = np.zeros(self._state["ws"].shape)  # zero pages on demand (zeros_like writes all 2**bits rows first)
        ws[rows] = state_rows
        self._state = {"ws": ws, "scalars": np.array(scalars, dtype=np.float64)}
        self._progress = np.array(progress, dtype=np.float64)
        self.n_seen_, self._lost = int(facts["n_seen"]), None

    def save(self, directory: str) -> None:
        """Write the model (its whole learning state: it continues exactly after ``load``)."""
        arrays, facts = self.snapshot()
        modelfile.write(directory, dict(facts, kind=type(self).__name__, hyper_parameters=self.get_params()),
                        arrays)

    @classmethod
    def from_files(cls, directory: str, meta: dict, arrays: dict):
        """The estimator ``save`` wrote (``shardlearn.load`` calls this)."""
        try:
            params = dict(meta["hyper_parameters"])
            if cls.__name__ == "OnlineLinearRegression":
                params.pop("loss", None)
            est = cls(**params)
            est.restore(arrays, meta)
        except (KeyError, TypeError, ConfigError) as e:
            raise ModelFileError(f"{directory}: model.json or params.npz lacks a field or has a wrong one ({e})") \
                from None
        except ModelFileError as e:
            raise ModelFileError(f"{directory}: {e}") from None
        return est


class OnlineLogisticRegression(_OnlineLinear):
    """A binary classifier learned online: ``loss="logistic"`` (probabilities), ``"hinge"``
    or ``"squared_hinge"``. ``classes``: the (negative, positive) labels; ``True``/``False``
    work with the default (0, 1). ``l1``/``l2``: penalty strengths per unit of importance
    weight (VW's ``--l1``/``--l2``); ``rule``: the kernel's update rule; ``interactions``: namespace
    pairs crossed as VW's ``-q`` (``["ua"]``: every feature of a namespace starting with ``u`` times
    every one starting with ``a``; ``data/interactions.py``)."""

    LOSSES = ("logistic", "hinge", "squared_hinge")

    def __init__(self, hash_bits: int = 18, *, loss: str = "logistic", rule: str = "normalized",
                 learning_rate: float | None = None, l1: float = 0.0, l2: float = 0.0, fit_intercept: bool = True,
                 power_t: float = 0.0, classes=(0, 1), interactions=()):
        super().__init__(loss=loss, hash_bits=hash_bits, rule=rule, learning_rate=learning_rate, l1=l1, l2=l2,
                         fit_intercept=fit_intercept, power_t=power_t, interactions=interactions)
        classes = list(classes)
        if len(classes) != 2 or classes[0] == classes[1]:
            raise ConfigError(f"classes must be two different labels (negative, positive), got {classes!r}")
        self.classes_ = np.array(classes)

    def _targets(self, y) -> np.ndarray:
        y = np.asarray(y)
        pos, neg = y == self.classes_[1], y == self.classes_[0]
        if not (pos | neg).all():
            bad = y[~(pos | neg)][0].item()
            raise DataError(f"label {bad!r} is not one of the classes {tuple(self.classes_.tolist())}; pass "
                            "classes=(negative, positive)")
        return pos.astype(np.float64)

    def stream_targets(self, labels: np.ndarray) -> np.ndarray:
        return (labels > 0).astype(np.float64)

    def get_params(self) -> dict:
        return dict(super().get_params(), classes=self.classes_.tolist())

    def predict_one(self, x: dict):
        return self.classes_[int(self._score_one(x) > 0)].item()

    def predict_proba_one(self, x: dict) -> dict:
        """``{negative: 1 - p, positive: p}`` (logistic loss only)."""
        p = float(self._proba(np.array([self._score_one(x)]))[0])
        return {self.classes_[0].item(): 1.0 - p, self.classes_[1].item(): p}

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def predict_proba(self, X) -> np.ndarray:
        p = self._proba(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def _proba(self, z) -> np.ndarray:
        if self.loss != "logistic":
            raise ConfigError(f"probabilities need loss='logistic'; this model's loss is {self.loss!r}")
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow


class OnlineLinearRegression(_OnlineLinear):
    """Least squares learned online (``loss="squared"``); same options as the classifier."""

    LOSSES = ("squared",)

    def __init__(self, hash_bits: int = 18, *, rule: str = "normalized", learning_rate: float | None = None,
                 l1: float = 0.0, l2: float = 0.0, fit_intercept: bool = True, power_t: float = 0.0,
                 interactions=()):
        super().__init__(loss="squared", hash_bits=hash_bits, rule=rule, learning_rate=learning_rate, l1=l1, l2=l2,
                         fit_intercept=fit_intercept, power_t=power_t, interactions=interactions)

    def _targets(self, y) -> np.ndarray:
        try:
            t = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"labels must be numbers, got {np.asarray(y)[:3].tolist()!r}") from None
        if not np.all(np.isfinite(t)):
            raise DataError(f"label {t[~np.isfinite(t)][0].item()!r} is not finite")
        return t

    def get_params(self) -> dict:
        """The constructor's arguments (the loss is always squared: not one of them)."""
        params = super().get_params()
        del params["loss"]
        return params

    def predict_one(self, x: dict) -> float:
        return self._score_one(x)

    def predict(self, X) -> np.ndarray:
        return self.decision_function(X)


ONLINE_ESTIMATORS = {c.__name__: c for c in (OnlineLogisticRegression, OnlineLinearRegression)}
