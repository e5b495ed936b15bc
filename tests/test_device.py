"""The full-batch pass on a torch device (issue 20, item 2), tested on the CPU device: the
same code path a GPU runs (rows held as torch tensors, products there, the model's loss on
the host) gives the host path's model over models, solvers, penalties, weights, intercept,
dtypes and worker counts; settings it does not run are one-line errors."""
import numpy as np
import pytest
import scipy.sparse as sp

from shardlearn import LinearRegression, LinearSVC, LogisticRegression
from shardlearn.core.errors import ConfigError
from shardlearn.kernels.device import cuda_present


def _data(n=600, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d)
    z = X @ (rng.normal(size=d) / X.std(axis=0))
    return X, z + 0.5 * rng.normal(size=n), rng.uniform(0.2, 3.0, size=n), z


CASES = [
    (LinearRegression, dict(alpha=0.1), "reg"),
    (LinearRegression, dict(alpha=0.05, l1_ratio=0.5, fit_intercept=False), "reg"),
    (LogisticRegression, dict(alpha=1e-3), "bin"),
    (LogisticRegression, dict(alpha=1e-2, l1_ratio=0.3, solver="gd"), "bin"),
    (LogisticRegression, dict(alpha=1e-3), "multi"),
    (LinearSVC, dict(alpha=1e-2), "bin"),
    (LinearSVC, dict(alpha=1e-2, loss="hinge", solver="gd"), "multi"),
]


@pytest.mark.parametrize("cls,kw,target", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_cpu_device_gives_the_host_model(cls, kw, target, weighted):
    X, y, sw, z = _data()
    y = {"reg": y, "bin": (z > 0).astype(int), "multi": np.digitize(z, [-1.0, 1.0])}[target]
    sw = sw if weighted else None
    host = cls(**kw, tol=1e-10, max_iter=500).fit(X, y, sample_weight=sw)
    dev = cls(**kw, tol=1e-10, max_iter=500, device="cpu").fit(X, y, sample_weight=sw)
    # the same optimum; the products' rounding differs, so the two runs part at the solver's tolerance
    np.testing.assert_allclose(dev.coef_, host.coef_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dev.intercept_, host.intercept_, rtol=1e-6, atol=1e-7)
    assert dev.n_iter_ == pytest.approx(host.n_iter_, abs=2)


@pytest.mark.parametrize("cls,kw,target", [CASES[0], CASES[2], CASES[4]])
def test_two_workers_on_the_cpu_device_and_float32_rows(cls, kw, target):
    X, y, _, z = _data(n=2000)
    y = {"reg": y, "bin": (z > 0).astype(int), "multi": np.digitize(z, [-1.0, 1.0])}[target]
    one = cls(**kw, tol=1e-10).fit(X, y)
    two = cls(**kw, tol=1e-10, workers=2, device="cpu").fit(X, y)
    np.testing.assert_allclose(two.coef_, one.coef_, rtol=1e-6, atol=1e-8)
    f32 = cls(**kw, tol=1e-8, device="cpu").fit(X.astype(np.float32), y)
    ref = cls(**kw, tol=1e-8).fit(X.astype(np.float32), y)
    np.testing.assert_allclose(f32.coef_, ref.coef_, rtol=1e-4, atol=1e-4)  # float32 products on both sides


def test_settings_the_device_path_does_not_run():
    X, y, _, _ = _data(n=100)
    with pytest.raises(ConfigError, match="device='tpu' is not known; expected 'cpu', 'cuda', 'cuda:N' or None"):
        LinearRegression(device="tpu").fit(X, y)
    with pytest.raises(ConfigError, match=r"device='cpu' runs the full-batch solvers \(lbfgs, gd\)"):
        LinearRegression(device="cpu", solver="sgd").fit(X, y)
    with pytest.raises(ConfigError, match="device='cpu' runs dense rows held in memory; these are sparse"):
        LinearRegression(device="cpu").fit(sp.csr_matrix(X), y)
    if not cuda_present():
        with pytest.raises(ConfigError, match="device='cuda', but torch sees no CUDA device here"):
            LinearRegression(device="cuda").fit(X, y)


def test_cli_device_flag(tmp_path, capsys):
    import json

    import pandas as pd

    from shardlearn.cli import main

    X, y, _, _ = _data(n=300)
    pd.DataFrame(X, columns=[f"x{j}" for j in range(5)]).assign(target=y).to_csv(tmp_path / "d.csv", index=False)
    for name, extra in (("host", []), ("dev", ["--device", "cpu"])):
        assert main(["train", str(tmp_path / "d.csv"), "--label", "target", "--model", "linear", "--tol", "1e-10",
                     "--out", str(tmp_path / name), *extra]) == 0
    capsys.readouterr()
    import shardlearn

    np.testing.assert_allclose(shardlearn.load(str(tmp_path / "dev")).coef_,
                               shardlearn.load(str(tmp_path / "host")).coef_, rtol=1e-7)
    assert json.loads(open(tmp_path / "dev" / "model.json").read())["hyper_parameters"]["device"] == "cpu"
