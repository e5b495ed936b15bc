"""shardlearn: distributed machine learning in Python.

The public names below are imported on first use (PEP 562), so a worker process, the CLI or
``import shardlearn.data`` pays only for what it touches: scikit-learn and torch alone take
~3 s to import, which every local worker, torchrun node and CLI call paid before.

>>> import shardlearn
>>> sorted(["LinearRegression", "LogisticRegression", "LinearSVC"]) == sorted(shardlearn.ESTIMATORS)
True
>>> shardlearn.LogisticRegression.__module__
'shardlearn.sklearn'
"""
from importlib import import_module

from shardlearn.core.errors import ConfigError, DataError, DivergedError, ModelFileError, ShardlearnError

__version__ = "0.1.0"

_LAZY = {
    "GroupedModel": "shardlearn.multitask.grouped",
    "fit_per_group": "shardlearn.multitask.groups",
    "MultiTaskLinearRegression": "shardlearn.multitask.joint",
    "MultiTaskLogisticRegression": "shardlearn.multitask.joint",
    "OnlineLinearRegression": "shardlearn.online.estimators",
    "OnlineLogisticRegression": "shardlearn.online.estimators",
    "ESTIMATORS": "shardlearn.sklearn",
    "LinearRegression": "shardlearn.sklearn",
    "LinearSVC": "shardlearn.sklearn",
    "LogisticRegression": "shardlearn.sklearn",
    "load": "shardlearn.sklearn",
}

__all__ = ["ConfigError", "DataError", "DivergedError", "ModelFileError", "ShardlearnError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'shardlearn' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
