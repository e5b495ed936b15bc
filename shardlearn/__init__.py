"""shardlearn: distributed machine learning in Python.

>>> import shardlearn
>>> sorted(["LinearRegression", "LogisticRegression", "LinearSVC"]) == sorted(shardlearn.ESTIMATORS)
True
"""
from shardlearn.core.errors import ConfigError, DataError, ModelFileError, ShardlearnError
from shardlearn.multitask.joint import MultiTaskLinearRegression, MultiTaskLogisticRegression
from shardlearn.online.estimators import OnlineLinearRegression, OnlineLogisticRegression
from shardlearn.sklearn import ESTIMATORS, LinearRegression, LinearSVC, LogisticRegression, load

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "DataError", "ESTIMATORS", "LinearRegression", "LinearSVC", "LogisticRegression",
    "ModelFileError", "MultiTaskLinearRegression", "MultiTaskLogisticRegression", "OnlineLinearRegression", "OnlineLogisticRegression", "ShardlearnError", "load", "__version__",
]
