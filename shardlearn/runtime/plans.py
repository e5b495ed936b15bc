"""What the runtime must know of each strategy (``strategy=``): how it optimises and where it
runs. The one table the CLI's choices, the configuration's validation and the dispatch read.

>>> PLANS["asp"].parameter_server, PLANS["lbfgs"].stochastic
(True, False)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """What the runtime must know of a strategy: how it optimises and where it runs."""

    name: str
    stochastic: bool  # mini-batch steps with an optimizer (else full-batch gradients)
    needs_sgd: bool = False  # only with solver="sgd"
    group_only: bool = False  # runs on the worker group even with one worker
    parameter_server: bool = False  # always over the parameter server
    takes_servers: bool = False  # may run over dedicated server processes
    softmax: bool = True  # can hold one weight vector per class
    streams: bool = False  # can train on a shard streamed from its file (``stream=True``, out of core)


PER_EXAMPLE_RULES = ("normalized", "adagrad", "ftrl", "sgd")  # what the compiled kernel runs (kernels/sgd.py)

# the one table the CLI's choices, validation and dispatch all read
PLANS = {p.name: p for p in (
    Plan("gd", stochastic=False, streams=True),
    Plan("lbfgs", stochastic=False, streams=True),
    Plan("bsp", stochastic=True, takes_servers=True, streams=True),
    Plan("local_sgd", stochastic=True, streams=True),
    Plan("average", stochastic=False),
    Plan("ssp", stochastic=True, needs_sgd=True, group_only=True, parameter_server=True, takes_servers=True,
         softmax=False, streams=True),  # per example (so are hogwild and bsp over servers)
    Plan("asp", stochastic=True, needs_sgd=True, group_only=True, parameter_server=True, takes_servers=True,
         softmax=False, streams=True),
    Plan("hogwild", stochastic=True, needs_sgd=True, group_only=True, softmax=False, streams=True),
)}


def stream_refusal(cfg) -> str | None:
    """Why a job (``TrainConfig``) cannot stream its shard out of core, or None where it can: the
    plan must stream, and over the parameter server or Hogwild only per example (mini-batches
    over the shards agree on a preconditioner from the rows in memory; Hogwild's index them).

    >>> from shardlearn.runtime.config import TrainConfig
    >>> stream_refusal(TrainConfig(strategy="average")), stream_refusal(TrainConfig(strategy="asp", workers=2))
    ("stream=True (out of core) runs gd, lbfgs, bsp, local_sgd, ssp, asp and hogwild, not 'average'", None)
    """
    streams = [name for name, plan in PLANS.items() if plan.streams]
    if cfg.plan not in streams:
        return f"stream=True (out of core) runs {', '.join(streams[:-1])} and {streams[-1]}, not {cfg.plan!r}"
    if (cfg.uses_ps or cfg.plan == "hogwild") and not cfg.per_example:
        where = f"{cfg.plan} over the parameter server" if cfg.uses_ps else cfg.plan
        others = "/".join(r for r in PER_EXAMPLE_RULES if r != "normalized")
        return (f"stream=True (out of core) runs {where} per example (optimizer='normalized', or {others} "
                f"with batch_size=1), not mini-batches of {cfg.batch_size} with optimizer={cfg.optimizer!r}")
    return None
