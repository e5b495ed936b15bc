"""Joint multi-task linear models as scikit-learn estimators: ``fit(X, y, tasks=t)``,
``predict(X, tasks=t)``. Task ``t`` predicts with ``w0 + v_t`` and its own intercept
(``models/multitask.py``: Evgeniou & Pontil 2004), fitted by L-BFGS (Liu & Nocedal 1989)
or, with ``l1_ratio > 0``, OWL-QN (Andrew & Gao 2007) until the gradient's norm falls to
``tol`` (``solver="gd"``: steepest descent, the same line search). The penalty is
``alpha ((1 - l1_ratio)/2 ||w0||^2 + l1_ratio |w0|_1)`` plus the same in ``task_alpha`` over
every ``v_t``; intercepts are not penalised.

With ``workers=N`` the tasks are partitioned across N local worker processes by a hash of
the task id: each worker holds its tasks' rows and parameters, and only the shared part's
gradient and the solver's dot products travel (``multitask/split.py``); the result equals
one process's. ``fit_result_.reports`` holds each worker's rows, tasks and bytes sent.

``alpha`` penalises the shared part, ``task_alpha`` the task parts; ``task_alpha`` large
gives one pooled model with per-task intercepts, ``alpha`` large one model per task. A task
never seen in training predicts with the shared part and the row-weighted mean of the
learned intercepts.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X, t = rng.normal(size=(300, 3)), rng.integers(3, size=300)
>>> y = X @ np.array([1.0, -1.0, 0.5]) + np.array([0.0, 2.0, -2.0])[t] + 0.1 * rng.normal(size=300)
>>> m = MultiTaskLinearRegression(alpha=1e-3, task_alpha=1.0).fit(X, y, tasks=t)
>>> np.round(m.coef_shared_, 1).tolist(), np.round(m.intercept_, 1).tolist()
([1.0, -1.0, 0.5], [0.0, 2.0, -2.0])
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from shardlearn.core import modelfile
from shardlearn.core.errors import ConfigError, DataError, ModelFileError
from shardlearn.comm.base import LocalCollective
from shardlearn.models import multitask as mt
from shardlearn.models._glm import weights
from shardlearn.multitask import split
from shardlearn.runtime.config import TrainConfig
from shardlearn.runtime.distributed import run_job
from shardlearn.runtime.result import FitResult
from shardlearn.runtime.spill import Spill


def check_rows(X, keys, y, sample_weight, name: str):
    """``(X, keys, y, sample_weight)`` as arrays of one row each, or a one-line DataError."""
    X = mt.as_rows(X)
    n = X.shape[0]
    keys = np.asarray(keys)
    if keys.shape != (n,):
        what = "task" if name == "tasks" else "group"
        raise DataError(f"{name} has shape {keys.shape}; expected ({n},), one {what} per row of X")
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"y has shape {y.shape}; expected ({n},), one label per row of X")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (n,) or not np.all(sample_weight >= 0) or sample_weight.sum() <= 0:
            raise DataError(f"sample_weight must be {n} numbers >= 0 with a positive sum")
    return X, keys, y, sample_weight


class _MultiTask(BaseEstimator):
    LOSS = ""

    def __init__(self, *, alpha: float = 1.0, task_alpha: float = 1.0, l1_ratio: float = 0.0,
                 fit_intercept: bool = True, solver: str = "lbfgs", max_iter: int = 1000, tol: float = 1e-9,
                 workers: int = 1):
        self.alpha, self.task_alpha, self.l1_ratio, self.fit_intercept = alpha, task_alpha, l1_ratio, fit_intercept
        self.solver, self.max_iter, self.tol, self.workers = solver, max_iter, tol, workers

    # --- fitting ---------------------------------------------------------------
    def _check_params(self):
        if not (self.alpha >= 0 and self.task_alpha >= 0):
            raise ConfigError(f"alpha and task_alpha must be >= 0, got {self.alpha!r} and {self.task_alpha!r}")
        if not 0.0 <= self.l1_ratio <= 1.0:
            raise ConfigError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if self.solver not in split.SOLVER_MEMORY:
            raise ConfigError(f"solver={self.solver!r} is not known; expected one of {', '.join(split.SOLVER_MEMORY)}")
        if not (isinstance(self.workers, (int, np.integer)) and self.workers >= 1):
            raise ConfigError(f"workers must be a whole number >= 1, got {self.workers!r}")

    def fit(self, X, y, tasks=None, sample_weight=None):
        if tasks is None:
            raise DataError("fit needs tasks=: each row's task (an array as long as X)")
        self._check_params()
        X, tasks, y, sample_weight = check_rows(X, tasks, y, sample_weight, "tasks")
        y = self._targets(y)
        n, d = X.shape
        self.tasks_, index = np.unique(tasks, return_inverse=True)
        T = self.tasks_.size
        hyper = {"loss": self.LOSS, "alpha": self.alpha, "task_alpha": self.task_alpha, "l1_ratio": self.l1_ratio,
                 "fit_intercept": self.fit_intercept, "max_iter": self.max_iter, "tol": self.tol,
                 "solver": self.solver}
        if self.workers == 1:
            part = split.fit_part(LocalCollective(), X, y, sample_weight, index, np.arange(T), **hyper)
            V, b = part["V"], part["b"]
            result = FitResult({"w0": part["w0"]}, part["n_iter"], reports=[part["report"]],
                               info={"objective": part["objective"], "converged": part["converged"]})
        else:
            result = self._fit_on_workers(X, y, sample_weight, index, hyper)
            V, b = np.empty((T, d)), np.empty(T)
            for p in result.info.pop("parts"):
                V[p["tasks"]], b[p["tasks"]] = p["V"], p["b"]
        self.coef_shared_, self.coef_tasks_, self.intercept_ = result.params["w0"], V, b
        self._fallback_intercept = float(np.bincount(index, minlength=T) @ self.intercept_ / n)
        self.n_features_in_, self.n_iter_ = d, int(result.n_iter)
        self.objective_, self.fit_result_ = float(result.info["objective"]), result
        return self

    def _fit_on_workers(self, X, y, sample_weight, index, hyper) -> FitResult:
        """Tasks partitioned across the local group by a hash of the task id (``multitask.split``)."""
        cfg = TrainConfig(workers=int(self.workers), max_iter=self.max_iter, tol=self.tol)
        with Spill(X, y, sample_weight, extra={"tasks": index}) as spec:
            return run_job(cfg, "shardlearn.multitask.split:fit_job", spill=spec,
                           owner=split.owners(self.tasks_, int(self.workers)), hyper=hyper)

    # --- predicting -------------------------------------------------------------
    def decision_function(self, X, tasks=None) -> np.ndarray:
        if tasks is None:
            raise DataError("predict needs tasks=: each row's task (the model was fitted per task)")
        X = mt.as_rows(X)
        tasks = np.asarray(tasks)
        if tasks.shape != (X.shape[0],):
            raise DataError(f"tasks has shape {tasks.shape}; expected ({X.shape[0]},), one task per row of X")
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features; the model was fitted on {self.n_features_in_}")
        pos = np.searchsorted(self.tasks_, tasks).clip(0, self.tasks_.size - 1)
        known = self.tasks_[pos] == tasks
        T = self.tasks_.size
        # an unknown task: the shared part, and the learned intercepts' row-weighted mean (an extra task T)
        params = {"w0": self.coef_shared_, "V": np.vstack([self.coef_tasks_, np.zeros(self.n_features_in_)]),
                  "b": np.append(self.intercept_, self._fallback_intercept)}
        return mt.scores(params, X, mt.Tasks(np.where(known, pos, T), T + 1))

    def objective(self, X, y, tasks=None, sample_weight=None) -> float:
        """The fitted objective on ``(X, y)``: the weighted mean loss plus the penalties."""
        z = self.decision_function(X, tasks)
        y = self._known_targets(np.asarray(y))
        value, _ = mt.LINKS[self.LOSS](z, y, weights(sample_weight, z.size))
        a, ta, r = self.alpha, self.task_alpha, self.l1_ratio
        w0, V = self.coef_shared_, self.coef_tasks_
        return float(value + a * (0.5 * (1 - r) * w0 @ w0 + r * np.abs(w0).sum())
                     + ta * (0.5 * (1 - r) * np.sum(V * V) + r * np.abs(V).sum()))

    # --- model files --------------------------------------------------------------
    def save(self, directory: str) -> None:
        """A model directory without pickle (``shardlearn.load`` reads it back)."""
        arrays = {"w0": self.coef_shared_, "V": self.coef_tasks_, "b": self.intercept_,
                  "fallback": np.array(self._fallback_intercept), "tasks": self.tasks_}
        if hasattr(self, "classes_"):
            arrays["classes"] = self.classes_
        if self.tasks_.dtype == object:
            arrays["tasks"] = self.tasks_.astype(str)
        modelfile.write(directory, {"kind": type(self).__name__, "hyper_parameters": self.get_params(),
                                    "n_features_in": self.n_features_in_, "n_iter": self.n_iter_}, arrays)

    @classmethod
    def from_files(cls, directory: str, meta: dict, arrays: dict):
        try:
            est = cls(**meta["hyper_parameters"])
            est.coef_shared_, est.coef_tasks_, est.intercept_ = arrays["w0"], arrays["V"], arrays["b"]
            est._fallback_intercept, est.tasks_ = float(arrays["fallback"]), arrays["tasks"]
            est.n_features_in_, est.n_iter_ = int(meta["n_features_in"]), int(meta["n_iter"])
            if "classes" in arrays:
                est.classes_ = arrays["classes"]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{directory}: model.json or params.npz lacks a field or has a wrong one ({e})") \
                from None
        if est.coef_tasks_.shape != (est.tasks_.size, est.n_features_in_):
            raise ModelFileError(f"{directory}: the task weights do not match {est.tasks_.size} tasks of "
                                 f"{est.n_features_in_} features")
        return est


class MultiTaskLinearRegression(RegressorMixin, _MultiTask):
    """Least squares over many related tasks: ``mean(0.5 (x.(w0 + v_t) + b_t - y)^2)`` plus the penalties."""

    LOSS = "squared"

    def _targets(self, y):
        return y.astype(np.float64)

    _known_targets = _targets

    def predict(self, X, tasks=None) -> np.ndarray:
        return self.decision_function(X, tasks)

    def score(self, X, y, tasks=None, sample_weight=None):
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X, tasks), sample_weight=sample_weight)


class MultiTaskLogisticRegression(ClassifierMixin, _MultiTask):
    """Binary logistic regression over many related tasks (two classes, shared by all tasks)."""

    LOSS = "logistic"

    def _targets(self, y):
        self.classes_ = np.unique(y)
        if self.classes_.size != 2:
            raise DataError(f"MultiTaskLogisticRegression needs two classes in y, got {self.classes_.size}")
        return self._known_targets(y)

    def _known_targets(self, y):
        return (y == self.classes_[1]).astype(np.float64)

    def predict_proba(self, X, tasks=None) -> np.ndarray:
        from scipy.special import expit

        p = expit(self.decision_function(X, tasks))
        return np.column_stack([1.0 - p, p])

    def predict(self, X, tasks=None) -> np.ndarray:
        return self.classes_[(self.decision_function(X, tasks) > 0).astype(int)]

    def score(self, X, y, tasks=None, sample_weight=None):
        from sklearn.metrics import accuracy_score

        return accuracy_score(y, self.predict(X, tasks), sample_weight=sample_weight)


MULTITASK_ESTIMATORS = {c.__name__: c for c in (MultiTaskLinearRegression, MultiTaskLogisticRegression)}
