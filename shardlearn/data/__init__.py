"""Reading data: whole-file readers for now, synthetic generators for benchmarks."""
from shardlearn.data.readers import FORMATS, detect_format, read

__all__ = ["FORMATS", "detect_format", "read"]
