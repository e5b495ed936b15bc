"""The command line with 1 and with 2 workers: the same checks, the same one-line errors, the
same counts of skipped rows (issue 13). Every case runs real worker processes for 2."""
import gzip
import json

import numpy as np
import pytest

from shardlearn.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _csv(rows=200, bad=None, header="a,b,target", sep=","):
    """``rows`` data rows; ``bad``: {row index: the line's text}; line = row + 2."""
    lines = [header.replace(",", sep)]
    for i in range(rows):
        line = (bad or {}).get(i, f"{i % 7},{(i * 3) % 5},{i % 2}")
        lines.append(line.replace(",", sep))
    return "\n".join(lines) + "\n"


CASES = {
    # name: (file name, text, extra options, message)
    "hash bits": ("d.csv", _csv(), ["--categorical", "b", "--encoding", "hash", "--hash-bits", "100"],
                  "hash_bits must be an integer from 1 to 30 (2**bits hashed columns), got 100"),
    "one class": ("d.csv", "a,b,target\n" + "".join(f"{i},{i % 3},1\n" for i in range(40)), [],
                  "d.csv: every label is 1; a classifier needs at least 2 classes (is --label the right column?)"),
    "three labels": ("d.csv", "a,b,target\n" + "".join(f"{i},{i % 3},{i % 3}\n" for i in range(40)), [],
                     "3 distinct labels for the binary model 'logistic'; use --model softmax"),
    # line 121 is row 119: the second worker's with 2 (it reported line 21, its own shard's)
    "nan in the second half": ("d.csv", _csv(bad={119: "3,nan,1"}), [],
                               "d.csv: line 121, column 2 ('b'): nan is not finite (NaN and Inf are not accepted)"),
    "missing in the first half": ("d.csv", _csv(bad={60: "3,,1"}), [],
                                  "d.csv: line 62, column 2 ('b'): missing value; expected a number"),
    "missing label": ("d.csv", _csv(bad={150: "3,4,"}), [], "d.csv: line 152, column 3 ('target'): missing label"),
    "text in a number column": ("d.csv", _csv(bad={170: "3,abc,1"}), [],
                                "d.csv: line 172, column 2 ('b'): 'abc' is not a number; expected a number"),
    "wrong field count": ("d.csv", _csv(bad={130: "3,4,1,9"}), [], "d.csv: line 132: 4 fields, expected 3"),
    "label not found": ("d.csv", _csv(), ["--label", "nope"], "label column 'nope' not found (columns: a, b, target)"),
    "index 0 in a 1-based file": ("d.svm", "1 1:1 2:3\n0 2:1\n" * 30 + "1 0:2 3:1\n" + "0 1:1\n" * 30,
                                  ["--zero-based", "no"], "d.svm: line 61: index 0 in '0:2' in a 1-based file"),
    "index too large": ("d.svm", "1 1:1 2:3\n0 2:1\n" * 30 + "1 3000000000:2\n" + "0 1:1\n" * 30, [],
                        "d.svm: line 61: index 3000000000 in '3000000000:2' is too large (at most 2,147,483,646)"),
    "bad libsvm value": ("d.svm", "1 1:1 2:3\n0 2:1\n" * 30 + "0 1:1\n" * 20 + "1 4:x\n", [],
                         "d.svm: line 81: value 'x' in '4:x' is not a number"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_error_with_one_or_two_workers(tmp_path, capsys, case):
    name, text, options, message = CASES[case]
    path = tmp_path / name
    path.write_text(text)
    label = [] if name.endswith(".svm") or "--label" in options else ["--label", "target"]
    errors = []
    for workers in ("1", "2"):
        code, _, err = _run(capsys, "train", str(path), *label, "--workers", workers, *options,
                            "--out", str(tmp_path / f"m{workers}"))
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        errors.append(err)
    assert errors[0] == errors[1], errors
    assert message in errors[0], errors[0]
    assert "worker rank" not in errors[0]


def test_data_errors_come_before_any_worker_starts(tmp_path, capsys):
    from shardlearn.runtime import group

    group.shutdown()
    (tmp_path / "d.csv").write_text(_csv())
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("x")
    (tmp_path / "m").write_text("a file")
    for argv, message in (
        ([str(tmp_path / "d.csv"), "--label", "nope"], "label column 'nope' not found"),
        ([str(tmp_path / "folder"), "--label", "target"], "folder: a directory with no Parquet files; expected a "
                                                          "data file or a directory of .parquet files"),
        ([str(tmp_path / "d.csv"), "--label", "target", "--hash-bits", "0", "--encoding", "hash"], "hash_bits"),
        ([str(tmp_path / "d.csv"), "--label", "target", "--delimiter", "ab"], "delimiter must be one character"),
    ):
        code, _, err = _run(capsys, "train", *argv, "--workers", "2", "--out", str(tmp_path / "out"))
        assert code == 2 and message in err, err
        assert not group._GROUPS, "a worker group was started for an error the driver can see"
    code, _, err = _run(capsys, "train", str(tmp_path / "d.csv"), "--label", "target", "--out", str(tmp_path / "m"))
    assert code == 2 and "m: exists and is not a directory; --out names a model directory to write" in err
    assert (tmp_path / "m").read_text() == "a file"


def test_skip_counts_are_summed_over_workers_and_text_is_skipped_like_any_bad_row(tmp_path, capsys):
    bad = {10: "3,,1", 40: "3,nan,0", 70: "3,4,1,9", 120: "3,abc,1", 150: "3,inf,0", 160: "3,4,",
           190: "x y,1,0", 199: "3,4,1,1,1"}
    path = tmp_path / "d.csv"
    path.write_text(_csv(bad=bad))
    seen = []
    for workers in ("1", "2", "3"):
        code, out, err = _run(capsys, "train", str(path), "--label", "target", "--workers", workers,
                              "--on-bad-row", "skip", "--out", str(tmp_path / f"m{workers}"))
        assert code == 0, err
        r = json.loads(out)
        seen.append((r["rows"], r["skipped"]))
        assert r["workers"] == int(workers)
    assert seen[0] == seen[1] == seen[2], seen
    rows, skipped = seen[0]
    assert rows == 200 - len(bad)  # every good row kept, around the bad ones
    assert skipped == {"missing value": 1, "NaN or Inf": 2, "wrong number of fields": 2, "not a number": 2,
                       "missing label": 1}


def test_skip_counts_of_a_libsvm_file_add_up(tmp_path, capsys):
    lines = ["1 1:1 2:3", "0 2:1"] * 50
    lines[5], lines[77], lines[93] = "1 1:x", "0 2:nan", "z 1:1"
    path = tmp_path / "d.svm"
    path.write_text("\n".join(lines) + "\n")
    seen = []
    for workers in ("1", "2"):
        code, out, err = _run(capsys, "train", str(path), "--workers", workers, "--on-bad-row", "skip",
                              "--out", str(tmp_path / f"m{workers}"))
        assert code == 0, err
        r = json.loads(out)
        seen.append((r["rows"], sum(r["skipped"].values())))
    assert seen == [(97, 3), (97, 3)]


@pytest.mark.parametrize("sep, options", [(";", []), ("\t", []), (";", ["--delimiter", ";"]),
                                          ("\t", ["--delimiter", "\\t"]), ("|", [])])
def test_semicolon_and_tab_separated_files(tmp_path, capsys, sep, options):
    path = tmp_path / "d.txt"
    path.write_text(_csv(sep=sep))
    code, out, err = _run(capsys, "train", str(path), "--format", "csv", "--label", "target", *options,
                          "--out", str(tmp_path / "m"))
    assert code == 0, err
    assert json.loads(out)["features"] == 2 and json.loads(out)["rows"] == 200
    code, out, err = _run(capsys, "evaluate", str(tmp_path / "m"), str(path), "--format", "csv")
    assert code == 0 and json.loads(out)["rows"] == 200, err


def test_headerless_tsv(tmp_path, capsys):
    path = tmp_path / "d.tsv"
    path.write_text("".join(f"{i % 7}\t{(i * 3) % 5}\t{i % 2}\n" for i in range(100)))
    code, out, err = _run(capsys, "train", str(path), "--no-header", "--label", "2", "--out", str(tmp_path / "m"))
    assert code == 0, err
    assert json.loads(out)["rows"] == 100 and json.loads(out)["features"] == 2


def test_gzip_libsvm_with_one_and_two_workers(tmp_path, capsys):
    rng = np.random.default_rng(0)
    text = "".join(f"{int(rng.random() < 0.5)} 1:{rng.normal():.4f} 3:{rng.normal():.4f}\n" for _ in range(300))
    (tmp_path / "d.svm").write_text(text)
    (tmp_path / "d.svm.gz").write_bytes(gzip.compress(text.encode()))
    coefs = []
    for name, workers in (("d.svm", "1"), ("d.svm.gz", "1"), ("d.svm.gz", "2")):
        code, out, err = _run(capsys, "train", str(tmp_path / name), "--workers", workers, "--tol", "1e-10",
                              "--out", str(tmp_path / f"m-{name}-{workers}"))
        assert code == 0, err
        assert json.loads(out)["rows"] == 300
        coefs.append(np.load(tmp_path / f"m-{name}-{workers}" / "params.npz")["coef"])
    np.testing.assert_allclose(coefs[1], coefs[0], rtol=1e-12)
    np.testing.assert_allclose(coefs[2], coefs[0], rtol=1e-6)
    bad = gzip.compress(b"1 1:1\n1 0:x\n")
    (tmp_path / "bad.svm.gz").write_bytes(bad)
    code, _, err = _run(capsys, "train", str(tmp_path / "bad.svm.gz"), "--workers", "1", "--out", str(tmp_path / "b"))
    assert code == 2 and f"{tmp_path / 'bad.svm.gz'}: line 2: value 'x' in '0:x' is not a number" in err, err


def test_auto_workers_are_said_in_the_output(tmp_path, capsys):
    (tmp_path / "d.csv").write_text(_csv())
    code, out, err = _run(capsys, "train", str(tmp_path / "d.csv"), "--label", "target", "--out", str(tmp_path / "m"))
    r = json.loads(out)
    assert code == 0 and r["workers"] == 1
    assert r["workers_rule"].startswith("1 worker for 0.0 MB of data (one per 128 MB, at most one per core)")
    assert r["train_objective"] > 0


def test_too_many_workers_fail_at_once_and_more_than_cores_warn(tmp_path, capsys):
    from shardlearn.runtime import launch

    (tmp_path / "d.csv").write_text(_csv())
    many = launch.WORKERS_PER_CORE * launch.cpu_count() + 1
    code, _, err = _run(capsys, "train", str(tmp_path / "d.csv"), "--label", "target", "--workers", str(many),
                        "--out", str(tmp_path / "m"))
    assert code == 2 and err.count("\n") == 1
    assert f"{many} local workers: this machine can run at most {many - 1}" in err
    assert not (tmp_path / "m").exists()
    with pytest.warns(RuntimeWarning, match="local workers on .* cores: they take turns"):
        launch.check_local(launch.cpu_count() + 1)


def test_a_stochastic_strategy_needs_no_solver_and_tol_none_runs_every_epoch(tmp_path, capsys):
    (tmp_path / "d.csv").write_text(_csv(400))
    code, out, err = _run(capsys, "train", str(tmp_path / "d.csv"), "--label", "target", "--strategy", "asp",
                          "--workers", "2", "--max-iter", "7", "--tol", "none", "--out", str(tmp_path / "m"))
    assert code == 0, err
    assert json.loads(out)["n_iter"] == 7  # asp ran as sgd, every epoch
    code, out, err = _run(capsys, "train", str(tmp_path / "d.csv"), "--label", "target", "--solver", "sgd",
                          "--out", str(tmp_path / "m1"))
    meta = json.loads((tmp_path / "m1" / "model.json").read_text())
    assert code == 0 and json.loads(out)["n_iter"] <= 5  # sgd's default: at most 5 epochs
    assert meta["hyper_parameters"]["optimizer"] is None and meta["hyper_parameters"]["solver"] == "sgd"
    with pytest.raises(SystemExit) as e:  # argparse's own errors exit from the parser, one line, code 2
        main(["train", str(tmp_path / "d.csv"), "--label", "target", "--tol", "soon", "--out", str(tmp_path / "m2")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --tol: expected a number or 'none', got 'soon'" in err


def test_the_workers_rule_counts_a_gzip_file_uncompressed(tmp_path):
    from shardlearn.cli.train import _data_bytes

    text = _csv(3000).encode()
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(text))
    assert _data_bytes(str(tmp_path / "d.csv.gz")) == len(text) > 5 * (tmp_path / "d.csv.gz").stat().st_size
