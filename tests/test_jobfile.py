"""Job files (issue 20, item 3): ``train --config job.toml`` equals the same options as flags,
flags override the file, every example under examples/ is a valid job, and a bad key, type,
value or file is one line naming the file and the key."""
import glob
import json
import os

import numpy as np
import pytest

import shardlearn
from shardlearn.cli import main
from shardlearn.cli.jobfile import defaults
from shardlearn.cli.parser import build
from tests.conftest import data_path

EXAMPLES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "examples", "*.toml")))


def test_examples_are_valid_jobs():
    assert len(EXAMPLES) >= 5
    parser = build().train_parser
    for path in EXAMPLES:
        values = defaults(path, parser)
        assert "out" in values and "data" in values, path


def test_a_job_file_equals_its_flags_and_flags_override_it(tmp_path, capsys):
    a9a = data_path("a9a", "a9a")
    job = tmp_path / "job.toml"
    job.write_text(f'data = "{a9a}"\nout = "{tmp_path / "from-file"}"\nmodel = "logistic"\nalpha = 1e-3\n'
                   'max_iter = 50\nworkers = 1\nlauncher = "local"\n')
    assert main(["train", "--config", str(job)]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert main(["train", a9a, "--model", "logistic", "--alpha", "1e-3", "--max-iter", "50", "--workers", "1",
                 "--out", str(tmp_path / "from-flags")]) == 0
    capsys.readouterr()
    a, b = shardlearn.load(str(tmp_path / "from-file")), shardlearn.load(str(tmp_path / "from-flags"))
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert from_file["model_dir"] == str(tmp_path / "from-file") and a.alpha == 1e-3
    # the command line wins over the file: another alpha and another output folder
    assert main(["train", "--config", str(job), "--alpha", "1e-2", "--out", str(tmp_path / "override")]) == 0
    capsys.readouterr()
    c = shardlearn.load(str(tmp_path / "override"))
    assert c.alpha == 1e-2 and not np.allclose(c.coef_, a.coef_)


@pytest.mark.parametrize("body,text", [
    ('alpah = 1e-3', "job.toml: unknown key 'alpah' (did you mean 'alpha'?)"),
    ('alpha = "big"', "job.toml: alpha must be a number, got 'big'"),
    ('max_iter = 2.5', "job.toml: max_iter must be a whole number, got 2.5"),
    ('no_header = "yes"', "job.toml: no_header must be true or false, got 'yes'"),
    ('model = "tree"', "job.toml: model = 'tree' is not one of 'linear', 'logistic', 'softmax'"),
    ('launcher = "spark"', "job.toml: launcher = 'spark' is not one of 'local', 'torchrun'"),
    ('label = 3', "job.toml: label must be text, got 3"),
    ('alpha = [1', "job.toml: not valid TOML"),
    ('alpha = 1e-3', "train needs DATA (on the command line or in --config JOB.toml)"),
    ('data = "x.csv"\nout = "m"\nlauncher = "torchrun"', "launcher torchrun: start this job with torchrun"),
])
def test_bad_job_files_are_one_line(tmp_path, capsys, body, text):
    (tmp_path / "job.toml").write_text(body + "\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["train", "--config", "job.toml"])
    except SystemExit as e:
        code = e.code
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert code == 2 and text in err and err.count("\n") == 1, err


def test_a_missing_job_file(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", "/nowhere/job.toml"])
    assert e.value.code == 2 and "/nowhere/job.toml: no such job file" in capsys.readouterr().err


@pytest.mark.parametrize("launcher", ["dask", "ray"])
def test_ray_and_dask_launchers_fit_the_file_on_the_engine(tmp_path, capsys, launcher):
    pytest.importorskip("distributed" if launcher == "dask" else "ray")
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    y = (X @ [1.0, -2.0, 0.5] + rng.normal(size=600) > 0).astype(int)
    pd.DataFrame(X, columns=["a", "b", "c"]).assign(target=y).to_csv(tmp_path / "d.csv", index=False)
    job = tmp_path / "job.toml"
    job.write_text(f'data = "{tmp_path / "d.csv"}"\nlabel = "target"\nout = "{tmp_path / "m"}"\nalpha = 1e-3\n'
                   f'tol = 1e-10\nworkers = 2\nlauncher = "{launcher}"\n')
    try:
        assert main(["train", "--config", str(job)]) == 0
    finally:
        if launcher == "ray":
            import ray

            ray.shutdown()
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["launcher"] == launcher and summary["rows"] == 600 and sum(summary["rows_per_worker"]) == 600
    want = shardlearn.LogisticRegression(alpha=1e-3, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(shardlearn.load(str(tmp_path / "m")).coef_, want.coef_, rtol=1e-6, atol=1e-8)
    assert main(["evaluate", str(tmp_path / "m"), str(tmp_path / "d.csv")]) == 0
