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
