"""shardlearn: distributed machine learning in Python.

>>> import shardlearn
>>> sorted(["LinearRegression", "LogisticRegression", "LinearSVC"]) == sorted(shardlearn.ESTIMATORS)
True
"""
from shardlearn.core.errors import ConfigError, DataError, ModelFileError, ShardlearnError
from shardlearn.multitask.grouped import GroupedModel
from shardlearn.multitask.groups import fit_per_group
from shardlearn.multitask.joint import MultiTaskLinearRegression, MultiTaskLogisticRegression
from shardlearn.online.estimators import OnlineLinearRegression, OnlineLogisticRegression
from shardlearn.sklearn import ESTIMATORS, LinearRegression, LinearSVC, LogisticRegression, load

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "DataError", "ESTIMATORS", "GroupedModel", "LinearRegression", "LinearSVC", "LogisticRegression",
    "ModelFileError", "MultiTaskLinearRegression", "MultiTaskLogisticRegression", "OnlineLinearRegression", "OnlineLogisticRegression", "ShardlearnError", "fit_per_group", "load", "__version__",
]
