"""Which codec runs where: the one-line refusals of ``compression=`` for the strategies whose
exchanges it cannot carry (``TrainConfig.validate`` calls ``check``). Each refusal says why
and what to use instead.

>>> from shardlearn.runtime.config import TrainConfig
>>> check(TrainConfig(solver="lbfgs", compression="int8"))
>>> try:
...     check(TrainConfig(solver="lbfgs", compression="sign"))
... except ConfigError as e:
...     print(str(e)[:60])
compression='sign': lbfgs's line search needs a gradient clo
"""
from __future__ import annotations

from shardlearn.core.errors import ConfigError


def collectives(cfg) -> bool:
    """Its collective sums can go through a codec: full-batch gradients (gd, lbfgs), local SGD's
    changes, bsp's mini-batch gradients or per-example changes (quantizers only there). The
    parameter server's pushes are a separate path, checked in ``check``."""
    return cfg.plan in ("gd", "lbfgs", "local_sgd", "bsp") and not cfg.uses_ps


def check(cfg) -> None:
    """Raise ``ConfigError`` (one line) where ``cfg.compression`` has no path in ``cfg``'s strategy."""
    codec = cfg.codec
    if codec is not None and cfg.uses_ps:  # the parameter server's pushes, through a quantizer (ps/client.py)
        if cfg.per_example and codec.quantizer == "sign":
            raise ConfigError(f"compression={cfg.compression!r}: the per-example kernel's workers push changes of "
                              "its per-coordinate state, whose adaptive sums only grow: the sign of their change "
                              "is always +; use fp16, bf16 or int8 there")
        if codec.sparsifier or codec.rank:
            raise ConfigError(f"compression={cfg.compression!r}: a parameter-server push names only the keys a batch "
                              "touched, sparse already; use fp16, bf16, int8 or sign there")
    elif codec is not None and cfg.plan == "bsp" and cfg.per_example and (codec.sparsifier or codec.rank or
                                                                       codec.quantizer == "sign"):
        raise ConfigError(f"compression={cfg.compression!r}: bsp with the per-example rule merges the changes "
                          "of the coordinates its rows touched (sparse already), weights and adaptive sums, "
                          "through fp16, bf16 or int8; sparsifiers, sign and powersgd compress mini-batch bsp "
                          "(batch_size > 1 with optimizer sgd, adagrad, adam...) and local_sgd")
    elif codec is not None and not collectives(cfg):
        raise ConfigError(f"compression={cfg.compression!r} runs on gd, lbfgs, local_sgd, bsp and the "
                          f"parameter server's pushes, not {cfg.plan_words()}; use compression='none' there")
    if codec is not None and cfg.plan == "local_sgd" and cfg.optimizer == "ftrl" and not cfg.per_example \
            and cfg.coarse_codec:
        raise ConfigError(f"compression={cfg.compression!r}: local_sgd averages the weights, which FTRL "
                          "recomputes from its own z at every step, so a sign or sparsified change of them is "
                          "never paid back; use fp16, bf16 or int8 there")
    if codec is not None and cfg.plan in ("gd", "lbfgs") and (codec.sparsifier or codec.quantizer == "sign" or
                                                            codec.rank):
        raise ConfigError(f"compression={cfg.compression!r}: {cfg.plan}'s line search needs a gradient close "
                          "to the true one; use fp16, bf16 or int8 there, or sparsify, sign-compress or "
                          "low-rank (powersgd) under bsp or local_sgd")
