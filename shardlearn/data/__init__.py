"""Data partitioning: sources (files, arrays, DataFrames), partitioners, shards,
batchers, feature hashing and input validation.

>>> import numpy as np
>>> import shardlearn.data as sd
>>> src = sd.open(np.arange(8.0).reshape(4, 2), y=[0, 1, 0, 1])
>>> sd.contiguous(src.n_rows, 2, 1).tolist()
[2, 3]
"""
from shardlearn.data.batch import batches
from shardlearn.data.encode import Encoder
from shardlearn.data.partition import PARTITIONERS, contiguous, hash_keys, random, stratified
from shardlearn.data.readers import read
from shardlearn.data.shard import Shard
from shardlearn.data.source import FORMATS, detect_format, open

__all__ = ["FORMATS", "PARTITIONERS", "Encoder", "Shard", "batches", "contiguous", "detect_format", "hash_keys",
           "open", "random", "read", "stratified"]
