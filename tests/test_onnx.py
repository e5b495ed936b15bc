"""ONNX export (issue 20, item 1): onnxruntime's answers equal predict / predict_proba to
1e-5 on a9a (LIBSVM rows) and kddcup99 (CSV columns, one-hot and hashed encodings, unseen
categories), for every model kind; what cannot be exported is refused in one line."""
import json
import sys

import numpy as np
import pandas as pd
import pytest

import shardlearn
import shardlearn.data as sd
from shardlearn import LinearRegression, LinearSVC, LogisticRegression
from shardlearn.cli import main
from shardlearn.core.errors import ConfigError
from tests.conftest import data_path

ort = pytest.importorskip("onnxruntime")


def _run(path, feeds):
    s = ort.InferenceSession(path)
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def test_a9a_through_the_cli(tmp_path, capsys):
    train, test = data_path("a9a", "a9a"), data_path("a9a", "a9a.t")
    assert main(["train", train, "--alpha", "1e-5", "--out", str(tmp_path / "m")]) == 0
    assert main(["export", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    capsys.readouterr()
    est = shardlearn.load(str(tmp_path / "m"))
    X, _ = sd.open(test, n_features=est.n_features_in_).read()
    got = _run(str(tmp_path / "m.onnx"), {"X": X.toarray()})
    np.testing.assert_allclose(got["probabilities"], est.predict_proba(X), atol=1e-5)
    assert (got["label"] == est.predict(X)).all() and got["label"].dtype == np.int64


@pytest.mark.parametrize("encoding", [["--encoding", "onehot"], ["--encoding", "hash", "--hash-bits", "12"]])
def test_kddcup99_columns_one_hot_and_hashed(tmp_path, capsys, encoding):
    train, test = data_path("kddcup99", "kddcup.data_10_percent.gz"), data_path("kddcup99", "corrected.gz")
    assert main(["train", train, "--no-header", "--label", "41", "--categorical", "1,2,3", "--positive-label",
                 "normal.", "--alpha", "1e-6", "--out", str(tmp_path / "m"), *encoding]) == 0
    assert main(["export", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["inputs"][:3] == ["0", "4", "5"] and summary["inputs"][-3:] == ["1", "2", "3"]
    n = 20000
    raw = pd.read_csv(test, header=None, nrows=n)
    raw.loc[0, 2] = "a-service-never-seen"  # an unknown category: no contribution, as predict does
    feeds = {str(c): (raw[c].astype(str).to_numpy(dtype=object) if c in (1, 2, 3) else
                      raw[c].to_numpy(dtype=np.float64))[:, None] for c in range(41)}
    est = shardlearn.load(str(tmp_path / "m"))
    from shardlearn.core import modelfile
    from shardlearn.data import Encoder

    enc = Encoder.from_json(modelfile.read(str(tmp_path / "m"))[0]["training"]["encoder"])
    X = enc.transform({c: feeds[c][:, 0] for c in feeds})
    got = _run(str(tmp_path / "m.onnx"), feeds)
    np.testing.assert_allclose(got["probabilities"], est.predict_proba(X), atol=1e-5)
    assert (got["label"] == est.predict(X)).all()


@pytest.mark.parametrize("est,labels", [
    (LinearRegression(alpha=0.1), None), (LogisticRegression(), ["no", "yes"]), (LogisticRegression(), [3, 5, 9]),
    (LinearSVC(), [0, 1]), (LinearSVC(loss="hinge"), ["a", "b", "c"])])
def test_every_model_kind(tmp_path, est, labels):
    rng = np.random.default_rng(0)
    scale = np.array([1, 10, 100, 0.1, 1, 1])
    X = rng.normal(size=(400, 6)) * scale
    z = X @ (rng.normal(size=6) / scale) * 3
    cuts = np.quantile(z, np.linspace(0, 1, 1 + (len(labels) if labels else 2))[1:-1])
    y = z if labels is None else np.asarray(labels)[np.digitize(z, cuts)]
    est.fit(X, y)
    est.to_onnx(str(tmp_path / "m.onnx"))
    got = _run(str(tmp_path / "m.onnx"), {"X": X})
    if labels is None:
        np.testing.assert_allclose(got["variable"], est.predict(X), rtol=1e-9, atol=1e-9)
        return
    assert (got["label"] == est.predict(X)).all()
    if "probabilities" in got:
        np.testing.assert_allclose(got["probabilities"], est.predict_proba(X), atol=1e-9)
    else:
        np.testing.assert_allclose(got["scores"], est.decision_function(X), atol=1e-9)


def test_what_cannot_be_exported_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    X, y, t = rng.normal(size=(60, 2)), rng.normal(size=60), rng.integers(3, size=60)
    shardlearn.MultiTaskLinearRegression().fit(X, y, tasks=t).save(str(tmp_path / "mt"))
    assert main(["export", str(tmp_path / "mt"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "a MultiTaskLinearRegression cannot be exported to ONNX: linear, logistic and SVM models only" in err
    assert err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "onnx", None)  # not installed
    with pytest.raises(ConfigError, match=r"ONNX export needs the onnx package: pip install 'shardlearn\[onnx\]'"):
        LinearRegression().fit(X, y).to_onnx(str(tmp_path / "y.onnx"))
