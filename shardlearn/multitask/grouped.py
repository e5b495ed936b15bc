"""``GroupedModel``: one linear model per group value, kept as stacked arrays (``coef_``
``(G, d)``, ``intercept_`` ``(G,)``), routing each row to its group's model. Written by
``fit_per_group`` and ``shardlearn train --group-by``; saved as one model directory
without pickle (a fallback model, if any, in its ``fallback/`` folder).

A group never seen in training: a ``DataError`` naming it, or the ``fallback_`` model's
answer when there is one. A classifier's group whose training rows held one class
predicts that class (probability 1).

>>> import numpy as np
>>> m = GroupedModel("LinearRegression", {}, np.array(["a", "b"]), np.array([[1.0], [-1.0]]), np.zeros(2))
>>> m.predict(np.array([[2.0], [2.0]]), groups=np.array(["b", "a"])).tolist()
[-2.0, 2.0]
>>> m.predict(np.array([[2.0]]), groups=np.array(["c"]))
Traceback (most recent call last):
...
shardlearn.core.errors.DataError: 1 row(s) of groups never seen in training, e.g. 'c'; fit with fallback= (or --fallback pooled) to answer them
"""
from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.utils.metaestimators import available_if

from shardlearn.core import modelfile
from shardlearn.core.errors import DataError, ModelFileError


class GroupedModel:
    def __init__(self, kind: str, hyper: dict, groups, coef, intercept, single=None, classes=None, fallback=None):
        self.kind, self.hyper = kind, dict(hyper)
        self.groups_, self.coef_, self.intercept_ = np.asarray(groups), np.asarray(coef), np.asarray(intercept)
        self.single_ = np.full(self.groups_.size, -1, np.int8) if single is None else np.asarray(single, np.int8)
        self.classes_ = None if classes is None else np.asarray(classes)
        self.fallback_, self.n_features_in_ = fallback, int(self.coef_.shape[1])

    def __repr__(self):
        return f"GroupedModel({self.kind}, {self.groups_.size} groups, {self.n_features_in_} features)"

    def _route(self, X, groups):
        if groups is None:
            raise DataError("predict needs groups=: each row's group (the model holds one model per group)")
        groups = np.asarray(groups)
        if groups.shape != (X.shape[0],):
            raise DataError(f"groups has shape {groups.shape}; expected ({X.shape[0]},), one group per row of X")
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features; the model was fitted on {self.n_features_in_}")
        if self.groups_.dtype.kind in "US" and groups.dtype.kind not in "US":
            groups = groups.astype(str)
        pos = np.searchsorted(self.groups_, groups).clip(0, max(self.groups_.size - 1, 0))
        known = self.groups_[pos] == groups if self.groups_.size else np.zeros(groups.size, bool)
        if not known.all() and self.fallback_ is None:
            raise DataError(f"{int((~known).sum())} row(s) of groups never seen in training, e.g. "
                            f"{groups[~known][0].item()!r}; fit with fallback= (or --fallback pooled) to answer them")
        return pos, known

    def decision_function(self, X, groups=None) -> np.ndarray:
        X = sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        pos, known = self._route(X, groups)
        z = np.empty(X.shape[0])
        k, p = np.flatnonzero(known), pos[known]
        Xk = X[k]
        dots = np.asarray(Xk.multiply(self.coef_[p]).sum(axis=1)).ravel() if sp.issparse(X) \
            else np.einsum("ij,ij->i", Xk, self.coef_[p])
        z[k] = dots + self.intercept_[p]
        one = self.single_[p]
        z[k[one >= 0]] = np.where(one[one >= 0] == 1, np.inf, -np.inf)
        if not known.all():
            fb = self.fallback_
            z[~known] = np.ravel((fb.decision_function if self.classes_ is not None else fb.predict)(X[~known]))
        return z

    def predict(self, X, groups=None) -> np.ndarray:
        z = self.decision_function(X, groups)
        return z if self.classes_ is None else self.classes_[(z > 0).astype(int)]

    @available_if(lambda self: self.kind == "LogisticRegression")
    def predict_proba(self, X, groups=None) -> np.ndarray:
        p = expit(self.decision_function(X, groups))
        return np.column_stack([1.0 - p, p])

    def __sklearn_tags__(self):  # what scikit-learn's is_classifier (and so the evaluation) reads
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        classifier = self.classes_ is not None
        return Tags(estimator_type="classifier" if classifier else "regressor", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags() if classifier else None,
                    regressor_tags=None if classifier else RegressorTags())

    # --- model files ----------------------------------------------------------
    def save(self, directory: str) -> None:
        arrays = {"groups": self.groups_.astype(str) if self.groups_.dtype == object else self.groups_,
                  "coef": self.coef_, "intercept": self.intercept_, "single": self.single_}
        if self.classes_ is not None:
            arrays["classes"] = self.classes_
        modelfile.write(directory, {"kind": "GroupedModel", "estimator": self.kind, "hyper_parameters": self.hyper,
                                    "n_features_in": self.n_features_in_, "fallback": self.fallback_ is not None},
                        arrays)
        if self.fallback_ is not None:
            self.fallback_.save(os.path.join(directory, "fallback"))

    @classmethod
    def from_files(cls, directory: str, meta: dict, arrays: dict, fallback=None):
        """The model of ``directory``; ``fallback``: its ``fallback/`` model, loaded by ``shardlearn.load``."""
        try:
            m = cls(meta["estimator"], meta["hyper_parameters"], arrays["groups"], arrays["coef"], arrays["intercept"],
                    arrays["single"], arrays.get("classes"), fallback)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{directory}: model.json or params.npz lacks a field or has a wrong one ({e})") \
                from None
        if m.coef_.shape != (m.groups_.size, int(meta["n_features_in"])) or m.intercept_.shape != (m.groups_.size,):
            raise ModelFileError(f"{directory}: the per-group weights do not match {m.groups_.size} groups")
        return m
