import os

import pytest

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def data_path(*parts):
    """A file of ../shared/data; the test is skipped when the folder is absent."""
    p = os.path.abspath(os.path.join(DATA, *parts))
    if not os.path.exists(p):
        pytest.skip(f"{p} is not present")
    return p


def fit_killing(X, y, cfg, rank: int, call: int, model: str = "logistic"):
    """``distributed.train_arrays`` where worker ``rank`` SIGKILLs itself at its ``call``-th
    gradient in the first attempt (``tests/worker_jobs.py``): a fault at an exact step."""
    from shardlearn.runtime import distributed
    from shardlearn.runtime.spill import Spill

    with Spill(X, y, None) as spec:
        return distributed.run_job(cfg, "tests.worker_jobs:fit_arrays_killed", model=model, spill=spec, n_outputs=1,
                                   rank=rank, call=call)
