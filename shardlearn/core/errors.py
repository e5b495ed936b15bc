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
    ValueError there too): its steps are too large for the features' scales."""


def rebuild(name: str, message: str) -> ShardlearnError | None:
    """The error a worker raised, rebuilt from its class name and message on the driver, so
    a user sees the same error whichever process found it (None: not one of ours).

    >>> rebuild("DataError", "d.csv: line 3: missing label")
    DataError('d.csv: line 3: missing label')
    """
    cls = {c.__name__: c for c in (DataError, ConfigError, ModelFileError, DivergedError)}.get(name)
    return None if cls is None else cls(message)
