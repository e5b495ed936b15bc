"""Model files: save, load, predict gives identical outputs; loading never unpickles;
tampered and truncated files are clear errors."""
import json
import os
import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits

import shardlearn
from shardlearn import LinearRegression, LinearSVC, LogisticRegression


def _fitted():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    yield LogisticRegression(alpha=1e-3).fit(X, y), X
    yield LogisticRegression(alpha=1e-3).fit(X, y % 2), X
    yield LogisticRegression(alpha=1e-3).fit(X, np.where(y % 2, "odd", "even")), X
    yield LinearSVC(alpha=1e-3).fit(X, y), X
    yield LinearRegression(alpha=1e-3).fit(X, y.astype(float)), X


@pytest.mark.parametrize("case", range(5))
def test_roundtrip_is_identical(tmp_path, case, monkeypatch):
    est, X = list(_fitted())[case]
    est.save(tmp_path / "m")

    def no_pickle(*a, **k):
        raise AssertionError("loading a model must not unpickle")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    back = shardlearn.load(tmp_path / "m")
    assert type(back) is type(est)
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_array_equal(back.coef_, est.coef_)
    if hasattr(est, "predict_proba"):
        np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    if hasattr(est, "classes_"):
        assert back.classes_.tolist() == est.classes_.tolist()
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["kind"] == type(est).__name__ and meta["n_features_in"] == 64 and meta["format_version"] == 1


def _saved(tmp_path):
    X, y = load_digits(return_X_y=True)
    LogisticRegression().fit(X, y % 2).save(tmp_path / "m")
    return tmp_path / "m"


def test_flipped_byte_is_rejected(tmp_path):
    d = _saved(tmp_path)
    blob = bytearray((d / "params.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (d / "params.npz").write_bytes(bytes(blob))
    with pytest.raises(shardlearn.ModelFileError, match="checksum does not match model.json; the file is truncated"):
        shardlearn.load(d)


def test_truncated_file_is_rejected(tmp_path):
    d = _saved(tmp_path)
    blob = (d / "params.npz").read_bytes()
    (d / "params.npz").write_bytes(blob[:100])
    with pytest.raises(shardlearn.ModelFileError, match="checksum does not match"):
        shardlearn.load(d)


def test_pickled_arrays_are_refused_even_with_a_matching_checksum(tmp_path):
    import hashlib
    import io

    d = _saved(tmp_path)
    buf = io.BytesIO()
    np.savez(buf, coef=np.array([object()], dtype=object), intercept=np.zeros(1), classes=np.arange(2))
    (d / "params.npz").write_bytes(buf.getvalue())
    meta = json.loads((d / "model.json").read_text())
    meta["arrays_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (d / "model.json").write_text(json.dumps(_signed(meta)))
    with pytest.raises(shardlearn.ModelFileError, match="cannot be read without pickle"):
        shardlearn.load(d)


@pytest.mark.parametrize("edit, msg", [
    (lambda m: m.update(format_version=99), "format_version 99 is not supported"),
    (lambda m: m.update(kind="RandomForest"), "unknown model kind 'RandomForest'"),
    (lambda m: m.update(n_features_in=3), "coef has 64 features but model.json says 3"),
])
def test_bad_metadata(tmp_path, edit, msg):
    d = _saved(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    edit(meta)
    (d / "model.json").write_text(json.dumps(_signed(meta)))  # as a faulty writer would: checksum right, content wrong
    with pytest.raises(shardlearn.ModelFileError, match=msg):
        shardlearn.load(d)


def _signed(meta):
    from shardlearn.core.modelfile import _meta_digest

    return dict(meta, meta_sha256=_meta_digest(meta))


@pytest.mark.parametrize("edit", [lambda m: m["hyper_parameters"].update(alpha=0.5), lambda m: m.update(n_iter=7),
                                  lambda m: m.pop("meta_sha256")])
def test_edited_model_json_is_refused(tmp_path, edit):
    # issue 13: model.json was not covered by a checksum, and an edited alpha loaded silently
    d = _saved(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    edit(meta)
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(shardlearn.ModelFileError, match="model.json: checksum does not match its contents"):
        shardlearn.load(d)


def test_missing_files(tmp_path):
    with pytest.raises(shardlearn.ModelFileError, match="no such model directory"):
        shardlearn.load(tmp_path / "nothing")
    d = _saved(tmp_path)
    os.remove(d / "params.npz")
    with pytest.raises(shardlearn.ModelFileError, match="params.npz: missing"):
        shardlearn.load(d)
