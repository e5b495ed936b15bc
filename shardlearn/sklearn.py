"""scikit-learn estimators over shardlearn's models, solvers and runtime.

``__init__`` only stores hyper-parameters; ``fit`` starts over; ``partial_fit``
(``solver="sgd"``) continues; learned attributes end in ``_``. The objective is
``mean(loss) + alpha * ((1 - l1_ratio)/2 ||w||^2 + l1_ratio ||w||_1)`` (weighted
mean with ``sample_weight``), so ``alpha = 1 / (C * n_samples)`` matches
scikit-learn's ``LogisticRegression(C=C)``.

>>> import numpy as np
>>> from shardlearn import LogisticRegression
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
>>> clf = LogisticRegression(alpha=1e-3).fit(X, y)
>>> clf.predict([[0.2], [2.8]]).tolist(), clf.coef_.shape
([0, 1], (1, 1))
"""
from __future__ import annotations

import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from shardlearn import models
from shardlearn.core import modelfile
from shardlearn.core.errors import ConfigError, ModelFileError
from shardlearn.models import penalty
from shardlearn.runtime import TrainConfig, launch, train

_DTYPES = [np.float64, np.float32]


def _is_sgd(est) -> bool:
    return est.train_config().solver == "sgd"  # given, or implied by a stochastic strategy


class _Linear(BaseEstimator):
    """What the linear estimators share: validation, training, the model file."""

    def train_config(self, data_bytes: int = 0) -> TrainConfig:
        """The ``TrainConfig`` these hyper-parameters ask for (what ``fit`` runs); ``workers=None``
        chooses by the data's size (``launch.auto_workers``: one worker per 128 MB, at most one
        per core), the same rule as the CLI's."""
        workers = self.workers if self.workers is not None else launch.auto_workers(data_bytes)[0]
        return TrainConfig(
            solver=self.solver, alpha=float(self.alpha), l1_ratio=float(self.l1_ratio),
            fit_intercept=bool(self.fit_intercept), optimizer=self.optimizer, learning_rate=self.learning_rate,
            schedule=self.schedule, batch_size=self.batch_size, max_iter=self.max_iter, tol=self.tol,
            shuffle=self.shuffle, random_state=self.random_state, workers=workers, strategy=self.strategy,
            sync_every=self.sync_every, partition=self.partition, checkpoint_dir=self.checkpoint_dir,
            checkpoint_every=self.checkpoint_every, max_restarts=self.max_restarts, staleness=self.staleness,
            servers=self.servers, slicer=self.slicer, device=self.device, compression=self.compression,
            error_feedback=bool(self.error_feedback),
        )

    # --- subclass hooks -------------------------------------------------
    def _encode_y(self, y, sample_weight, classes=None):  # -> (codes, model)
        raise NotImplementedError

    def _set_params(self, params):
        raise NotImplementedError

    def _get_params_tree(self):
        raise NotImplementedError

    # --- fitting ---------------------------------------------------------
    def _validate(self, X, y, reset):
        return validate_data(self, X, y, accept_sparse="csr", dtype=_DTYPES, reset=reset,
                             y_numeric=not isinstance(self, ClassifierMixin), multi_output=False)

    def fit(self, X, y=None, sample_weight=None, callback=None):
        """Fit from scratch on arrays, or on a ``shardlearn.data`` source or shard (``y=None``).
        ``callback(params, iteration)`` sees every iterate."""
        X, y = _from_source(X, y)
        cfg = self.train_config(_nbytes(X))
        cfg.validate()
        X, y = self._validate(X, y, reset=True)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        codes, model, n_out = self._encode_y(y, sample_weight)
        result = train(model, X, codes, sample_weight, cfg, n_out, callback=callback)
        self._set_params(result.params)
        self.n_iter_ = int(result.n_iter)
        self.fit_result_ = result
        self._state = result.state if cfg.solver == "sgd" and cfg.workers == 1 else None
        return self

    def adopt(self, result):
        """Become the model a ``FitResult`` of a file fit holds (trained by distributed workers,
        each on its shard): parameters, classes and width from ``result.info``."""
        if result.info.get("classes") is not None:
            self.classes_ = np.asarray(result.info["classes"])
        self._set_params(result.params)
        self.n_features_in_ = int(result.info["n_features"])
        self.n_iter_ = int(result.n_iter)
        self.fit_result_ = result
        self._state = None
        return self

    @available_if(_is_sgd)
    def partial_fit(self, X, y=None, classes=None, sample_weight=None):
        """One more epoch of SGD over ``(X, y)`` (or a source or shard), continuing from the current state."""
        X, y = _from_source(X, y)
        cfg = self.train_config()
        cfg.validate()
        if cfg.workers != 1:
            raise ConfigError("partial_fit runs in one process; use workers=1 for partial_fit")
        first = getattr(self, "_state", None) is None
        if first and isinstance(self, ClassifierMixin) and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = self._validate(X, y, reset=first)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        codes, model, n_out = self._encode_y(y, sample_weight, classes=classes, partial=not first)
        result = train(model, X, codes, sample_weight, cfg, n_out, state=None if first else self._state, epochs=1)
        self._set_params(result.params)
        self._state = result.state
        self.fit_result_ = result
        self.n_iter_ = int(result.state.epoch)
        return self

    def _model_for_predict(self):
        raise NotImplementedError

    def _check_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", dtype=_DTYPES, reset=False)

    def objective(self, X, y, sample_weight=None) -> float:
        """The training objective (mean loss + penalty) of the fitted model on ``(X, y)``."""
        check_is_fitted(self)
        X, y = self._validate(X, y, reset=False)
        codes, model = self._encode_known(y)
        return penalty.objective(model, self._get_params_tree(), X, codes, sample_weight,
                                 float(self.alpha), float(self.l1_ratio))

    # --- model files -----------------------------------------------------
    def save(self, directory: str) -> None:
        """Write the fitted model to ``directory`` (``params.npz`` + ``model.json``)."""
        check_is_fitted(self)
        arrays = {"coef": self.coef_, "intercept": np.asarray(self.intercept_)}
        meta = {
            "kind": type(self).__name__,
            "hyper_parameters": modelfile.jsonable_params(self.get_params()),
            "n_features_in": int(self.n_features_in_),
            "n_iter": int(self.n_iter_),
        }
        if hasattr(self, "classes_"):
            arrays["classes"] = _plain_array(self.classes_)
            meta["classes"] = [_plain_scalar(c) for c in self.classes_]
        if hasattr(self, "feature_names_in_"):
            meta["feature_names_in"] = [str(c) for c in self.feature_names_in_]
        modelfile.write(directory, meta, arrays)

    def to_onnx(self, path: str, encoder=None) -> None:
        """Write the model as an ONNX file (``shardlearn.onnx_export``); ``encoder``: the
        ``shardlearn.data.Encoder`` of table training rows, whose columns become the inputs."""
        from shardlearn.onnx_export import to_onnx

        check_is_fitted(self)
        to_onnx(self, path, encoder)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _from_source(X, y):
    """A ``shardlearn.data`` source or shard (anything with ``read()`` and ``n_features``) gives its rows."""
    if y is None and hasattr(X, "read") and hasattr(X, "n_features"):
        return X.read()
    return X, y


def _nbytes(X) -> int:
    """The size of the training data (what ``workers=None`` chooses by)."""
    if hasattr(X, "data") and hasattr(X, "indices"):  # scipy.sparse
        return int(X.data.nbytes + X.indices.nbytes)
    return int(getattr(X, "nbytes", 0) or np.asarray(X).nbytes)


def _store(est, values: dict) -> None:
    """``__init__`` stores each hyper-parameter exactly as given (the scikit-learn contract)."""
    for k, v in values.items():
        if k not in ("self", "__class__"):
            setattr(est, k, v)


def _plain_scalar(v):
    return v.item() if isinstance(v, np.generic) else v


def _plain_array(a):
    a = np.asarray(a)
    return a.astype(str) if a.dtype == object else a


class LinearRegression(RegressorMixin, _Linear):
    """Least squares with optional elastic-net penalty (ridge with ``alpha > 0``).

    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0]]); y = np.array([1.0, 3.0, 5.0])
    >>> r = LinearRegression(tol=1e-10).fit(X, y)
    >>> round(float(r.coef_[0]), 6), round(float(r.intercept_), 6)
    (2.0, 1.0)
    """

    def __init__(self, *, alpha=0.0, l1_ratio=0.0, fit_intercept=True, solver=None, optimizer=None,
                 learning_rate=None, schedule=None, batch_size=256, max_iter=None, tol=1e-6, shuffle=True,
                 random_state=None, workers=None, strategy=None, sync_every=None, partition=None,
                 checkpoint_dir=None, checkpoint_every=None, max_restarts=0, staleness=4, servers=0,
                 slicer="range", device=None, compression="none", error_feedback=True):
        _store(self, locals())

    def _encode_y(self, y, sample_weight, classes=None, partial=False):
        return np.asarray(y, dtype=np.float64), models.get("linear"), 1

    def _encode_known(self, y):
        return np.asarray(y, dtype=np.float64), models.get("linear")

    def _set_params(self, params):
        self.coef_ = params["w"].copy()
        self.intercept_ = float(params["b"])

    def _get_params_tree(self):
        return {"w": np.asarray(self.coef_, dtype=np.float64), "b": np.asarray(self.intercept_, dtype=np.float64)}

    def predict(self, X):
        X = self._check_X(X)
        return models.get("linear").predict(self._get_params_tree(), X)


class _Classifier(ClassifierMixin, _Linear):
    _binary_model = "logistic"
    _multi_model = "softmax"

    def _encode_y(self, y, sample_weight, classes=None, partial=False):
        check_classification_targets(y)
        if not partial:
            self.classes_ = np.unique(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; the data has "
                                 f"one class: {_plain_scalar(self.classes_[0])!r}")
        codes, model = self._encode_known(y)
        positive = sample_weight > 0
        if (not partial and classes is None and not positive.all()
                and np.count_nonzero(np.bincount(codes[positive], minlength=len(self.classes_))) < 2):
            raise ValueError("only one class has positive sample weight; at least 2 classes are needed")
        return codes, model, model.n_outputs(len(self.classes_))

    def _model(self):
        return models.get(self._binary_model if len(self.classes_) == 2 else self._multi_model)

    def _encode_known(self, y):
        codes = np.minimum(np.searchsorted(self.classes_, y), len(self.classes_) - 1)
        unknown = self.classes_[codes] != y
        if unknown.any():
            raise ValueError(f"labels {np.unique(y[unknown])[:5].tolist()} are not among the model's classes "
                             f"{self.classes_.tolist()}")
        return codes, self._model()

    def _set_params(self, params):
        w = params["w"]
        self.coef_ = (w[None, :] if w.ndim == 1 else w.T).copy()
        self.intercept_ = np.atleast_1d(params["b"]).astype(np.float64).copy()

    def _get_params_tree(self):
        if self.coef_.shape[0] == 1:
            return {"w": self.coef_[0].astype(np.float64), "b": np.asarray(self.intercept_[0], dtype=np.float64)}
        return {"w": self.coef_.T.astype(np.float64), "b": self.intercept_.astype(np.float64)}

    def decision_function(self, X):
        X = self._check_X(X)
        return self._model().decision_function(self._get_params_tree(), X)

    def predict(self, X):
        z = self.decision_function(X)
        codes = (z > 0).astype(np.intp) if z.ndim == 1 else np.argmax(z, axis=1)
        return self.classes_[codes]


class LogisticRegression(_Classifier):
    """Logistic regression: binary (``logistic``) or multinomial (``softmax``).

    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array(["a", "a", "b", "b"])
    >>> clf = LogisticRegression().fit(X, y)
    >>> clf.predict_proba([[3.0]]).round(2).tolist()[0][1] > 0.9
    True
    """

    def __init__(self, *, alpha=1e-4, l1_ratio=0.0, fit_intercept=True, solver=None, optimizer=None,
                 learning_rate=None, schedule=None, batch_size=256, max_iter=None, tol=1e-6, shuffle=True,
                 random_state=None, workers=None, strategy=None, sync_every=None, partition=None,
                 checkpoint_dir=None, checkpoint_every=None, max_restarts=0, staleness=4, servers=0,
                 slicer="range", device=None, compression="none", error_feedback=True):
        _store(self, locals())

    def predict_proba(self, X):
        X = self._check_X(X)
        model = self._model()
        p = model.predict_proba(self._get_params_tree(), X)
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class LinearSVC(_Classifier):
    """Linear SVM; ``loss="squared_hinge"`` (default, as LIBLINEAR) or ``"hinge"``;
    more than two classes one-vs-rest.

    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> LinearSVC().fit(X, y).predict([[0.0], [3.0]]).tolist()
    [0, 1]
    """

    def __init__(self, *, loss="squared_hinge", alpha=1e-4, l1_ratio=0.0, fit_intercept=True, solver=None,
                 optimizer=None, learning_rate=None, schedule=None, batch_size=256, max_iter=None,
                 tol=1e-6, shuffle=True, random_state=None, workers=None, strategy=None, sync_every=None, partition=None,
                 checkpoint_dir=None, checkpoint_every=None, max_restarts=0, staleness=4, servers=0,
                 slicer="range", device=None, compression="none", error_feedback=True):
        _store(self, locals())

    def _model(self):
        if self.loss not in ("hinge", "squared_hinge"):
            raise ValueError(f"loss={self.loss!r} is not known; expected 'hinge' or 'squared_hinge'")
        return models.get(self.loss)


ESTIMATORS = {c.__name__: c for c in (LinearRegression, LogisticRegression, LinearSVC)}


def load(directory: str):
    """Load a model saved with ``save``; returns the fitted estimator. Never unpickles."""
    from shardlearn.multitask.grouped import GroupedModel
    from shardlearn.multitask.joint import MULTITASK_ESTIMATORS
    from shardlearn.online.estimators import ONLINE_ESTIMATORS

    meta, arrays = modelfile.read(directory)
    kind = meta.get("kind")
    own = dict(ONLINE_ESTIMATORS, **MULTITASK_ESTIMATORS, GroupedModel=GroupedModel)  # each reads its own files
    if kind == "GroupedModel" and meta.get("fallback"):  # the model for unknown groups, in its own folder
        return GroupedModel.from_files(directory, meta, arrays, fallback=load(os.path.join(directory, "fallback")))
    if kind in own:
        return own[kind].from_files(directory, meta, arrays)
    if kind not in ESTIMATORS:
        known = ", ".join(list(ESTIMATORS) + list(own))
        raise ModelFileError(f"{directory}: unknown model kind {kind!r}; expected one of {known}")
    cls = ESTIMATORS[kind]
    try:
        est = cls(**{k: v for k, v in meta["hyper_parameters"].items() if k in cls().get_params()})
        est.coef_ = arrays["coef"]
        intercept = arrays["intercept"]
        est.intercept_ = float(intercept) if kind == "LinearRegression" else intercept
        est.n_features_in_ = int(meta["n_features_in"])
        est.n_iter_ = int(meta["n_iter"])
        if "classes" in arrays:
            est.classes_ = arrays["classes"]
        if "feature_names_in" in meta:
            est.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{directory}: model.json or params.npz lacks a field or has a wrong one ({e})") from None
    width = est.coef_.shape[-1]
    if width != est.n_features_in_:
        raise ModelFileError(f"{directory}: coef has {width} features but model.json says {est.n_features_in_}")
    est._state = None
    return est
