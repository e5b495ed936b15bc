"""Models as pure functions; see ``shardlearn.core.protocols.Model``.

>>> get("logistic").task
'classification'
"""
from __future__ import annotations

from shardlearn.core.errors import ConfigError
from shardlearn.core.protocols import Model
from shardlearn.models import hinge, linear, logistic, softmax

MODELS: dict[str, Model] = {
    "linear": linear.MODEL,
    "logistic": logistic.MODEL,
    "softmax": softmax.MODEL,
    "hinge": hinge.HINGE,
    "squared_hinge": hinge.SQUARED_HINGE,
}


def get(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}") from None
