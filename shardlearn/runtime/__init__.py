"""Running a training job: in the caller's process for one worker, on a local worker
group or under torchrun for several. One job per module:

- ``config``: the job's settings (``TrainConfig``) and the one table of strategies (``PLANS``);
- ``train``: the driver, which only dispatches a fit (one process, or ``distributed``);
- ``loop``: one worker's training loop (preconditioner, checkpointer, strategy);
- ``job``: what a worker does in a distributed fit (open its shard, agree, call the loop);
- ``agree``: what workers agree on besides the model (row counts, label unions);
- ``ps_run``: roles, shards and model assembly of parameter-server and Hogwild fits;
- ``distributed``: the driver side of a local group fit (spill, run, restart);
- ``group``, ``worker``, ``launch``: the local worker group, a worker process, torchrun's environment;
- ``checkpoint``, ``spill``, ``progress``, ``memory``, ``result``: checkpoints, shared-memory
  data, step logs, peak RSS, the ``FitResult`` a fit returns.
"""
from shardlearn.runtime.config import TrainConfig
from shardlearn.runtime.loop import TrainState
from shardlearn.runtime.result import FitResult
from shardlearn.runtime.train import train

__all__ = ["FitResult", "TrainConfig", "TrainState", "train"]
