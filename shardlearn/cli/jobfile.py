"""Job files: ``shardlearn train --config job.toml``. The file's top-level keys are
``train``'s option names with underscores (``data``, ``out``, ``alpha``, ``max_iter``,
``workers``, ``categorical`` as a list or a comma-separated string, ...) plus ``launcher``;
flags given on the command line override the file. An unknown key, a value of the wrong
type or outside an option's choices is a one-line error naming the file and the key.

``launcher``: ``"local"`` (the default: this machine's worker processes), ``"torchrun"``
(the file is run on every machine by ``torchrun ... -m shardlearn train --config job.toml``;
started any other way, it says so), ``"ray"`` or ``"dask"`` (``cli/engines.py``: the ranks
run on that engine's cluster). Spark jobs use the ``pyspark.ml`` estimators
(``shardlearn.spark``) inside a Spark application instead.

>>> import argparse, os, tempfile
>>> p = argparse.ArgumentParser(); _ = p.add_argument("data", nargs="?"); _ = p.add_argument("--alpha", type=float)
>>> path = os.path.join(tempfile.mkdtemp(), "job.toml")
>>> _ = open(path, "w").write('data = "train.csv"\\nalpha = 1e-5\\n')
>>> defaults(path, p)
{'data': 'train.csv', 'alpha': 1e-05}
>>> _ = open(path, "w").write('alpah = 1e-5\\n')
>>> defaults(path, p)
Traceback (most recent call last):
...
shardlearn.core.errors.ConfigError: job.toml: unknown key 'alpah' (did you mean 'alpha'?)
"""
from __future__ import annotations

import argparse
import difflib
import os
import tomllib

from shardlearn.core.errors import ConfigError

NOT_IN_FILES = {"config", "help", "debug", "command"}


def defaults(path: str, parser: argparse.ArgumentParser) -> dict:
    """The options of job file ``path`` as ``parser``'s destinations and typed values."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such job file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    actions = {a.dest: a for a in parser._actions if a.dest not in NOT_IN_FILES and a.dest != argparse.SUPPRESS}
    out = {}
    for key, value in table.items():
        action = actions.get(key)
        if action is None:
            close = difflib.get_close_matches(key, list(actions), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (keys: {', '.join(sorted(actions))})"
            raise ConfigError(f"{name}: unknown key {key!r}{hint}")
        out[key] = _typed(name, key, value, action)
    return out


def _typed(name: str, key: str, value, action):
    """``value`` as the option's own parsing would give it, or a ConfigError naming the key."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: {key} must be true or false, got {value!r}")
        return value  # the key is the destination: error_feedback = false is --no-error-feedback
    if isinstance(value, list) and action.type is None:  # a comma-separated option given as a list
        value = ",".join(str(v) for v in value)
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise ConfigError(f"{name}: {key} must be {_kind(action)}, got {value!r}")
    if action.type in (int, float) and not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: {key} must be {_kind(action)}, got {value!r}")
    if action.type is int and isinstance(value, float):
        raise ConfigError(f"{name}: {key} must be a whole number, got {value!r}")
    if action.type is None and not isinstance(value, str):
        raise ConfigError(f"{name}: {key} must be text, got {value!r}")
    try:
        typed = action.type(str(value)) if action.type is not None else value
    except (ValueError, argparse.ArgumentTypeError) as e:
        raise ConfigError(f"{name}: {key}: {e}") from None
    if action.choices is not None and typed not in action.choices:
        raise ConfigError(f"{name}: {key} = {value!r} is not one of {', '.join(map(repr, action.choices))}")
    return typed


def _kind(action) -> str:
    return {int: "a whole number", float: "a number"}.get(action.type, "a number or text")
