"""Namespace interactions (VW's ``-q``, issue 15): the compiled expansion against a plain
Python one; VW text, JSON lines and feature dicts give the same crossed features; and they
learn what a linear model without them cannot (an XOR of two namespaces)."""
import json

import numpy as np
import pytest

from shardlearn import ConfigError, OnlineLogisticRegression
from shardlearn.data import interactions
from shardlearn.online import features
from shardlearn.online.learn import learn


def _reference(idx, val, letters, pairs, bits):
    out_i, out_v = list(idx), list(val)
    for a, b in pairs:
        a, b = ord(a), ord(b)
        for i in range(len(idx)):
            for j in range(len(idx)):
                if letters[i] == a and letters[j] == b and (a != b or j > i):
                    out_i.append(((idx[i] * interactions.PRIME) ^ idx[j]) % (1 << bits))
                    out_v.append(val[i] * val[j])
    return out_i, out_v


def test_the_expansion_equals_a_plain_reference():
    rng = np.random.default_rng(0)
    pairs = ["ab", "aa", " b"]
    sizes = rng.integers(0, 7, 40)
    indptr = np.r_[0, np.cumsum(sizes)]
    idx = rng.integers(0, 1 << 12, indptr[-1])
    val = rng.normal(size=indptr[-1])
    letters = rng.choice(np.frombuffer(b"abc ", np.uint8), indptr[-1])
    p, i, v = interactions.expand(indptr, idx, val, letters, pairs, bits=12)
    for r in range(40):
        lo, hi = indptr[r], indptr[r + 1]
        ri, rv = _reference(idx[lo:hi], val[lo:hi], letters[lo:hi], pairs, 12)
        assert i[p[r]:p[r + 1]].tolist() == ri and v[p[r]:p[r + 1]].tolist() == pytest.approx(rv, rel=1e-15)


def _xor_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    u, a = rng.integers(0, 2, n), rng.integers(0, 2, n)
    return [({"user": {"g": f"u{x}"}, "ad": {"c": f"a{z}"}}, int(x ^ z)) for x, z in zip(u, a)]


def test_vw_text_json_lines_and_dicts_cross_the_same_features(tmp_path):
    rows = _xor_rows(3000)
    vw, js = tmp_path / "s.vw", tmp_path / "s.jsonl"
    vw.write_text("".join(f"{1 if y else -1} |user g={x['user']['g']} |ad c={x['ad']['c']}\n" for x, y in rows))
    js.write_text("".join(json.dumps(dict(x, y=y)) + "\n" for x, y in rows))
    ref = OnlineLogisticRegression(hash_bits=14, interactions=["ua"])
    for x, y in rows:
        ref.learn_one({"user": {"g=" + x["user"]["g"]: 1.0}, "ad": {"c=" + x["ad"]["c"]: 1.0}}, y)
    from_vw = OnlineLogisticRegression(hash_bits=14, interactions=["ua"])
    learn(str(vw), from_vw, fmt="vw", model_dir=str(tmp_path / "v"))
    np.testing.assert_array_equal(from_vw._state["ws"], ref._state["ws"])
    dicts = OnlineLogisticRegression(hash_bits=14, interactions=["ua"])
    for x, y in rows:
        dicts.learn_one(x, y)  # a string value is the category "name=value": the same columns
    np.testing.assert_array_equal(dicts._state["ws"], ref._state["ws"])
    from_json = OnlineLogisticRegression(hash_bits=14, interactions=["ua"])
    learn(str(js), from_json, fmt="jsonl", label="y", model_dir=str(tmp_path / "j"))
    np.testing.assert_array_equal(from_json._state["ws"], ref._state["ws"])


def test_an_xor_of_two_namespaces_needs_the_interaction(tmp_path):
    rows = _xor_rows(4000, seed=1)
    plain, crossed = OnlineLogisticRegression(hash_bits=14), OnlineLogisticRegression(hash_bits=14,
                                                                                      interactions=["ua"])
    for x, y in rows:
        plain.learn_one(x, y)
        crossed.learn_one(x, y)
    assert plain.progressive_loss_ > 0.65 and crossed.progressive_loss_ < 0.1
    assert crossed.predict_one({"user": {"g": "u1"}, "ad": {"c": "a0"}}) == 1
    assert crossed.predict_one({"user": {"g": "u1"}, "ad": {"c": "a1"}}) == 0
    idx, _ = features.one({"user": {"g": "u1"}, "ad": {"c": "a0"}}, 14, ["ua"])
    assert idx.size == 3


def test_a_bad_pair_is_one_line():
    with pytest.raises(ConfigError, match="interactions: an interaction is two namespace initials, like 'ab'; "
                                          "got 'abc'"):
        OnlineLogisticRegression(interactions=["abc"])
