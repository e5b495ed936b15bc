"""What the runtime must know of each strategy (``strategy=``): how it optimises and where it
runs. The one table the CLI's choices, the configuration's validation and the dispatch read;
and how often the stochastic strategies exchange by default (``sync_batches`` and the
constants before it, which ``TrainConfig.step_rows`` and ``average_rows`` apply).

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
    streams: bool = False  # can train on a shard streamed from its file (``stream=True``, out of core)


PER_EXAMPLE_RULES = ("normalized", "adagrad", "ftrl", "sgd")  # what the compiled kernel runs (kernels/sgd.py)

# the one table the CLI's choices, validation and dispatch all read
PLANS = {p.name: p for p in (
    Plan("gd", stochastic=False, streams=True),
    Plan("lbfgs", stochastic=False, streams=True),
    Plan("bsp", stochastic=True, takes_servers=True, streams=True),
    Plan("local_sgd", stochastic=True, streams=True),
    Plan("average", stochastic=False),
    # a softmax over the parameter server (ssp, asp, bsp with servers) or in Hogwild's shared state: per example only
    Plan("ssp", stochastic=True, needs_sgd=True, group_only=True, parameter_server=True, takes_servers=True,
         streams=True),
    Plan("asp", stochastic=True, needs_sgd=True, group_only=True, parameter_server=True, takes_servers=True,
         streams=True),
    Plan("hogwild", stochastic=True, needs_sgd=True, group_only=True, streams=True),
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


STEPS_PER_EPOCH, MAX_SYNC_EVERY = 128, 32  # per-example asp/ssp exchanges an epoch by default (sync_batches)
MANY_SYNC_EVERY = 4  # ... at most this many batches (over K - 1) a step on K > 2 workers (``TrainConfig.step_rows``)
# per-example local_sgd averages every LOCAL_SGD_SYNC_EVERY batches (16,384 rows a worker at the default
# batch_size): once an epoch let kddcup99's sorted, contiguous shards drift apart (1.027 x L* after 2 epochs;
# 0.973 every 64 batches; a9a, w8a, D1, D2 unchanged: benchmarks/README.md); under a coarse codec (sign, a
# sparsifier) at least COARSE_AVERAGES times an epoch (see ``average_rows``)
LOCAL_SGD_SYNC_EVERY = 64
COARSE_AVERAGES = 64


def sync_batches(rows: int, batch_size: int, steps: int = STEPS_PER_EPOCH, cap: int = MAX_SYNC_EVERY) -> int:
    """Batches a step that leave a worker of ``rows`` rows ``steps`` exchanges an epoch, 1 to ``cap``.
    >>> sync_batches(1_000_000, 256), sync_batches(1_000_000, 256, steps=256, cap=16), sync_batches(40_000, 256)
    (30, 15, 1)"""
    return min(cap, max(1, int(rows) // (steps * batch_size)))
