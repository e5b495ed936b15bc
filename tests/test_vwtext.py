"""Vowpal Wabbit's text format (issue 15, inputs): the compiled parser gives the columns and
values a feature dict gives, numbers exactly as Python reads them, and a reason and the
culprit's text for each bad line."""
import random

import numpy as np
import pytest
from sklearn.utils import murmurhash3_32

from shardlearn.data import vwtext
from shardlearn.data.vwtext import hash_bytes
from shardlearn.online import features


def test_murmur_matches_scikit_learns_on_utf8():
    rng = random.Random(0)
    for _ in range(2000):
        s = "".join(rng.choice("abcxyz019_=:é€ 𝛼") for _ in range(rng.randint(0, 15)))
        seed = rng.choice([0, 1, 7, 2**31 - 1, 2**32 - 1, features.seed("user")])
        b = np.frombuffer(s.encode(), dtype=np.uint8)
        assert int(hash_bytes(b, 0, b.size, seed)) == murmurhash3_32(s, seed=seed, positive=True)


def _fmt(v, rng):
    return rng.choice([repr(v), f"{v:.3e}", f"{v:.6f}", f"{v:g}", f"{v:.17g}"])


def test_lines_parse_to_the_columns_and_values_of_the_same_dicts():
    rng = random.Random(1)
    lines, dicts, labels, weights = [], [], [], []
    for r in range(300):
        label, weight = rng.choice([-1.0, 1.0]), rng.choice([None, 0.25, 3.0])
        parts, d = [], {}
        for ns in rng.sample(["", "user", "ad", "ctx"], rng.randint(1, 3)):
            feats = {}
            text = []
            for name in rng.sample(["id", "price", "x1", "n", "é3", "17", "w_9"], rng.randint(0, 4)):
                v = rng.choice([1.0, rng.uniform(-1e3, 1e3), rng.uniform(-1e-6, 1e-6), 12345678.123456789e10])
                s = _fmt(v, rng)
                feats[name] = float(s)  # the dict holds the number the text says
                text.append(name if v == 1.0 and rng.random() < 0.5 else f"{name}:{s}")
            d.update(feats) if ns == "" else d.setdefault(ns, {}).update(feats)
            parts.append(f"|{ns} " + " ".join(text))
        head = f"{label:g}" + ("" if weight is None else f" {weight}") + rng.choice(["", " 'tag7"])
        lines.append(head + " " + " ".join(parts) + rng.choice(["", "\r"]))
        dicts.append(d)
        labels.append(label)
        weights.append(1.0 if weight is None else weight)
    text = ("\n".join(lines) + "\n\n").encode()
    r = vwtext.parse(text, bits=20)
    assert (r.status == vwtext.OK).all() and r.labels.tolist() == labels and r.weights.tolist() == weights
    for i, d in enumerate(dicts):
        idx, val = features.one(d, 20)
        got = slice(r.indptr[i], r.indptr[i + 1])
        assert r.indices[got].tolist() == idx.tolist() and r.values[got].tolist() == val.tolist()
    assert r.ends[-1] == len(text) - 1 and r.lines.tolist() == list(range(300))


@pytest.mark.parametrize("s", ["0", "-0.0", ".5", "5.", "+3", "1e22", "1e23", "123456789012345678901",
                               "0.1", "3.14159265358979323846", "1e-300", "4.9e-324", "2.2250738585072014e-308",
                               "9007199254740993", "0.000000000000000000000000123", "-1E+5", "7e-23"])
def test_numbers_are_read_as_python_reads_them(s):
    r = vwtext.parse(f"{s} |a x:{s}\n".encode(), bits=10)
    assert r.status[0] == vwtext.OK
    assert r.labels[0] == float(s)
    assert (r.values.tolist() == [float(s)]) if float(s) != 0 else r.values.size == 0


@pytest.mark.parametrize("line, reason, culprit", [
    ("1 |a x:0x10", vwtext.BAD_VALUE, "0x10"), ("1 |a x:1e", vwtext.BAD_VALUE, "1e"),
    ("1 |a x:", vwtext.BAD_VALUE, ""), ("1 |a x:1.2.3", vwtext.BAD_VALUE, "1.2.3"),
    ("1 |a x:nan", vwtext.NOT_FINITE, "nan"), ("1 |a x:-Inf", vwtext.NOT_FINITE, "-Inf"),
    ("1 |a x:1e400", vwtext.NOT_FINITE, "1e400"), ("yes |a x", vwtext.BAD_LABEL, "yes"),
    ("1 2.5x 'tag |a x", vwtext.BAD_WEIGHT, "2.5x"), ("1 2 3 |a x", vwtext.BAD_HEADER, "3"),
    ("1 a:1 b:2", vwtext.NO_BAR, "1 a:1 b:2"), ("1 |a:z x", vwtext.BAD_SCALE, "z"),
    ("NaN |a x", vwtext.NOT_FINITE, "NaN"),
])
def test_a_bad_line_has_a_reason_and_its_culprit(line, reason, culprit):
    text = f"1 |a ok\n{line}\n-1 |a ok\n".encode()
    r = vwtext.parse(text, bits=10)
    assert r.status.tolist() == [vwtext.OK, reason, vwtext.OK] and r.lines.tolist() == [0, 1, 2]
    assert text[r.culprit[1, 0]:r.culprit[1, 1]].decode() == culprit
    X, labels, weights, lines = vwtext.examples(r, 10)
    assert X.shape[0] == 2 and X.nnz == 2 and lines.tolist() == [0, 2] and labels.tolist() == [1.0, -1.0]
    assert vwtext.bad_line(r, 1, text)


def test_unlabelled_lines_namespace_scales_and_the_default_namespace():
    r = vwtext.parse(b"| a b:2\n|ns:0.5 c:4\n1 |ns c:4", bits=18)
    assert np.isnan(r.labels[:2]).all() and r.labels[2] == 1.0
    assert r.values.tolist() == [1.0, 2.0, 2.0, 4.0]
    assert r.indices[2] == r.indices[3] == features.column("c", "ns", 18)
    assert r.indices[0] == features.column("a", "", 18) and r.ends.tolist() == [8, 20, 29]


def test_a_name_of_digits_is_its_number_as_vw_hashes_it():
    mask = (1 << 18) - 1
    assert features.column("123", "", 18) == features.column(123, "", 18) == 123
    assert features.column("0123", "user", 18) == (123 + features.seed("user")) & mask
    assert features.column("12a", "", 18) == murmurhash3_32("12a", seed=0, positive=True) & mask
    r = vwtext.parse(b"1 |user 123:2 0123 12a |  7\n", bits=18)
    assert r.indices.tolist() == [features.column("123", "user", 18)] * 2 + [features.column("12a", "user", 18), 7]
