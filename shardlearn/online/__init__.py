"""Learning from a stream: online estimators over the per-example kernel and feature hashing."""

FORMATS = ("vw", "libsvm", "jsonl", "csv")  # what `shardlearn learn --format` reads (online/formats.py)
NEEDS_LABEL = ("jsonl", "csv")  # formats whose label is a named field
