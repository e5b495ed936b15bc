"""Small shared pieces: error types, parameter-tree helpers, protocols, model files."""
from shardlearn.core.errors import ConfigError, DataError, ModelFileError, ShardlearnError

__all__ = ["ConfigError", "DataError", "ModelFileError", "ShardlearnError"]
