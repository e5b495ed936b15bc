"""Partitioners: shards are disjoint and cover every row once, for any n and k
(k > n included); stratified keeps class proportions; hash keeps keys together;
byte-range LIBSVM shards equal a whole-file parse."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shardlearn.data as sd
from shardlearn.data import libsvm
from tests.conftest import data_path


def _all(fn, k):
    return [fn(r) for r in range(k)]


def _assert_partition(shards, n):
    joined = np.concatenate(shards) if shards else np.zeros(0, int)
    assert joined.size == n
    assert np.array_equal(np.sort(joined), np.arange(n))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), k=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_contiguous_and_random_cover_every_row_once(n, k, seed):
    for shards in (_all(lambda r: sd.contiguous(n, k, r), k), _all(lambda r: sd.random(n, k, r, seed=seed), k)):
        _assert_partition(shards, n)
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1
    # random: the seeded permutation dealt round-robin, each shard's rows in file order
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
    for r in range(k):
        assert np.array_equal(sd.random(n, k, r, seed=seed), np.sort(perm[r::k]))


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.integers(0, 4), max_size=300), k=st.integers(1, 9), seed=st.integers(0, 1000))
def test_stratified_keeps_proportions_within_one_row_per_class(labels, k, seed):
    y = np.asarray(labels, dtype=int)
    shards = _all(lambda r: sd.stratified(y, k, r, seed=seed), k)
    _assert_partition(shards, len(y))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1 if len(y) else True
    for c in np.unique(y):
        per_shard = [int(np.sum(y[s] == c)) for s in shards]
        total = int(np.sum(y == c))
        for count, size in zip(per_shard, sizes):
            assert abs(count - total / k) <= 1  # each shard gets its share of every class, to within one row


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.sampled_from(["a", "b", "c", "d", "e", 7, 8]), max_size=200), k=st.integers(1, 6))
def test_hash_keeps_keys_together(keys, k):
    keys = np.asarray([str(x) for x in keys])
    shards = _all(lambda r: sd.hash_keys(keys, k, r), k)
    _assert_partition(shards, len(keys))
    owner = {}
    for r, s in enumerate(shards):
        for key in keys[s]:
            assert owner.setdefault(key, r) == r


def test_hash_is_stable_across_processes():
    import subprocess
    import sys

    code = "import shardlearn.data as sd; print(sd.hash_keys(['tcp', 'udp', 'icmp', 'x1'], 3, 0).tolist())"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": str(s), "PATH": ""}).stdout for s in (1, 2)}
    assert len(outs) == 1 and outs.pop().strip() == str(sd.hash_keys(["tcp", "udp", "icmp", "x1"], 3, 0).tolist())


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from([-1, 1]), st.lists(st.integers(1, 30), max_size=6, unique=True)),
                     min_size=0, max_size=40),
       k=st.integers(1, 8), crlf=st.booleans(), final_newline=st.booleans())
def test_libsvm_byte_ranges_equal_whole_parse(tmp_path_factory, rows, k, crlf, final_newline):
    nl = "\r\n" if crlf else "\n"
    lines = [f"{y} " + " ".join(f"{i}:{i / 7:.3f}" for i in sorted(ix)) for y, ix in rows]
    text = nl.join(lines) + (nl if final_newline and lines else "")
    path = tmp_path_factory.mktemp("svm") / "d.svm"
    path.write_text(text, newline="")
    whole_X, whole_y, _ = libsvm.parse_range(str(path), 0, path.stat().st_size, zero_based=False, n_features=30)
    parts = [libsvm.parse_range(str(path), a, b, zero_based=False, n_features=30) for a, b in libsvm.split(str(path), k)]
    assert sum(p[0].shape[0] for p in parts) == len(rows) == whole_X.shape[0]
    if rows:
        import scipy.sparse as sp

        assert (sp.vstack([p[0] for p in parts]) != whole_X).nnz == 0
        assert np.array_equal(np.concatenate([p[1] for p in parts]), whole_y)


@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("partition", ["contiguous", "random", "stratified"])
def test_a9a_shards_cover_the_file(k, partition):
    src = sd.open(data_path("a9a", "a9a"))
    X, y = src.read()
    assert X.shape == (32561, 123) and src.zero_based is False
    parts = [src.shard(k, r, partition, seed=5).read() for r in range(k)]
    assert sum(p[0].shape[0] for p in parts) == 32561
    assert sum(p[0].nnz for p in parts) == X.nnz
    assert sorted(np.concatenate([p[1] for p in parts]).tolist()) == sorted(y.tolist())


def test_contiguous_libsvm_shard_reads_only_its_bytes():
    path = data_path("a9a", "a9a")
    import os

    size = os.path.getsize(path)
    src = sd.open(path)
    src.bytes_read = 0
    shard = src.shard(4, 1)
    X, y = shard.read()
    assert src.bytes_read < size / 4 + 1000  # a quarter of the file, not all of it
    whole_X, whole_y = src.read()
    start = sum(src.shard(4, r).n_rows for r in range(1))
    assert np.array_equal(y, whole_y[start : start + X.shape[0]])
