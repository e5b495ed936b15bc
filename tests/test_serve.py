"""Live predictions (issue 16): the served instances are hashed as the learner hashed its
examples (every format, every loss); a swap under concurrent requests never shows a half
model; bad requests get 401, 413, 422 naming instance and field; delayed labels train the
learner on the features seen at prediction time; ``shardlearn learn --serve`` (one learner
and a group over the parameter server) and ``shardlearn serve MODEL_DIR`` run as real
processes on 127.0.0.1 and stop cleanly on SIGTERM."""
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import schemathesis

import shardlearn
from shardlearn import OnlineLinearRegression, OnlineLogisticRegression
from shardlearn.online import formats, snapshot
from shardlearn.online.feedback import Feedback
from shardlearn.online.instances import InstanceError, rows
from shardlearn.online.learn import learn
from shardlearn.online.serve import Serving
from shardlearn.online.server import Live, make_app

ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINES = 600


def _examples(n, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    k = rng.integers(5, size=n)
    y = np.where(a + 0.5 * b + 0.3 * (k == 2) + 0.5 * rng.normal(size=n) > 0, 1, 0)
    return a, b, k, y


def _write(path, fmt, n, seed=0):
    a, b, k, y = _examples(n, seed)
    with open(path, "w") as f:
        if fmt == "csv":
            f.write("y,a,b,k\n")
        for i in range(n):
            f.write({"vw": f"{2 * y[i] - 1} |f a:{a[i]:.4f} b:{b[i]:.4f} |c k{k[i]}\n",
                     "jsonl": json.dumps({"y": int(y[i]), "a": round(a[i], 4), "f": {"b": round(b[i], 4)},
                                          "k": f"k{k[i]}"}) + "\n",
                     "csv": f"{y[i]},{a[i]:.4f},{b[i]:.4f},k{k[i]}\n",
                     "libsvm": f"{y[i]} 1:{a[i]:.4f} 2:{b[i]:.4f} {3 + k[i]}:1\n"}[fmt])


def _instances(path, fmt):
    """The file's examples as a request writes them (no label where the format allows)."""
    lines = open(path).read().splitlines()
    if fmt == "vw":
        return [line.split(" ", 1)[1] for line in lines]
    if fmt == "jsonl":
        return [{k: v for k, v in json.loads(line).items() if k != "y"} for line in lines]
    if fmt == "csv":
        return [[c for c in line.split(",")[1:]] for line in lines[1:]]
    return [line.split(" ", 1)[1] for line in lines]


@pytest.mark.parametrize("fmt,loss,opts", [
    ("vw", "logistic", {}), ("vw", "logistic", {"interactions": ["fc"]}), ("vw", "hinge", {"l1": 1e-3}),
    ("vw", "squared", {"fit_intercept": False}),
    ("jsonl", "logistic", {"l2": 1e-3, "interactions": ["fk"]}), ("csv", "logistic", {"l1": 1e-4}),
    ("csv", "squared", {}), ("libsvm", "logistic", {"rule": "ftrl", "l1": 1e-3})])
def test_served_predictions_equal_the_learners_on_the_same_examples(tmp_path, fmt, loss, opts):
    path = tmp_path / f"s.{fmt}"
    _write(path, fmt, LINES)
    est = OnlineLinearRegression(hash_bits=12, **opts) if loss == "squared" else \
        OnlineLogisticRegression(hash_bits=12, loss=loss, **opts)
    label = "y" if fmt in ("jsonl", "csv") else None
    learn(str(path), est, fmt=fmt, model_dir=str(tmp_path / "m"), label=label)
    snap = snapshot.load(str(tmp_path / "m"))
    assert snap.version == 1 and snap.examples == LINES and snap.origin == "checkpoint"
    served, X = snap.answer(_instances(path, fmt))  # VW without interactions: the one compiled call
    assert (X is None) == (fmt == "vw" and not opts.get("interactions"))
    full, X = snap.answer(_instances(path, fmt), keep=True)  # the parser's rows
    np.testing.assert_allclose(served, full, rtol=1e-14)
    # the reference: the saved model scoring the file's rows as the learner parsed them
    model = shardlearn.load(str(tmp_path / "m"))
    block = formats.Parser(fmt, bits=12, label=label, interactions=model.interactions).block(
        open(path, "rb").read(), where=str)
    z = model._scores(block.X)
    np.testing.assert_allclose(served, model._proba(z) if loss == "logistic" else z, rtol=1e-12, atol=1e-15)
    assert np.ptp(served) > 0.1  # a model that learned something


@pytest.mark.parametrize("rule,opts", [("normalized", {}), ("adagrad", {"l1": 1e-2, "l2": 1e-2}),
                                       ("ftrl", {"l1": 1e-2}), ("sgd", {"fit_intercept": False})])
def test_the_compiled_vw_answer_equals_the_parsers_rows(rule, opts):
    rng = np.random.default_rng(3)
    m = OnlineLogisticRegression(hash_bits=10, rule=rule, **opts)
    for _ in range(300):
        x = rng.normal(size=3)
        m.learn_one({"a": {"x": x[0], "y": x[1]}, "b": {"z": x[2], "w": 1.0}}, int(x[0] - x[1] + x[2] > 0))
    snap = snapshot.of_model(m, version=1, reading={"format": "vw"})
    lines = ["|a x:0.5 y:-1.25 |b z:2 w", "1 2.5 'tag|a x:1e-3 y:0.75", "|a:2 x:1 |b:0.5 z:3",
             "-1 |a x:1", "|b", "|a x:1.5e2 |b w z:-0.001"]
    fast, none = snap.answer(lines)
    full, X = snap.answer(lines, keep=True)
    assert none is None and X.shape == (6, 1024)
    np.testing.assert_allclose(fast, full, rtol=1e-14)
    assert len(set(np.round(fast, 6))) == 6
    exact = lines + ["|a x:0.12345678901234567890123"]  # beyond the fast exact path: the parser reads it
    answered, X = snap.answer(exact)
    assert X is not None and answered.shape == (7,)
    np.testing.assert_allclose(answered[:6], full, rtol=1e-14)
    for bad, index, what in ((["|a x:1", "|a x:one"], 1, "feature value 'one' is not a number"),
                             (["|a x:1", "  "], 1, "expected an example, got an empty line"),
                             (["|a x:1e999"], 0, "1e999")):
        with pytest.raises(InstanceError, match=re.escape(what)) as e:
            snap.answer(bad)
        assert e.value.index == index


def _two_models():
    """Two snapshots whose predictions for '|f a:1' differ and are known."""
    out = []
    for version, y in ((1, 1), (2, 0)):
        m = OnlineLogisticRegression(hash_bits=10)
        for _ in range(50):
            m.learn_one({"f": {"a": 1.0}}, y)
        out.append(snapshot.of_model(m, version=version, reading={"format": "vw"}))
    return out


def test_no_request_sees_a_half_swapped_model_under_load():
    a, b = _two_models()
    x = rows(["|f a:1"] * 64, {"format": "vw"}, 10)
    expected = {1: a.predict(x)[0], 2: b.predict(x)[0]}
    assert abs(expected[1] - expected[2]) > 0.5
    live = Live(a)
    answers, failures, done = [], [], threading.Event()
    with Serving(make_app(live), "127.0.0.1", 0) as srv:
        def client():
            with httpx.Client(base_url=srv.address, timeout=10) as c:
                while not done.is_set():
                    r = c.post("/predict", json={"instances": ["|f a:1"] * 64})
                    if r.status_code != 200:
                        failures.append(r.status_code)
                        continue
                    answers.append(r.json())
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(100):  # 100 swaps, each a whole new snapshot, alternating between the two models
            new = (b if i % 2 == 0 else a)._replace(version=i + 3)
            assert live.swap(new)
            time.sleep(0.005)
        done.set()
        for t in threads:
            t.join()
    assert failures == [] and len(answers) > 20 and live.swaps == 100
    by_version = {i + 3: (2 if i % 2 == 0 else 1) for i in range(100)} | {1: 1}
    for ans in answers:  # every answer wholly from the model its version names
        want = expected[by_version[ans["model_version"]]]
        assert ans["predictions"] == [want] * 64


def test_bad_requests_get_401_413_422_naming_instance_and_field():
    a, _ = _two_models()
    csv_snap = a._replace(reading={"format": "csv", "label": "y", "columns": ["y", "a", "k"],
                                   "kinds": {"y": "number", "a": "number", "k": "text"}})
    with Serving(make_app(Live(csv_snap), token="s3cret", max_body=2000), "127.0.0.1", 0) as srv, \
            httpx.Client(base_url=srv.address) as c:
        ok = {"Authorization": "Bearer s3cret"}
        assert c.get("/health").status_code == 200  # liveness needs no token
        assert c.get("/model").status_code == 401
        assert c.post("/predict", json={"instances": [[1.0, "x"]]}, headers={"Authorization": "Bearer nope"}
                      ).status_code == 401
        r = c.post("/predict", json={"instances": [[1.0, "x"], [2.5, None]]}, headers=ok)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        r = c.post("/predict", json={"instances": [[1.0, "x"], ["abc", "y"]]}, headers=ok)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "instances", 1, "a"]
        assert "instances[1].a: expected a number" in r.json()["detail"][0]["msg"]
        r = c.post("/predict", json={"instances": [[1.0, "x", 3, 4]]}, headers=ok)
        assert r.status_code == 422 and "instances[0]: expected 2 values (a, k), or 3 with the label, got 4" in r.text
        r = c.post("/predict", json={"instances": [{"a": 1}]}, headers=ok)
        assert r.status_code == 422 and "instances[0]: expected a CSV row as an array, got an object" in r.text
        assert c.post("/predict", json={"instances": []}, headers=ok).status_code == 422
        big = {"instances": [[1.0, "x" * 3000]]}
        assert c.post("/predict", json=big, headers=ok).status_code == 413
        chunks = (part for part in [json.dumps(big).encode()[i:i + 500] for i in range(0, 3100, 500)])
        r = c.post("/predict", content=chunks, headers=dict(ok, **{"content-type": "application/json"}))
        assert r.status_code == 413  # no length given: cut off once past the limit
        metrics = c.get("/metrics", headers=ok).text
        assert 'shardlearn_requests_total{code="413",route="/predict"} 2.0' in metrics
        assert "shardlearn_model_version 1.0" in metrics
    with Serving(make_app(Live(a)), "127.0.0.1", 0) as srv, httpx.Client(base_url=srv.address) as c:
        r = c.post("/predict", json={"instances": ["|f a:1", "1 |f a:x"]})
        assert r.status_code == 422 and r.json()["detail"][0]["msg"] == \
            "instances[1]: feature value 'x' is not a number"
        r = c.post("/predict", json={"instances": ["|f a:1"], "id": "q"})
        assert r.status_code == 422 and "only while learning" in r.text  # serve only: no feedback


def test_feedback_keeps_features_for_a_ttl_and_counts_expiry():
    import scipy.sparse as sp

    fb = Feedback(ttl_s=0.2, max_pending=2)
    fb.remember(["a", "b", "c"], sp.csr_matrix(np.eye(3)))
    assert fb.counts["dropped"] == 1 and fb.pending() == 2  # 'a', the oldest, made room
    assert fb.label("c", 1.0) and not fb.label("a", 1.0)
    time.sleep(0.3)
    assert not fb.label("b", 0.0) and fb.counts["expired"] == 1
    block = fb.take(2)
    assert block.X.toarray().tolist() == [[0, 0, 1, 0]] and block.y.tolist() == [1.0] and fb.take(2) is None


_schema_app = make_app(Live(_two_models()[0]), feedback=Feedback())
schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_app)


OPERATIONS = [("POST", "/predict"), ("POST", "/feedback"), ("GET", "/health"), ("GET", "/model"), ("GET", "/metrics")]


def test_the_schema_documents_exactly_the_operations_fuzzed_below():
    assert sorted((r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()) == sorted(OPERATIONS)


def _holds_for_any_request(method, path):
    """A test of one operation, by schemathesis's phases (examples, coverage, fuzzing): no 5xx,
    every status and body as the schema documents them. A schema-valid instance may still be a
    bad VW line or a label that is no number: those get the documented 422, so the check that
    schema-valid data is always accepted does not apply. A test function an operation, since
    ``schema.parametrize()`` gives all operations one node id, which pytest-xdist cannot tell
    apart (it ran one of the five)."""
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    @schema.include(method=method, path=path).parametrize()
    def test(case):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    return test


test_the_openapi_schema_holds_for_any_predict_request = _holds_for_any_request("POST", "/predict")
test_the_openapi_schema_holds_for_any_feedback_request = _holds_for_any_request("POST", "/feedback")
test_the_openapi_schema_holds_for_any_health_request = _holds_for_any_request("GET", "/health")
test_the_openapi_schema_holds_for_any_model_request = _holds_for_any_request("GET", "/model")
test_the_openapi_schema_holds_for_any_metrics_request = _holds_for_any_request("GET", "/metrics")


def _start(args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "shardlearn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or ENV, **kw)


def _address(proc, timeout=120):
    """The address the process prints once it listens."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stderr.readline()
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no address: {proc.stderr.read()}")


@contextlib.contextmanager
def _ended(proc):
    """``proc`` (and, when it leads a session, its learners) killed if the test fails before it stops it."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(proc.pid) == proc.pid:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
            proc.communicate(timeout=30)


def _wait_for(c, want, timeout=60, **headers):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = c.get("/model", headers=headers).json()
        if want(got):
            return got
        time.sleep(0.1)
    raise AssertionError(f"/model never got there: {got}")


def test_learn_serve_learns_predicts_takes_feedback_and_stops_on_sigterm(tmp_path):
    src = tmp_path / "s.vw"
    _write(src, "vw", LINES)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("")
    proc = _start(["learn", str(src), "--follow", "--model-dir", str(tmp_path / "m"), "--hash-bits", "12",
                   "--serve", "127.0.0.1:0", "--checkpoint-every", "0.2s", "--quiet", "--feedback-from", str(labels)],
                  env=dict(ENV, SHARDLEARN_TOKEN="tok"))
    addr = _address(proc)
    auth = {"Authorization": "Bearer tok"}
    with _ended(proc), httpx.Client(base_url=addr, headers=auth, timeout=30) as c:
        first = _wait_for(c, lambda m: m["examples"] == LINES)
        assert first["origin"] == "learner" and first["model_version"] >= 1  # a snapshot per checkpoint
        r = c.post("/predict", json={"instances": ["|f a:2 b:1 |c k2", "|f a:-2 b:-1"], "id": ["p", "n"]})
        p = r.json()["predictions"]
        assert p[0] > 0.8 and p[1] < 0.2
        assert c.post("/feedback", json={"id": "p", "label": -1}).json() == {"id": "p", "accepted": True}
        assert c.post("/feedback", json={"id": "p", "label": -1}).status_code == 404  # labelled once only
        with open(labels, "a") as f:  # the labels stream: n's label, an unknown id, a line that is none
            f.write('{"id": "n", "label": 1}\n{"id": "zz", "label": 0}\n{"id": "x", "label": "yes"}\n')
        with open(src, "a") as f:  # more lines, so a checkpoint publishes the feedback with them
            f.write("".join(open(src).readlines()[:100]))
        after = _wait_for(c, lambda m: m["examples"] == LINES + 102)
        assert after["model_version"] > first["model_version"]
        assert after["feedback"]["learned"] == 2 and after["feedback"]["bad_label_lines"] == 1
        assert after["feedback"]["unknown"] == 2  # p labelled a second time, and zz
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["stopped_by_signal"] and summary["examples"] == LINES + 102
    assert summary["serving"]["feedback"]["learned"] == 2
    model = shardlearn.load(str(tmp_path / "m"))  # the last checkpoint holds both delayed examples
    assert model.n_seen_ == LINES + 102


def test_serve_swaps_in_each_checkpoint_a_learner_commits(tmp_path):
    src = tmp_path / "s.jsonl"
    _write(src, "jsonl", 200)
    learner = _start(["learn", str(src), "--format", "jsonl", "--label", "y", "--follow", "--model-dir",
                      str(tmp_path / "m"), "--checkpoint-every", "50", "--quiet"])
    deadline = time.monotonic() + 120
    while snapshot.newest(str(tmp_path / "m")) < 1 and time.monotonic() < deadline:  # the file, learned
        time.sleep(0.1)
    server = _start(["serve", str(tmp_path / "m"), "--bind", "127.0.0.1:0"])
    with _ended(learner), _ended(server):
        addr = _address(server)
        with httpx.Client(base_url=addr, timeout=30) as c:
            before = c.get("/model").json()
            assert before["examples"] == 200 and before["origin"] == "checkpoint"
            with open(src, "a") as f:
                f.write("".join(open(src).readlines()[:100]))
            after = _wait_for(c, lambda m: m["examples"] == 300)
            assert after["model_version"] > before["model_version"]
            r = c.post("/predict", json={"instances": [{"a": 2.0, "f": {"b": 1.0}, "k": "k2"}]})
            assert r.json()["model_version"] == after["model_version"] and r.json()["predictions"][0] > 0.5
        for p in (learner, server):
            p.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        learner.communicate(timeout=60)


def test_many_learners_serve_the_parameter_servers_model(tmp_path):
    src = tmp_path / "s.vw"
    _write(src, "vw", LINES)
    proc = _start(["learn", str(src), "--follow", "--workers", "2", "--model-dir", str(tmp_path / "m"),
                   "--hash-bits", "12", "--batch-size", "64", "--serve", "127.0.0.1:0", "--serve-staleness", "0.2",
                   "--quiet"], start_new_session=True)
    with _ended(proc):
        addr = _address(proc)
        with httpx.Client(base_url=addr, timeout=30) as c:
            got = _wait_for(c, lambda m: m["examples"] == LINES)
            assert got["origin"] == "parameter server" and got["staleness_bound_s"] == 0.2
            time.sleep(0.5)  # one more pull after the last push
            served = c.post("/predict", json={"instances": _instances(src, "vw")}).json()["predictions"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["serving"]["swaps"] >= 2
    model = shardlearn.load(str(tmp_path / "m"))  # the shards' state at the end: nothing learned since
    block = formats.Parser("vw", bits=12).block(open(src, "rb").read(), where=str)
    np.testing.assert_allclose(served, model._proba(model._scores(block.X)), rtol=1e-9)
