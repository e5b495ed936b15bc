"""Sources and bad input: every problem is a one-line DataError naming the file and
line (or row and column) and what was expected."""
import gzip

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import shardlearn.data as sd
from shardlearn import DataError, LogisticRegression
from shardlearn.cli import main
from tests.conftest import data_path


def _write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, newline="")
    return str(p)


@pytest.mark.parametrize("name, content, label, msg", [
    ("empty.csv", "", "y", "the file is empty"),
    ("header.csv", "a,b,y\n", "y", "no data rows (header only?)"),
    ("ragged.csv", "a,b,y\n1,2,0\n3,4\n5,6,1\n", "y", "line 3: 2 fields, expected 3"),
    ("text.csv", "a,b,y\n1,2,0\n3,x,1\n", "y", "line 3, column 2 ('b'): 'x' is not a number"),
    ("nan.csv", "a,b,y\n1,2,0\n3,nan,1\n", "y", "line 3, column 2 ('b'): nan is not finite"),
    ("inf.csv", "a,b,y\n1,inf,0\n", "y", "line 2, column 2 ('b'): inf is not finite"),
    ("missing.csv", "a,b,y\n1,,0\n", "y", "line 2, column 2 ('b'): missing value"),
    ("nolabel.csv", "a,b,y\n1,2,0\n", "target", "label column 'target' not found (columns: a, b, y)"),
    ("zero.svm", "1 1:1\n-1 0:2\n", None, "line 2: index 0 in '0:2' in a 1-based file"),
    ("neg.svm", "1 1:1 3:1\n1 -2:1 4:1\n", None, "line 2: negative index -2"),
    ("frac.svm", "1 1:1 3:1\n1 1.5:1 4:1\n", None, "line 2: index '1.5' in '1.5:1' is not an integer"),
    ("colon.svm", "1 1:1 3:1\n1 2:1 abc\n", None, "line 2: token 'abc' has no colon; expected index:value"),
    ("dup.svm", "1 1:1 3:1\n\n1 2:1 2:3\n", None, "line 3: index 2 appears twice in one row"),
    ("svmnan.svm", "1 1:1 3:1\n1 2:nan\n", None, "line 2: value nan in '2:nan' is not finite"),
    ("svmlabel.svm", "1 1:1 3:1\nyes 2:1 4:1\n", None, "line 2: label 'yes' is not a number"),
    ("blank.svm", "\n# only a comment\n\n", None, "no data lines"),
])
def test_bad_input_is_a_one_line_error(tmp_path, name, content, label, msg):
    path = _write(tmp_path, name, content)
    options = {"zero_based": False} if name.endswith(".svm") else {}  # "auto" would call index 0 a 0-based file
    with pytest.raises(DataError) as e:
        sd.open(path, label, **options).read()
    text = str(e.value)
    assert msg in text, text
    assert text.startswith(path) and "\n" not in text


def test_missing_file_and_object_dtype(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        sd.open(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="X has dtype object; expected a numeric array"):
        sd.open(np.array([[1, "a"]], dtype=object), y=[0])


def test_crlf_missing_final_newline_and_blank_lines_just_work(tmp_path):
    p = _write(tmp_path, "d.csv", "a,b,y\r\n1,2,0\r\n\r\n3,4,1")
    X, y = sd.open(p, "y").read()
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]] and y.tolist() == [0, 1]
    p = _write(tmp_path, "d.svm", "1 1:1\r\n\r\n-1 2:3 qid:7 # c\r\n0 3:1")
    X, y = sd.open(p).read()
    assert X.shape == (3, 3) and y.tolist() == [1, -1, 0]


def test_truncated_gzip_is_an_error_not_silent_loss(tmp_path):
    blob = gzip.compress(b"a,b,y\n" + b"1,2,0\n3,4,1\n" * 5000)
    p = _write(tmp_path, "d.csv.gz", blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        sd.open(p, "y").read()


def test_skip_bad_rows_reports_counts(tmp_path):
    p = _write(tmp_path, "d.svm", "1 1:1\n1 0:2\n-1 2:1\n1 2:1 2:1\n-1 3:1\n")
    src = sd.open(p, zero_based=False, on_bad_row="skip")
    X, y = src.read()
    assert X.shape[0] == 3 and y.tolist() == [1, -1, -1]
    assert sum(src.skipped.values()) == 2
    p = _write(tmp_path, "d.csv", "a,y\n1,0\n2\n3,1,4\n4,1\n")
    src = sd.open(p, "y", on_bad_row="skip")
    X, y = src.read()
    assert X.ravel().tolist() == [1.0, 4.0] and src.skipped == {"wrong number of fields": 2}
    p = _write(tmp_path, "e.csv", "a,b,y\n1,2,0\n,3,1\nnan,4,0\n5,inf,1\n6,7,\n8,9,1\n")
    src = sd.open(p, "y", on_bad_row="skip")
    X, y = src.read()
    assert X.tolist() == [[1.0, 2.0], [8.0, 9.0]] and y.tolist() == [0, 1]
    assert src.skipped == {"missing value": 1, "NaN or Inf": 2, "missing label": 1}


def test_zero_based_files_and_feature_index_beyond_model(tmp_path):
    p = _write(tmp_path, "z.svm", "1 0:1 2:1\n0 1:1\n")
    src = sd.open(p)
    assert src.zero_based is True and src.n_features == 3
    with pytest.raises(DataError, match="feature index 5 in '5:1' is beyond the 3 features the model has"):
        sd.open(_write(tmp_path, "w.svm", "1 1:1\n0 5:1\n"), n_features=3, zero_based=False)


def test_parquet_directory_and_missing_label(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "pq"
    d.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"a": np.arange(5.0) + 5 * i, "y": np.arange(5) % 2}), d / f"part{i}.parquet")
    src = sd.open(str(d), "y")
    assert src.n_rows == 15
    src.row_groups_read = 0
    X, y = src.shard(2, 1).read()
    assert X.ravel().tolist() == [7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0]
    assert src.row_groups_read == 2  # the first file's row group holds none of this shard's rows: not read
    with pytest.raises(DataError, match="label column 'label' not found"):
        sd.open(str(d), "label")


def test_in_memory_sources_and_npz_memmap(tmp_path):
    import pandas as pd
    import pyarrow as pa

    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    for data in (df, pa.Table.from_pandas(df)):
        X, y = sd.open(data, "y").read()
        assert X.ravel().tolist() == [1.0, 2.0, 3.0] and y.tolist() == [0, 1, 0]
    Xs = sp.random(50, 7, density=0.3, format="csr", random_state=0)
    np.savez(tmp_path / "s.npz", data=Xs.data, indices=Xs.indices, indptr=Xs.indptr, shape=Xs.shape, y=np.arange(50) % 2)
    np.savez(tmp_path / "d.npz", X=Xs.toarray(), y=np.arange(50) % 2)
    a, b = sd.open(str(tmp_path / "s.npz")), sd.open(str(tmp_path / "d.npz"))
    assert isinstance(b.X, np.memmap)  # mapped, not loaded
    Xa, _ = a.shard(3, 2).read()
    Xb, _ = b.shard(3, 2).read()
    assert np.array_equal(Xa.toarray(), Xb)


def test_estimator_fit_accepts_a_source_or_shard():
    src = sd.open(data_path("a9a", "a9a"))
    est = LogisticRegression(alpha=1e-4).fit(src.shard(2, 0))
    X, y = src.shard(2, 0).read()
    ref = LogisticRegression(alpha=1e-4).fit(X, y)
    np.testing.assert_array_equal(est.coef_, ref.coef_)


def test_a9a_labels_mismatch_names_the_option(capsys, tmp_path):
    train, test = data_path("a9a", "a9a"), data_path("a9a", "a9a.t")
    assert main(["train", train, "--out", str(tmp_path / "m"), "--alpha", "1e-4"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m"), test]) == 2
    assert "--positive-label" in capsys.readouterr().err


def test_kddcup99_trains_to_a_sensible_accuracy(capsys, tmp_path):
    import json

    train, test = data_path("kddcup99", "kddcup.data_10_percent.gz"), data_path("kddcup99", "corrected.gz")
    for enc in (["--encoding", "onehot"], ["--encoding", "hash", "--hash-bits", "12"]):
        code = main(["train", train, "--no-header", "--label", "41", "--categorical", "1,2,3", "--positive-label",
                     "normal.", "--alpha", "1e-6", "--out", str(tmp_path / "m"), *enc])
        out = json.loads(capsys.readouterr().out)
        assert code == 0 and out["rows"] == 494021
        assert main(["evaluate", str(tmp_path / "m"), test]) == 0
        m = json.loads(capsys.readouterr().out)
        assert m["rows"] == 311029 and m["accuracy"] > 0.92 and m["auc"] > 0.95


@pytest.mark.parametrize("suffix, options", [(".svm", {"format": "libsvm"}), (".csv", {"label": 0})])
@settings(max_examples=150, deadline=None)
@given(blob=st.binary(max_size=300))
def test_parsers_raise_only_data_error_on_random_bytes(tmp_path_factory, suffix, options, blob):
    p = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    p.write_bytes(blob)
    try:
        sd.open(str(p), **options).read()
    except DataError:
        pass
