"""Error types. Each carries a one-line message meant for the user.

>>> from shardlearn.core.errors import DataError
>>> str(DataError("data.csv: line 3: expected 4 columns, got 3"))
'data.csv: line 3: expected 4 columns, got 3'
"""


class ShardlearnError(Exception):
    """Base class of every error shardlearn raises on purpose."""


class DataError(ShardlearnError, ValueError):
    """Bad input data: names the file and line (or row and column) and what was expected."""


class ConfigError(ShardlearnError, ValueError):
    """A setting that is unknown, out of range, or not available yet."""


class ModelFileError(ShardlearnError, ValueError):
    """A model directory that is missing, truncated, tampered with, or of an unknown version."""


class DivergedError(ShardlearnError, ValueError):
    """A fit whose weights or loss overflowed to inf or NaN (scikit-learn's SGD raises a
    ValueError there too): its steps are too large for the features' scales. ``row``: where a
    learner found it, the row of the rows it was given (None: a fit's end); ``reason``: the
    message without the place, for a caller that names the place its own way (a stream's example)."""

    def __init__(self, message: str, row: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.row, self.reason = row, message if reason is None else reason


def overshoot(param: str, rule: str, rate: float) -> str:
    """What a divergence's message says of its cause and fix: the update rule (set by
    ``param``: an estimator's ``optimizer``, an online learner's ``rule``) and its rate.

    >>> overshoot("rule", "sgd", 0.5)
    "rule='sgd' at learning_rate=0.5 overshoots on these features' scales; the default rule 'normalized' is scale-free, or standardize the features or lower learning_rate"
    """
    fix = ("lower learning_rate" if rule == "normalized" else
           f"the default {param} 'normalized' is scale-free, or standardize the features or lower learning_rate")
    return f"{param}={rule!r} at learning_rate={rate:.4g} overshoots on these features' scales; {fix}"


def rebuild(name: str, message: str) -> ShardlearnError | None:
    """The error a worker raised, rebuilt from its class name and message on the driver, so
    a user sees the same error whichever process found it (None: not one of ours).

    >>> rebuild("DataError", "d.csv: line 3: missing label")
    DataError('d.csv: line 3: missing label')
    """
    cls = {c.__name__: c for c in (DataError, ConfigError, ModelFileError, DivergedError)}.get(name)
    return None if cls is None else cls(message)
