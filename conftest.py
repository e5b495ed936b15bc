"""Doctest collection of ``shardlearn/``: a face whose optional engine is not installed
(``shardlearn/spark.py`` imports pyspark at module level, as pyspark.ml classes must) is
left out instead of failing the collection."""
import importlib.util

collect_ignore = [] if importlib.util.find_spec("pyspark") else ["shardlearn/spark.py"]
