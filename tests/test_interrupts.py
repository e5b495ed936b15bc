"""Interrupts with real signals (issue 13): Ctrl-C and SIGTERM end a fit with one line and exit
130 / 143, the workers end quietly, nothing stays in /dev/shm, and the next fit in the same
Python process works; a driver killed with SIGKILL leaves no worker (and no traceback) behind."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from shardlearn.runtime import launch

SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the worker processes")


def _long_fit_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,target\n" + "".join(f"{i % 7},{(i * 3) % 5},{(i * 7) % 11},{(i * 5 + i // 3) % 2}\n"
                                               for i in range(4000)))
    return str(path)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def shm(tmp_path):
    """A folder of this test's own in ``/dev/shm``, the driver's scratch folder
    (``SHARDLEARN_SCRATCH``): its group's folder and spilled arrays go there, so what the test
    finds left is its own, not a test's running beside it under pytest-xdist."""
    where = tempfile.mkdtemp(prefix="test-interrupts-", dir=SHM) if SHM else str(tmp_path / "shm")
    os.makedirs(where, exist_ok=True)
    yield where
    shutil.rmtree(where, ignore_errors=True)


def _left(shm):
    return glob.glob(os.path.join(shm, "*"))


def _sigint_default():
    """In the child before exec: Ctrl-C's default action. A test run started in the background
    of a non-interactive shell (``cmd &``) has SIGINT ignored, and an ignored signal is inherited
    across exec: the driver under test would never see the Ctrl-C these tests send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(argv, tmp_path, shm=None, settle_s=4.0):
    env = dict(os.environ, **({launch.SCRATCH_VAR: shm} if shm else {}))
    proc = subprocess.Popen([sys.executable, "-m", "shardlearn", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path,
                            preexec_fn=_sigint_default, env=env)
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < 2:  # both workers started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    workers = _children(proc.pid)
    time.sleep(settle_s)  # 4 s: joined the group and training; 0: still importing torch
    assert proc.poll() is None, proc.communicate()
    return proc, workers


def _gone(pids, within_s=10.0):
    deadline = time.monotonic() + within_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(p) for p in pids)


@pytest.mark.parametrize("how, code, line", [
    ("ctrl-c", 130, "shardlearn: interrupted (Ctrl-C)"),
    ("sigterm", 143, "shardlearn: terminated (SIGTERM)"),
])
@pytest.mark.parametrize("strategy", [["--solver", "gd", "--tol", "0"],
                                      ["--solver", "sgd", "--strategy", "hogwild", "--tol", "none"]])
def test_interrupt_ends_with_one_line_and_leaves_nothing(tmp_path, shm, how, code, line, strategy):
    proc, workers = _start(["train", _long_fit_file(tmp_path), "--label", "target", "--workers", "2",
                            "--max-iter", "100000", *strategy, "--out", str(tmp_path / "m")], tmp_path, shm)
    if how == "ctrl-c":  # a terminal sends SIGINT to the whole foreground group: driver and workers
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err.strip().splitlines() == [line], err
    assert _gone(workers), "workers outlived the interrupted driver"
    assert _left(shm) == []
    assert not (tmp_path / "m").exists()


def test_sigterm_while_the_workers_start_leaves_nothing(tmp_path, shm):
    proc, workers = _start(["train", _long_fit_file(tmp_path), "--label", "target", "--workers", "2",
                            "--out", str(tmp_path / "m")], tmp_path, shm, settle_s=0.0)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().splitlines() == ["shardlearn: terminated (SIGTERM)"], err
    assert _gone(workers)
    assert _left(shm) == []


def test_killed_driver_leaves_no_worker_and_no_traceback(tmp_path, shm):
    proc, workers = _start(["train", _long_fit_file(tmp_path), "--label", "target", "--workers", "2", "--tol", "none",
                            "--max-iter", "100000", "--solver", "sgd", "--strategy", "hogwild",
                            "--out", str(tmp_path / "m")], tmp_path, shm)
    proc.kill()
    assert _gone(workers), "workers outlived their killed driver"
    _, err = proc.communicate(timeout=30)  # the workers' stderr too: they shared the driver's
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert _left(shm) == []


def test_the_next_fit_works_after_keyboard_interrupt_in_python(tmp_path):
    script = textwrap.dedent("""
        import os, signal, threading, time
        import numpy as np
        from shardlearn import LogisticRegression

        rng = np.random.default_rng(0)
        X = rng.normal(size=(4000, 5)); y = (X[:, 0] + rng.normal(size=4000) > 0).astype(int)
        LogisticRegression(workers=2).fit(X[:100], y[:100])  # the group is up
        threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            LogisticRegression(workers=2, solver="gd", tol=0, max_iter=10**6).fit(X, y)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted")
        a = LogisticRegression(workers=2, tol=1e-10).fit(X, y)
        b = LogisticRegression(workers=1, tol=1e-10).fit(X, y)
        print("same", bool(np.allclose(a.coef_, b.coef_, rtol=1e-5, atol=1e-8)))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       preexec_fn=_sigint_default)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["interrupted", "same", "True"], r.stdout + r.stderr


def test_a_driver_killed_between_jobs_leaves_no_group_folder(tmp_path):
    # idle workers wait on the driver's pipe: its end must remove the group's /dev/shm folder too
    # (it was left when the kill came between two jobs: a flaky CI failure)
    script = textwrap.dedent("""
        import os, signal, sys
        from shardlearn.runtime import group

        g = group.get(2)
        g.run("tests.worker_jobs:ping")
        print(g.scratch, *g.pids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    scratch, *pids = proc.stdout.split()
    assert "shardlearn-group-" in scratch
    assert _gone([int(p) for p in pids]), "workers outlived their killed driver"
    deadline = time.monotonic() + 5
    while os.path.exists(scratch) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(scratch)
