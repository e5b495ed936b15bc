"""A training job's configuration, and the one table of strategies that the CLI's
choices, validation and dispatch all read.

>>> TrainConfig(solver="sgd").plan, TrainConfig(solver="sgd").stochastic
('bsp', True)
>>> c = TrainConfig(strategy="asp", workers=2); c.solver, c.optimizer, c.max_iter  # None: chosen by the job
('sgd', 'normalized', 5)
>>> c = TrainConfig(solver="sgd"); c.optimizer, c.max_iter
('normalized', 5)
>>> TrainConfig(strategy="hogwild", workers=2).optimizer  # Hogwild: the per-example kernel on shared memory
'normalized'
>>> TrainConfig(solver="sgd", strategy="asp", workers=2).uses_ps
True
>>> TrainConfig(strategy="sssp").validate()
Traceback (most recent call last):
...
shardlearn.core.errors.ConfigError: strategy='sssp' is not known; expected one of gd, lbfgs, bsp, local_sgd, average, ssp, asp, hogwild
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shardlearn import optim
from shardlearn.comm import codecs
from shardlearn.core.errors import ConfigError
from shardlearn.data.partition import PARTITIONERS
from shardlearn.runtime import codec_rules
from shardlearn.runtime.checkpoint import parse_every
from shardlearn.runtime.plans import (  # noqa: F401 (PER_EXAMPLE_RULES, sync_batches: re-exported)
    COARSE_AVERAGES, LOCAL_SGD_SYNC_EVERY, MANY_SYNC_EVERY, PER_EXAMPLE_RULES, PLANS, sync_batches, stream_refusal)

DEFAULT_LEARNING_RATE = {"sgd": 0.05, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.1, "adam": 0.01, "ftrl": 0.5,
                         "normalized": 0.75}
# The normalized rule's default rate under the linear schedule (its default there): the rate falls from it to 0 over
# the fit, so it starts higher than a constant rate can stay (benchmarks/README.md, "The linear schedule").
ANNEALED_NORMALIZED_RATE = 3.0
ANNEALED_RULES = ("normalized", "adagrad", "sgd")  # the per-example rules schedule="linear" anneals (not FTRL)
# the rules whose steps follow from (sums of) squared gradients: under squared loss, in units of the labels' scale
ADAPTIVE_RULES = ("normalized", "adagrad", "ftrl", "adam")
SOLVER_STRATEGY = {"lbfgs": "lbfgs", "gd": "gd", "sgd": "bsp"}


STOCHASTIC_EPOCHS = 5  # solver="sgd"'s default max_iter: epochs (full-batch solvers: 300 iterations)


@dataclass(frozen=True)
class TrainConfig:
    solver: str | None = None  # None: "sgd" for a stochastic strategy, else "lbfgs"
    alpha: float = 0.0
    l1_ratio: float = 0.0
    fit_intercept: bool = True
    optimizer: str | None = None  # None: "normalized" (per example) with solver="sgd", else "adagrad"
    learning_rate: float | None = None
    schedule: str | None = None  # None: "linear" for the normalized rule, else "constant"
    batch_size: int = 256
    max_iter: int | None = None  # None: 300 iterations (lbfgs, gd) or STOCHASTIC_EPOCHS epochs (sgd)
    tol: float | None = 1e-6
    shuffle: bool = True
    random_state: int | None = None
    workers: int = 1
    strategy: str | None = None
    sync_every: int | None = None
    partition: str | None = None  # None: "contiguous" for gd/lbfgs, else "random" (see __post_init__)
    checkpoint_dir: str | None = None
    checkpoint_every: int | str | None = None  # steps (100) or a time ("30s"); None: only at the end
    resume: bool = False  # continue from the newest valid checkpoint in checkpoint_dir
    max_restarts: int = 0  # local group: restart the workers this many times after a failure
    staleness: int = 4  # ssp: a worker may be this many clocks ahead of the slowest
    servers: int = 0  # dedicated parameter-server processes (0: every worker hosts one shard)
    slicer: str = "range"  # parameter-server key -> shard: "range" or "hash"
    ps_dtype: str = "float64"  # the shards' parameter type ("float32" halves their memory)
    precondition: bool = True  # solve in standardised coordinates (the parameter-server shards too)
    stream: bool = False  # file fits: read the shard again at every pass instead of holding it (out of core)
    device: str | None = None  # full-batch products on a torch device: "cpu", "cuda[:N]"; None: CUDA if present
    compression: str = "none"  # codec of what the workers exchange (comm.codecs): "int8", "topk:0.1+int8", ...
    error_feedback: bool = True  # keep what a lossy codec left out and send it later
    label_scale: float | None = None  # the labels' RMS under squared loss, set by the fit (runtime/label_scale.py)

    def __post_init__(self):
        """The defaults that depend on the job (``None``): a stochastic strategy implies
        ``solver="sgd"``; every stochastic strategy learns per example with the normalized rule
        (``optimizer="normalized"``); ``sgd`` runs a few epochs, the full-batch solvers 300
        iterations (each stops earlier when it stops improving by ``tol``). Rows are split over
        workers ``contiguous`` for ``gd`` and ``lbfgs`` (their gradient sums every row whatever
        the split, and a contiguous shard stays a view of the shared map) and ``random`` (seeded)
        for every other strategy, whose model depends on what each worker saw: over a file
        sorted by label (kddcup99's, by attack type), contiguous shards put ``ssp`` x2 at
        0.96-1.86 x L* and ``asp`` at 1.00-1.12 in three seeds each, random ones at 0.92-0.96."""
        if self.solver is None:
            stochastic = self.strategy in PLANS and PLANS[self.strategy].stochastic
            object.__setattr__(self, "solver", "sgd" if stochastic else "lbfgs")
        if self.optimizer is None:
            object.__setattr__(self, "optimizer", "normalized" if self.solver == "sgd" else "adagrad")
        if self.schedule is None:
            object.__setattr__(self, "schedule", self._default_schedule())
        if self.max_iter is None:
            object.__setattr__(self, "max_iter", STOCHASTIC_EPOCHS if self.solver == "sgd" else 300)
        if self.partition is None:
            plan = self.strategy if self.strategy is not None else SOLVER_STRATEGY.get(self.solver)
            object.__setattr__(self, "partition", "contiguous" if plan in ("gd", "lbfgs") else "random")

    def _default_schedule(self) -> str:
        """``linear`` for the normalized rule (its rate falls to 0 over the fit), ``constant``
        for every other rule and under ``int8``, whose rounding of the schedule's large first
        steps cost 0.5-0.6% of held-out loss on a9a (0.03% at the constant rate;
        ``benchmarks/README.md``, "The linear schedule"). ``hogwild`` anneals too: its
        constant default ended lower held out on kddcup99 only by stopping further from the
        optimum (README).

        >>> [TrainConfig(strategy=s, compression=c).schedule for s, c in
        ...  [("bsp", None), ("bsp", "int8"), ("hogwild", None), ("lbfgs", None)]]
        ['linear', 'constant', 'linear', 'constant']
        """
        if self.optimizer != "normalized":
            return "constant"
        try:
            return "constant" if self.codec is not None and self.codec.quantizer == "int8" else "linear"
        except ConfigError:  # said by validate
            return "linear"

    @property
    def plan(self) -> str:
        """The strategy that runs: given, or the solver's (sgd -> bsp)."""
        return self.strategy if self.strategy is not None else SOLVER_STRATEGY[self.solver]

    @property
    def stochastic(self) -> bool:
        return PLANS[self.plan].stochastic

    @property
    def uses_ps(self) -> bool:
        """Over the parameter server: ssp, asp, or bsp with dedicated servers."""
        p = PLANS[self.plan]
        return p.parameter_server or (p.takes_servers and self.servers > 0)

    @property
    def per_example(self) -> bool:
        """One kernel update per row (``kernels.sgd``) under every stochastic strategy: the
        normalized rule always, the other kernel rules with ``batch_size=1`` (else mini-batches)."""
        return (self.solver == "sgd" and self.stochastic
                and self.optimizer in PER_EXAMPLE_RULES and (self.optimizer == "normalized" or self.batch_size == 1))

    @property
    def on_group(self) -> bool:
        """Runs on a worker group (else in the caller's process)."""
        return self.workers > 1 or self.max_restarts > 0 or self.servers > 0 or PLANS[self.plan].group_only

    @property
    def processes(self) -> int:
        """Processes of the local group: the workers, plus dedicated servers."""
        return self.workers + self.servers

    def validate(self) -> None:
        if self.solver not in SOLVER_STRATEGY:
            raise ConfigError(f"solver={self.solver!r} is not known; expected one of {', '.join(SOLVER_STRATEGY)}")
        if not (isinstance(self.workers, (int, np.integer)) and self.workers >= 1):
            raise ConfigError(f"workers must be a positive integer, got {self.workers!r}")
        if self.strategy is not None and self.strategy not in PLANS:
            raise ConfigError(f"strategy={self.strategy!r} is not known; expected one of {', '.join(PLANS)}")
        if not (isinstance(self.staleness, (int, np.integer)) and self.staleness >= 0):
            raise ConfigError(f"staleness must be an integer >= 0, got {self.staleness!r}")
        if not (isinstance(self.servers, (int, np.integer)) and self.servers >= 0):
            raise ConfigError(f"servers must be an integer >= 0, got {self.servers!r}")
        if self.servers and not PLANS[self.plan].takes_servers:
            raise ConfigError(f"servers={self.servers} needs a parameter-server strategy (bsp, ssp, asp), "
                              f"not {self.plan!r}")
        if self.slicer not in ("range", "hash"):
            raise ConfigError(f"slicer={self.slicer!r}: expected 'range' or 'hash'")
        if self.ps_dtype not in ("float32", "float64"):
            raise ConfigError(f"ps_dtype={self.ps_dtype!r}: expected 'float32' or 'float64'")
        if PLANS[self.plan].needs_sgd and self.solver != "sgd":
            raise ConfigError(f"strategy={self.plan!r} is stochastic: use solver='sgd'")
        if self.partition not in PARTITIONERS or self.partition == "hash":
            raise ConfigError(f"partition={self.partition!r}: expected contiguous, random or stratified")
        if self.sync_every is not None and not (isinstance(self.sync_every, int) and self.sync_every >= 1):
            raise ConfigError(f"sync_every must be a positive integer, got {self.sync_every!r}")
        if not (self.alpha >= 0):
            raise ConfigError(f"alpha must be >= 0, got {self.alpha!r}")
        if not (0.0 <= self.l1_ratio <= 1.0):
            raise ConfigError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ConfigError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.tol is not None and not (self.tol >= 0):
            raise ConfigError(f"tol must be >= 0 or None, got {self.tol!r}")
        if self.optimizer not in optim.OPTIMIZERS + ("normalized",):
            raise ConfigError(f"optimizer={self.optimizer!r} is not known; expected one of "
                              f"{', '.join(optim.OPTIMIZERS + ('normalized',))}")
        if self.optimizer == "normalized" and not (self.solver == "sgd" and self.stochastic):
            raise ConfigError(f"optimizer='normalized' learns one example at a time: solver='sgd' "
                              f"(a stochastic strategy), not {self.plan!r}")
        if self.checkpoint_every is not None:
            parse_every(self.checkpoint_every)
        if self.resume and not self.checkpoint_dir:
            raise ConfigError("resume needs a checkpoint directory (--checkpoint-dir)")
        if not (isinstance(self.max_restarts, (int, np.integer)) and self.max_restarts >= 0):
            raise ConfigError(f"max_restarts must be an integer >= 0, got {self.max_restarts!r}")
        if self.stream and stream_refusal(self) is not None:
            raise ConfigError(stream_refusal(self))
        if self.device is not None:
            if not (self.device == "cpu" or self.device == "cuda" or str(self.device).startswith("cuda:")):
                raise ConfigError(f"device={self.device!r} is not known; expected 'cpu', 'cuda', 'cuda:N' or None "
                                  "(automatic)")
            if self.stochastic or self.plan == "average" or self.stream:
                raise ConfigError(f"device={self.device!r} runs the full-batch solvers (lbfgs, gd) on rows held in "
                                  f"memory, not {self.plan!r}" + (" streamed" if self.stream else ""))
        codec_rules.check(self)
        if self.schedule == "linear":
            if not (self.per_example and self.optimizer in ANNEALED_RULES):
                raise ConfigError(f"schedule='linear' anneals the per-example rules (normalized, or adagrad or sgd with "
                                  f"batch_size=1), not {self._rule_words()}; use 'constant' or 'invscaling' there")
        elif self.schedule not in optim.SCHEDULES:
            raise ConfigError(f"schedule={self.schedule!r} is not known; expected one of "
                              f"{', '.join([*optim.SCHEDULES, 'linear'])}")

    def _rule_words(self) -> str:
        if self.optimizer == "ftrl" and self.per_example:
            return "FTRL (its rate is in its closed form)"
        if self.solver != "sgd":
            return f"solver={self.solver!r}"
        return f"optimizer={self.optimizer!r} on mini-batches of {self.batch_size}"

    def plan_words(self) -> str:
        if self.uses_ps:
            return f"{self.plan!r} over the parameter server"
        return repr(self.plan)

    def check_outputs(self, n_outputs: int) -> None:
        """A model of ``n_outputs`` (a softmax's classes) over the parameter server learns per
        example, its K rows a feature as the servers' keys; the mini-batch optimizers there
        keep one weight per feature: binary and regression models only."""
        if n_outputs != 1 and self.uses_ps and not self.per_example:
            raise ConfigError(f"strategy={self.plan_words()} with {self._rule_words()} keeps one weight per feature on "
                              "its servers: binary or regression models only (a softmax learns per example there: "
                              "optimizer='normalized', or batch_size=1)")

    @property
    def power_t(self) -> float:
        """The per-example kernel's step decay ``lr / t^power_t``: 0.5 under ``invscaling``."""
        return 0.5 if self.schedule == "invscaling" else 0.0

    def anneals(self, epochs: int | None) -> bool:
        """The kernel's rate falls linearly to 0 over this fit: ``schedule="linear"`` in a fit
        whose epochs are known (``epochs`` None: ``max_iter``), not ``partial_fit`` (one more
        epoch of an open-ended run, at the full rate)."""
        return self.schedule == "linear" and epochs is None

    def step_rows(self, most_rows: int = 0, workers: int = 1) -> int:
        """Rows a worker learns between two exchanges (its pull and push, or its merge), given the largest worker's
        rows: per example under ``bsp``, ``asp`` and ``ssp``, ``sync_every`` batches; by default under ``asp`` and
        ``ssp`` as many as leave every worker ``STEPS_PER_EPOCH`` exchanges an epoch (``sync_batches``; D2 on 2
        workers: 30 batches; 15 were 3x faster than a batch a step at 1.0045-1.0055 x L* against 1.0027-1.0029, 30
        another 1.07-1.24x a fit at 1.0073-1.0088 against 1.0065-1.0082, ``results/exchanges*``), under ``bsp`` one
        (15: 1.0108 against 1.0033); on K > 2 ``workers`` either over K - 1: a step is blind to the K - 1 others' in
        flight, so the rows it does not see stay at 2 workers' (elec2's 6 dense features, 2 epochs: bsp x4 at a
        batch each 1.076-1.094 x L*, at a third 0.993-0.994, x8 1.87-1.90 and 0.995; asp x4 1.012-1.021,
        0.993-0.994; ``rates-*-elec2*``), and ``asp``/``ssp`` then take at most ``MANY_SYNC_EVERY`` batches: the K
        changes of the keys every row touches add up, K times one worker's step, which two workers survive (their
        sum lands a step past where one would, at worst at the mirror point) and three or more do not once a step
        moves such keys far. D2's 2M rows, one epoch, 2 seeds (``results/many-workers``): asp x4 at 3,840 rows a
        step 1.404-1.410 x L*, 1,792 1.066-1.069, 1,280 (15 batches over 3, the rule before) 1.019-1.023, 768
        1.007-1.008, 512 1.006, 341 (this rule) 1.006-1.007, 256 1.006-1.007, one process 1.007-1.008; x3 at
        3,840 rows 1.042-1.055, 1,024 1.007-1.008; x2 at 7,680 (its default) 1.008-1.010, at 30,720 1.017-1.026. Else a batch.

        >>> TrainConfig(strategy="asp", workers=2).step_rows(1_000_000), TrainConfig(strategy="bsp").step_rows(10**6)
        (7680, 256)
        >>> [TrainConfig(strategy="bsp").step_rows(workers=k) for k in (2, 3, 4, 8)]
        [256, 128, 85, 36]
        >>> [TrainConfig(strategy="asp").step_rows(1_000_000, workers=k) for k in (2, 3, 4)]
        [7680, 512, 341]
        """
        if not self.per_example or self.plan not in ("bsp", "asp", "ssp"):
            return self.batch_size
        if self.sync_every is not None:
            return self.batch_size * self.sync_every
        batches = sync_batches(most_rows, self.batch_size) if self.plan != "bsp" else 1
        if workers > 2:
            batches = min(batches, MANY_SYNC_EVERY)
        return max(1, self.batch_size * batches // max(int(workers) - 1, 1))

    def average_rows(self, most_rows: int = 0) -> int:
        """Rows a worker learns between two averages under per-example ``local_sgd``, given the
        largest worker's rows: ``sync_every`` batches; by default ``LOCAL_SGD_SYNC_EVERY``, and
        under ``sign`` or a sparsifier few enough for ``COARSE_AVERAGES`` averages an epoch (down
        to one batch). A 1-bit or sparse code of a window's whole change loses most of it, and
        error feedback needs rounds to pay it back: on D2 (200,000 rows, 2 epochs) ``sign`` ended
        at 1.027 and 1.175 x the plain held-out loss on 2 and 4 workers averaging every 64
        batches (6 and 3 averages an epoch), 1.0010 and 1.044 every 16, 1.0003 and 1.0025 every 4
        (``benchmarks/README.md``); a quantizer (``int8``, ``fp16``) needs no more averages.

        >>> TrainConfig(strategy="local_sgd", workers=2).average_rows(100_000)
        16384
        >>> TrainConfig(strategy="local_sgd", workers=2, compression="sign").average_rows(100_000)
        1536
        >>> TrainConfig(strategy="local_sgd", workers=2, compression="topk:0.1+int8").average_rows(5_000)
        256
        """
        return self.batch_size * self._window(most_rows, LOCAL_SGD_SYNC_EVERY)

    def _window(self, most_rows: int, usual: int) -> int:
        """Batches between two local-SGD averages: ``sync_every``, else ``usual``, and under a
        coarse codec as few as leave ``COARSE_AVERAGES`` averages an epoch of ``most_rows``, at least one."""
        if self.sync_every is not None:
            return self.sync_every
        if not self.coarse_codec:
            return usual
        return min(usual, max(1, int(most_rows) // (COARSE_AVERAGES * self.batch_size)))

    @property
    def codec(self) -> codecs.Codec | None:
        """The codec ``compression`` names (None for ``none``)."""
        return codecs.parse(self.compression, self.error_feedback)

    def average_steps(self, most_rows: int = 0) -> int:
        """Mini-batch ``local_sgd``'s steps between two averages, given the largest worker's rows:
        ``sync_every``; by default 8, and under ``sign`` or a sparsifier few enough for
        ``COARSE_AVERAGES`` averages an epoch, down to every step, as ``average_rows`` per example.
        On a9a (2 epochs, 2 and 4 workers, ``benchmarks/bench_local_sgd_codecs.py``) every 8 steps
        ended up to 7.4% above the plain loss (momentum with ``sign`` on 4 workers; AdaGrad with
        ``topk:0.1+int8`` on 4, 7.3%), every step within 1.3% (1.0128 and 0.9996 x plain).

        >>> c = TrainConfig(strategy="local_sgd", optimizer="adagrad", compression="sign")
        >>> c.average_steps(16_000), c.average_steps(1_000_000), TrainConfig(strategy="local_sgd").average_steps(16_000)
        (1, 8, 8)
        """
        return self._window(most_rows, 8)

    @property
    def coarse_codec(self) -> bool:
        """The codec sends a sign or a share of the coordinates (not every value, quantized)."""
        return self.codec is not None and (self.codec.sparsifier is not None or self.codec.quantizer == "sign")

    def base_lr(self, epochs: int | None = None, averaged: int = 1, labels: bool = True) -> float:
        """The learning rate given, or the optimizer's default: for the normalized rule
        ``ANNEALED_NORMALIZED_RATE`` where it anneals (``anneals(epochs)``), else 0.75.
        ``averaged``: the workers whose weights per-example local SGD averages. Each learns
        its steps from its own adaptive sums over 1/K of the rows (sqrt(K) larger steps than
        one state's over all of them) and the average keeps 1/K of every worker's change, so
        an adaptive rule's default rate grows by sqrt(K) to step as one process does (the
        linear scaling rule, Goyal et al. 2017, with the sqrt(K) the local sums already
        give): w8a x2 after 2 epochs 1.038 -> 1.023 x L*, x4 1.074 -> 1.037, D2 unchanged
        (``benchmarks/bench_rates.py``, ``benchmarks/README.md``). A rate given is kept. An
        adaptive rule's rate is per unit of ``label_scale`` (``runtime/label_scale.py``; with
        ``labels=False``: the rate as the user set it).

        >>> cfg = TrainConfig(strategy="local_sgd")
        >>> cfg.base_lr(), round(cfg.base_lr(averaged=4), 2), TrainConfig(learning_rate=1.0).base_lr(averaged=4)
        (3.0, 6.0, 1.0)
        >>> TrainConfig(solver="sgd", label_scale=100.0).base_lr(), TrainConfig(solver="sgd", optimizer="sgd", label_scale=100.0).base_lr()
        (300.0, 0.05)
        """
        base = DEFAULT_LEARNING_RATE[self.optimizer] if self.learning_rate is None else float(self.learning_rate)
        if self.learning_rate is None and self.optimizer == "normalized" and self.anneals(epochs):
            base = ANNEALED_NORMALIZED_RATE
        if self.learning_rate is None and self.optimizer in ("normalized", "adagrad"):
            base *= math.sqrt(max(int(averaged), 1))
        if not base > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if labels and self.label_scale is not None and self.optimizer in ADAPTIVE_RULES:
            base *= self.label_scale
        return base

    def lr(self):
        """The learning-rate schedule (a function of the step count)."""
        return optim.SCHEDULES[self.schedule](self.base_lr())


RESUME_KEYS = ("plan", "partition", "shuffle", "random_state", "batch_size", "optimizer", "learning_rate", "schedule",
               "alpha", "l1_ratio", "fit_intercept", "sync_every", "precondition", "staleness", "servers", "slicer",
               "ps_dtype", "solver", "stream", "compression", "error_feedback")


def resume_fingerprint(cfg: TrainConfig) -> dict:
    """The settings a resumed run must share with the one that wrote the checkpoint: any of
    them changed (another partition, shuffle, optimizer, penalty...) would silently break
    exactly-once or continue a different algorithm. ``max_iter`` and ``tol`` may change
    (a resumed run may go on longer); ``workers`` is checked by the checkpointer itself."""
    out = {k: getattr(cfg, k) for k in RESUME_KEYS if k != "plan"}
    out["strategy"] = cfg.plan
    return out
