"""Running a training job: one process for now (``workers=1``).

The distributed runtime (local worker processes, torchrun) plugs in here.
"""
from shardlearn.runtime.train import TrainConfig, TrainState, train

__all__ = ["TrainConfig", "TrainState", "train"]
