import os
import tempfile

import numpy as np
import pytest

# SHARDLEARN_TEST_DATA points elsewhere (e.g. a missing folder, to run the synthetic fallback)
DATA = os.environ.get("SHARDLEARN_TEST_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
A9A_GROUPS = [9, 16, 7, 15, 6, 5, 2, 8, 5, 14, 2, 6, 17, 11]  # one-hot groups, 123 columns as in a9a


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): a test process a core, at most 4. Most tests start real
    worker processes of their own (2-4 each) and wait on them, on sockets and on shaped links: a
    serial run kept this 2-core machine's cores 70% busy (38.7 CPU minutes in 27.5), two test
    processes 92% (36.3 in 19.9). Files stay whole on one process (``--dist loadfile``): a
    module's fixture may hold something only one may make at a time, such as test_multihost's
    network namespaces. ``-n 0`` runs it all in one process."""
    return max(1, min(4, os.cpu_count() or 1))


def scaled_rows(n=600, d=6, seed=0, sparse=False):
    """``(X, y, sample_weight)``: logistic rows whose columns' scales run from 0.1 to 100 (the
    normalized rule's case), half the values zero when ``sparse`` (CSR)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.geomspace(0.1, 100, d)
    if sparse:
        X = sp.csr_matrix(np.where(rng.random((n, d)) < 0.5, X, 0.0))
    z = np.asarray(X @ (1.0 / np.geomspace(0.1, 100, d) * rng.normal(size=d))).ravel() + 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return X, y, rng.uniform(0.2, 3.0, n)


def data_path(*parts, real: bool = False):
    """A file of ../shared/data. Without that folder a9a's two files are replaced by synthetic
    ones of the same shape and quirks (so the distributed core is always exercised), unless
    ``real`` (a test of a9a's own figures, such as a convergence rate at default settings);
    other datasets skip the test."""
    p = os.path.abspath(os.path.join(DATA, *parts))
    if os.path.exists(p):
        return p
    if parts in (("a9a", "a9a"), ("a9a", "a9a.t")) and not real:
        return synthetic_a9a(parts[1])
    pytest.skip(f"{p} is not present")


def byte_range_rows(path: str, workers: int) -> list[int]:
    """The rows each worker's byte range of a LIBSVM file holds (what ``--workers N`` must read)."""
    from shardlearn.data import libsvm

    with open(path, "rb") as f:
        blob = f.read()
    return [len(blob[start:end].splitlines()) for start, end in libsvm.split(path, workers)]


def reference_accuracy(train: str, test: str, alpha: float) -> float:
    """Held-out accuracy of scikit-learn's L2 logistic regression at the same objective
    (labels > 0 positive in both files)."""
    from sklearn.datasets import load_svmlight_file
    from sklearn.linear_model import LogisticRegression

    X, y = load_svmlight_file(train, n_features=123)
    Xt, yt = load_svmlight_file(test, n_features=123)
    clf = LogisticRegression(C=1.0 / (alpha * X.shape[0]), tol=1e-10, max_iter=5000).fit(X, y > 0)
    return float(clf.score(Xt, yt > 0))


def _a9a_like(n: int, seed: int):
    """Rows of 14 one-hot groups over 123 columns, ~26% positive, labels from a logistic
    model (about 90% held-out accuracy for L2 logistic regression; a9a: 85%). No column is
    very rare (Dirichlet(4) category shares): on columns seen a handful of times AdaGrad's
    first steps are lr * sign(g), so rounding-level differences between one process and
    N workers grew to 1e-4 there, while equivalence tests hold to 1e-7 on a9a itself."""
    import scipy.sparse as sp

    wr = np.random.default_rng(0)
    w = wr.normal(size=sum(A9A_GROUPS)) * 1.3
    rng = np.random.default_rng(seed)
    cols, off = [], 0
    for size in A9A_GROUPS:
        cols.append(off + rng.choice(size, size=n, p=wr.dirichlet(np.full(size, 4.0))))
        off += size
    cols = np.stack(cols, 1)
    X = sp.csr_matrix((np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, len(A9A_GROUPS))),
                      shape=(n, off))
    z = X @ w
    z -= np.quantile(z, 0.76)
    return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)


def synthetic_a9a(name: str) -> str:
    """``a9a`` (32,561 rows, labels -1/+1) or ``a9a.t`` (16,281 rows, labels 0/1), 1-based
    LIBSVM, written once per machine under the temp folder."""
    from sklearn.datasets import dump_svmlight_file

    folder = os.path.join(tempfile.gettempdir(), "shardlearn-synthetic-a9a-v2")
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        n, seed = (32561, 1) if name == "a9a" else (16281, 2)
        X, y = _a9a_like(n, seed)
        tmp = f"{path}.{os.getpid()}.tmp"
        dump_svmlight_file(X, 2 * y - 1 if name == "a9a" else y, tmp, zero_based=False)
        os.replace(tmp, path)
    return path


def fit_killing(X, y, cfg, rank: int, call: int, model: str = "logistic", at: str = "gradient", n_outputs: int = 1):
    """``distributed.train_arrays`` where worker ``rank`` SIGKILLs itself at its ``call``-th
    gradient (``at="kernel"``: call of the per-example kernel) in the first attempt
    (``tests/worker_jobs.py``): a fault at an exact step."""
    from shardlearn.runtime import distributed
    from shardlearn.runtime.spill import Spill

    with Spill(X, y, None) as spec:
        return distributed.run_job(cfg, "tests.worker_jobs:fit_arrays_killed", model=model, spill=spec, n_outputs=n_outputs,
                                   rank=rank, call=call, at=at)


def kill_after_checkpoint(proc, model_dir, step: int, timeout: float = 120.0, session: bool = False) -> None:
    """SIGKILL ``proc`` (a ``shardlearn learn`` run) once ``model_dir/checkpoints`` holds checkpoint
    ``step`` or a later one: a crash at a moment the test knows is past a few checkpoints.
    ``session``: ``proc`` leads a session of its own (``start_new_session=True``) and every process
    in it is killed at once (a run with learner processes: the machine's crash, not only the driver's)."""
    import signal
    import time

    folder = os.path.join(str(model_dir), "checkpoints")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [int(e.split("-")[1]) for e in os.listdir(folder) if e.startswith("ckpt-")] \
            if os.path.isdir(folder) else []
        if max(done, default=0) >= step:
            break
        time.sleep(0.01)
    if session:
        scratch = _session_scratch(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    if session:  # nobody is left to remove the killed group's shared folder
        import shutil

        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)


def _session_scratch(sid: int) -> set:
    """The worker groups' shared folders (``SHARDLEARN_SCRATCH``) of the processes in session ``sid``."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getsid(int(pid)) != sid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        found |= {e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"SHARDLEARN_SCRATCH=")}
    return found


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (Debian's package: .ci/run installs it) on a free port, for the session;
    the tests that need it skip, saying why, where it is not installed."""
    pytest.importorskip("redis", reason="redis-py is not installed (pip install -e '.[test]')")
    from benchmarks import redis_server

    try:
        proc, port = redis_server.start(str(tmp_path_factory.mktemp("redis")))
    except FileNotFoundError as e:
        pytest.skip(str(e))
    yield port
    proc.terminate()
    proc.wait(timeout=30)
