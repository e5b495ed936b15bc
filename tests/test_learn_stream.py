"""``shardlearn learn`` (issue 15): a stream learned one example at a time equals
``learn_many`` on the same rows; a run killed with SIGKILL and started again ends with the
weights of an uninterrupted run (exactly once); SIGTERM on a followed file ends with a final
checkpoint and the JSON line; bad lines are counted by reason or stop the run naming the line."""
import json
import re
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

import shardlearn
from shardlearn import OnlineLogisticRegression
from shardlearn.online.learn import learn
from tests.conftest import kill_after_checkpoint

ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _vw_file(path, n, seed=0, bad_every=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for i in range(n):
            a, b = rng.normal(size=2)
            y = 1 if a + 0.5 * b + rng.normal() * 0.5 > 0 else -1
            w = f" {rng.choice([0.5, 1, 2])}" if i % 7 == 0 else ""
            f.write(f"{y}{w} |f a:{a:.4f} b:{b * 100:.3f} |c k{rng.integers(20)}\n")
            if bad_every and i % bad_every == bad_every - 1:
                f.write(["1 |f a:zz\n", "yes |f a\n", "1 a:1\n", "\n", "|f a:1\n"][(i // bad_every) % 5])


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "shardlearn", *args], capture_output=True, text=True, env=ENV,
                          timeout=300, **kw)


def test_the_cli_equals_learn_many_and_loads_back(tmp_path):
    src = tmp_path / "s.vw"
    _vw_file(src, 3000)
    r = _cli("learn", str(src), "--model-dir", str(tmp_path / "m"), "--hash-bits", "14", "--l2", "1e-4")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["examples"] == 3000 and out["skipped"] == {} and 0.2 < out["progressive_logloss"] < 0.5
    assert 0.8 < out["auc"] < 1.0 and out["examples_per_s"] > 0
    assert "average" in r.stderr.splitlines()[0] and r.stderr.splitlines()[2].split()[2] == "1"  # VW's table
    model = shardlearn.load(str(tmp_path / "m"))
    # the same rows as dicts through learn_one: the same weights
    ref = OnlineLogisticRegression(hash_bits=14, l2=1e-4)
    for line in src.read_text().splitlines():
        head, f, c = line.split("|")
        parts = head.split()
        x = {"f": {k: float(v) for k, v in (t.split(":") for t in f.split()[1:])}, "c": {c.split()[1]: 1.0}}
        ref.learn_one(x, int(parts[0]) > 0, float(parts[1]) if len(parts) > 1 else 1.0)
    np.testing.assert_array_equal(model._state["ws"], ref._state["ws"])
    assert model.progressive_loss_ == pytest.approx(ref.progressive_loss_, rel=1e-12)


def test_libsvm_stream_equals_learn_many_on_the_same_file(tmp_path):
    src = tmp_path / "s.svm"
    rng = np.random.default_rng(3)
    src.write_text("".join(f"{rng.choice([-1, 1])} " + " ".join(f"{j}:{rng.normal():.5f}" for j in
                                                                     np.sort(rng.choice(50, 5, replace=False)) + 1)
                           + "\n" for _ in range(2000)))
    est = OnlineLogisticRegression(hash_bits=12, rule="adagrad")
    learn(str(src), est, fmt="libsvm", model_dir=str(tmp_path / "m"), block_bytes=5000)
    X, y = load_svmlight_file(str(src), zero_based=True)  # indices as written: the features' names
    ref = OnlineLogisticRegression(hash_bits=12, rule="adagrad").learn_many(X, (y > 0).astype(int))
    np.testing.assert_allclose(est._state["ws"], ref._state["ws"], rtol=1e-12, atol=1e-15)


def test_a_killed_run_restarted_applies_every_example_once(tmp_path):
    src, model = tmp_path / "s.vw", tmp_path / "m"
    _vw_file(src, 150_000, seed=1)
    call = (f"from shardlearn import OnlineLogisticRegression as O; from shardlearn.online.learn import learn; "
            f"learn({str(src)!r}, O(hash_bits=12, l1=1e-5, l2=1e-4), fmt='vw', model_dir={str(model)!r}, "
            f"checkpoint_every=3000, block_bytes=8192)")
    proc = subprocess.Popen([sys.executable, "-c", call], env=ENV)
    kill_after_checkpoint(proc, model, 5)
    assert proc.returncode == -9, "the run ended before it could be killed: make the file longer"
    again = OnlineLogisticRegression(hash_bits=12, l1=1e-5, l2=1e-4)
    out = learn(str(src), again, fmt="vw", model_dir=str(model), checkpoint_every=3000, block_bytes=8192)
    clean = OnlineLogisticRegression(hash_bits=12, l1=1e-5, l2=1e-4)
    learn(str(src), clean, fmt="vw", model_dir=str(tmp_path / "clean"), block_bytes=1 << 20)
    assert 0 < out["resumed_from_example"] < 150_000 and out["examples"] == 150_000
    np.testing.assert_array_equal(again._state["ws"], clean._state["ws"])  # block sizes differ: same weights
    assert again.n_seen_ == clean.n_seen_ == 150_000


def test_sigterm_on_a_followed_file_checkpoints_and_prints_the_line(tmp_path):
    src = tmp_path / "s.vw"
    _vw_file(src, 500)
    proc = subprocess.Popen([sys.executable, "-m", "shardlearn", "learn", str(src), "--model-dir", str(tmp_path / "m"),
                             "--follow"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # its first progress row: it is learning, so its signal handlers are in place (a fixed sleep
    # was not enough on a loaded machine: the SIGTERM came while it was still importing)
    head = [proc.stderr.readline() for _ in range(3)]
    assert head[2].split()[2] == "1", head
    time.sleep(1.0)
    with open(src, "a") as f:
        f.write("1 |f a:1.5 b:2\n-1 |f a:-2")  # the last line's newline has not come yet: not learned
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["examples"] == 501 and out["stopped_by_signal"] is True
    assert out["position"]["offset"] == os.path.getsize(src) - len("-1 |f a:-2")
    with open(src, "a") as f:
        f.write("\n")
    r = _cli("learn", str(src), "--model-dir", str(tmp_path / "m"), "--quiet")  # resumes: only the new line
    assert json.loads(r.stdout)["examples"] == 502 and json.loads(r.stdout)["resumed_from_example"] == 501


def test_stdin_and_stop_when_idle(tmp_path):
    src = tmp_path / "s.vw"
    _vw_file(src, 300)
    r = subprocess.run([sys.executable, "-m", "shardlearn", "learn", "-", "--model-dir", str(tmp_path / "m"),
                        "--quiet"], input=src.read_text(), capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["examples"] == 300
    t = time.monotonic()
    r = _cli("learn", str(src), "--model-dir", str(tmp_path / "f"), "--follow", "--stop-when-idle", "1", "--quiet")
    assert r.returncode == 0 and json.loads(r.stdout)["examples"] == 300 and time.monotonic() - t < 60


def test_bad_lines_are_counted_or_named(tmp_path):
    src = tmp_path / "s.vw"
    _vw_file(src, 1000, bad_every=100)
    r = _cli("learn", str(src), "--model-dir", str(tmp_path / "m"), "--quiet")
    out = json.loads(r.stdout)
    assert out["examples"] == 1000  # and a blank line is no example, nor a bad one
    assert out["skipped"] == {"feature value is not a number": 2, "label is not a number": 2, "no label": 2,
                              "no '|' opens the features": 2}
    r = _cli("learn", str(src), "--model-dir", str(tmp_path / "e"), "--on-bad-row", "error", "--quiet")
    assert r.returncode == 2
    assert r.stderr == f"shardlearn: error: {src}: line 101: feature value 'zz' is not a number\n"
    r = _cli("learn", str(src), "--model-dir", str(tmp_path / "m"), "--hash-bits", "12", "--quiet")
    assert r.returncode == 2 and "belongs to another run: hash_bits was 18 there and is 12 here; use a fresh --model-dir" in r.stderr


def _json_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"y": int(rng.integers(2)), "a": float(rng.normal()), "city": str(rng.choice(["Oslo", "Lima"])),
             "u": {"id": int(rng.integers(5)), "t": float(rng.normal())}} for _ in range(n)]


@pytest.mark.parametrize("mixed", [False, True])
def test_json_lines_equal_the_same_dicts_learned_one_by_one(tmp_path, mixed):
    rows = _json_rows(2000)
    if mixed:  # a field both number and string: pyarrow cannot read the block as columns; line by line then
        rows[5]["a"] = "high"
    src = tmp_path / "s.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    est = OnlineLogisticRegression(hash_bits=14)
    out = learn(str(src), est, fmt="jsonl", model_dir=str(tmp_path / "m"), label="y", block_bytes=20000)
    ref = OnlineLogisticRegression(hash_bits=14)
    for r in rows:
        r = dict(r)
        ref.learn_one(r, r.pop("y"))
    assert out["examples"] == 2000
    np.testing.assert_array_equal(est._state["ws"], ref._state["ws"])


def test_json_lines_bad_lines_and_string_labels(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text('{"y": "yes", "a": 1}\n{"y": "no", "a": -1}\nnot json\n{"a": 2}\n[1, 2]\n'
                   '{"y": "yes", "a": [1]}\n{"y": "no", "a": Infinity}\n')
    r = _cli("learn", str(src), "--format", "jsonl", "--label", "y", "--positive-label", "yes", "--model-dir",
             str(tmp_path / "m"), "--quiet")
    out = json.loads(r.stdout)
    assert out["examples"] == 2 and sum(out["skipped"].values()) == 5, out["skipped"]
    r = _cli("learn", str(src), "--format", "jsonl", "--label", "y", "--model-dir", str(tmp_path / "e"), "--quiet",
             "--on-bad-row", "error")
    assert r.returncode == 2
    assert r.stderr == (f"shardlearn: error: {src}: line 1: label 'yes' is not a number (name the positive class "
                        "with --positive-label)\n")
    r = _cli("learn", str(src), "--format", "vw", "--label", "y", "--model-dir", str(tmp_path / "v"))
    assert r.returncode == 2 and "--label names a field of jsonl, csv lines" in r.stderr


def _csv_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, city = rng.normal(), str(rng.choice(["Oslo", "Lima", "Pune"]))
        out.append({"clicked": "yes" if a + (city == "Oslo") + rng.normal() > 0.5 else "no",
                    "a": None if i % 17 == 0 else round(float(a), 4), "city": None if i % 23 == 0 else city,
                    "n": float(rng.integers(0, 9))})
    return out


def _csv_text(rows):
    cell = lambda v: "" if v is None else (f"{v:g}" if isinstance(v, float) else v)  # noqa: E731
    return "clicked,a,city,n\n" + "".join(",".join(cell(r[k]) for k in ("clicked", "a", "city", "n")) + "\n"
                                          for r in rows)


def test_csv_equals_the_same_rows_learned_one_by_one_and_resumes_past_its_header(tmp_path):
    rows = _csv_rows(3000)
    src = tmp_path / "s.csv"
    src.write_text(_csv_text(rows[:2000]))
    est = OnlineLogisticRegression(hash_bits=14)
    learn(str(src), est, fmt="csv", model_dir=str(tmp_path / "m"), label="clicked", positive="yes",
          block_bytes=7000)
    with open(src, "a") as f:  # more rows come; the restart reads the header from the file's first line
        f.write(_csv_text(rows[2000:]).split("\n", 1)[1])
    est = OnlineLogisticRegression(hash_bits=14)
    out = learn(str(src), est, fmt="csv", model_dir=str(tmp_path / "m"), label="clicked", positive="yes",
                block_bytes=7000)
    assert out["resumed_from_example"] == 2000 and out["examples"] == 3000
    ref = OnlineLogisticRegression(hash_bits=14)
    for r in rows:
        r = dict(r)
        y = r.pop("clicked") == "yes"
        ref.learn_one({k: float(f"{v:g}") if isinstance(v, float) else v for k, v in r.items()}, y)
    np.testing.assert_array_equal(est._state["ws"], ref._state["ws"])


def test_csv_bad_rows_are_counted_or_named(tmp_path):
    src = tmp_path / "s.csv"
    src.write_text("y,a,c\n1,0.5,x\n0,1.5,y\n1,high,x\n0,1\n,2,x\n1,inf,x\n0,3,z\n")
    r = _cli("learn", str(src), "--format", "csv", "--label", "y", "--model-dir", str(tmp_path / "m"), "--quiet")
    out = json.loads(r.stdout)
    assert out["examples"] == 3 and out["skipped"] == {"column '...': '...' is not a number": 1,
                                                       "expected N fields, got N": 1, "no label": 1,
                                                       "feature '...': value inf is not finite": 1}
    r = _cli("learn", str(src), "--format", "csv", "--label", "y", "--model-dir", str(tmp_path / "e"), "--quiet",
             "--on-bad-row", "error")
    assert r.returncode == 2 and r.stderr == f"shardlearn: error: {src}: line 4: column 'a': 'high' is not a number\n"
    r = _cli("learn", str(src), "--format", "csv", "--model-dir", str(tmp_path / "n"))
    assert r.returncode == 2 and "--format csv needs --label" in r.stderr
    r = _cli("learn", str(tmp_path / "none.csv"), "--model-dir", str(tmp_path / "n"))
    assert r.returncode == 2 and r.stderr == f"shardlearn: error: {tmp_path / 'none.csv'}: no such file\n"
    r = _cli("learn", str(tmp_path), "--model-dir", str(tmp_path / "n"))
    assert r.returncode == 2 and r.stderr == f"shardlearn: error: {tmp_path}: is a directory, not a file\n"


def test_holdout_every_k_scores_without_learning(tmp_path):
    src = tmp_path / "s.vw"
    _vw_file(src, 600, seed=4)
    est = OnlineLogisticRegression(hash_bits=12, l2=1e-3)
    out = learn(str(src), est, fmt="vw", model_dir=str(tmp_path / "m"), holdout_every=5, block_bytes=3000)
    ref, losses = OnlineLogisticRegression(hash_bits=12, l2=1e-3), []
    for i, line in enumerate(src.read_text().splitlines()):
        head, f, c = line.split("|")
        parts = head.split()
        x = {"f": {k: float(v) for k, v in (t.split(":") for t in f.split()[1:])}, "c": {c.split()[1]: 1.0}}
        y, w = int(parts[0]) > 0, float(parts[1]) if len(parts) > 1 else 1.0
        if (i + 1) % 5 == 0:
            p = ref.predict_proba_one(x)[1]
            losses.append((-np.log(p) if y else -np.log1p(-p), w))
        else:
            ref.learn_one(x, y, w)
    np.testing.assert_array_equal(est._state["ws"], ref._state["ws"])
    assert out["examples"] == 480 and out["holdout_examples"] == 120
    want = sum(loss * w for loss, w in losses) / sum(w for _, w in losses)
    assert out["holdout_progressive_logloss"] == pytest.approx(want, rel=1e-9)


def _amounts_file(path, n=400):
    """A regression stream of raw amounts in the thousands: plain SGD at rate 0.5 overflows."""
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for a, b in rng.normal(size=(n, 2)) * 1e3:
            f.write(f"{2 * a + 3 * b:.3f} |x a:{a:.3f} b:{b:.3f}\n")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stream_whose_weights_overflow_stops_naming_the_example(tmp_path, workers):
    """Plain SGD on amounts in the thousands: the learner stops at the example whose loss
    overflowed, in one line naming the stream, the rule and the fix, exit 2, and saves no
    model (the run used to go on learning NaN, print NaN in its JSON line, exit 0 and save
    a model predicting NaN). The default rule learns the same stream."""
    src = tmp_path / "amounts.vw"
    _amounts_file(src)
    common = ["learn", str(src), "--loss", "squared", "--quiet", "--workers", str(workers)]
    r = _cli(*common, "--rule", "sgd", "--learning-rate", "0.5", "--model-dir", str(tmp_path / "m"))
    where = str(src) if workers == 1 else rf"{src} \(learner [01]\)"
    assert r.returncode == 2 and r.stdout == "", r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"shardlearn: error: {where}: example \d+: the loss overflowed to inf or NaN: rule='sgd' at "
        r"learning_rate=0.5 overshoots on these features' scales; the default rule 'normalized' is scale-free, or "
        r"standardize the features or lower learning_rate", lines[0]), lines
    assert not (tmp_path / "m" / "model.json").exists()
    ok = _cli(*common, "--model-dir", str(tmp_path / "n"))
    assert ok.returncode == 0 and np.isfinite(json.loads(ok.stdout)["progressive_squared_loss"]), ok.stderr
