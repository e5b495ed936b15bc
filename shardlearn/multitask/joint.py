"""Joint multi-task linear models as scikit-learn estimators: ``fit(X, y, tasks=t)``,
``predict(X, tasks=t)``. Task ``t`` predicts with ``w0 + v_t`` and its own intercept
(``models/multitask.py``: Evgeniou & Pontil 2004), fitted in one process by L-BFGS
(scipy's L-BFGS-B; Liu & Nocedal 1989) on the whole objective until no gradient entry
exceeds ``tol``.

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
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from shardlearn.core import modelfile
from shardlearn.core.errors import ConfigError, DataError, ModelFileError
from shardlearn.models import multitask as mt


class _MultiTask(BaseEstimator):
    LOSS = ""

    def __init__(self, *, alpha: float = 1.0, task_alpha: float = 1.0, fit_intercept: bool = True,
                 max_iter: int = 1000, tol: float = 1e-9):
        self.alpha, self.task_alpha, self.fit_intercept, self.max_iter, self.tol = \
            alpha, task_alpha, fit_intercept, max_iter, tol

    # --- fitting ---------------------------------------------------------------
    def fit(self, X, y, tasks=None, sample_weight=None):
        if tasks is None:
            raise DataError("fit needs tasks=: each row's task (an array as long as X)")
        if not (self.alpha >= 0 and self.task_alpha >= 0):
            raise ConfigError(f"alpha and task_alpha must be >= 0, got {self.alpha!r} and {self.task_alpha!r}")
        X = mt.as_rows(X)
        n, d = X.shape
        tasks = np.asarray(tasks)
        if tasks.shape != (n,):
            raise DataError(f"tasks has shape {tasks.shape}; expected ({n},), one task per row of X")
        y = self._targets(np.asarray(y))
        if y.shape != (n,):
            raise DataError(f"y has shape {y.shape}; expected ({n},), one label per row of X")
        self.tasks_, index = np.unique(tasks, return_inverse=True)
        T = self.tasks_.size
        groups = mt.Tasks(index, T)
        bounds = [(None, None)] * (d + T * d) + [(None, None) if self.fit_intercept else (0.0, 0.0)] * T

        def objective(theta):
            value, grad = mt.loss_and_grad(self.LOSS, mt.unflat(theta, d, T), X, y, groups, alpha=self.alpha,
                                           task_alpha=self.task_alpha, sample_weight=sample_weight)
            return value, mt.flat(grad)

        res = minimize(objective, mt.flat(mt.init(d, T)), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": self.max_iter, "ftol": 1e-15, "gtol": self.tol, "maxcor": 20})
        params = mt.unflat(res.x, d, T)
        self.coef_shared_, self.coef_tasks_, self.intercept_ = params["w0"], params["V"], params["b"]
        self._fallback_intercept = float(np.bincount(index, minlength=T) @ self.intercept_ / n)
        self.n_features_in_, self.n_iter_, self.objective_ = d, int(res.nit), float(res.fun)
        return self

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
