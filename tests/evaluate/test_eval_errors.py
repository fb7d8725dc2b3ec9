"""Bad input to `walkrun eval` / `walkrun watch`: one clear line, exit code 2, nothing written."""

from __future__ import annotations

import shutil

import pytest

from walkrun import problem_sets


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("walkrun: error:")]
    assert len(lines) == 1, err
    assert err.rstrip().endswith(lines[0])
    return lines[0]


def _eval(cli, model, db_url, *extra):
    return cli(
        "eval",
        "--model",
        model,
        "--tasks",
        "aime24,math500",
        "--limit",
        1,
        "--samples",
        1,
        "--max-new-tokens",
        8,
        "--db",
        db_url,
        "-q",
        *extra,
    )


def test_unknown_task_names_the_known_ones(cli, tiny_model, db_path, db_url):
    code, out, err = cli("eval", "--model", tiny_model, "--tasks", "aime24,gsm9k", "--db", db_url)
    assert code == 2
    line = _one_error_line(err)
    assert "unknown task 'gsm9k'" in line and "amc23" in line and "olympiadbench" in line
    assert not db_path.exists()


def test_missing_data_file_says_which_file_and_where(cli, tiny_model, tmp_path, db_path, db_url):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy2(problem_sets.local_path("aime24"), data / "aime2024.jsonl")  # aime24 present, math500 missing
    code, out, err = _eval(cli, tiny_model, db_url, "--data", data)
    assert code == 2
    line = _one_error_line(err)
    assert "math500.jsonl" in line and str(data) in line
    assert not db_path.exists()


def test_model_path_that_does_not_exist(cli, tmp_path, db_path, db_url):
    code, out, err = _eval(cli, str(tmp_path / "no" / "such_model"), db_url)
    assert code == 2
    assert "does not exist" in _one_error_line(err)
    assert not db_path.exists()


def test_model_folder_without_a_model(cli, tmp_path, db_path, db_url):
    (tmp_path / "empty_model").mkdir()
    code, out, err = _eval(cli, tmp_path / "empty_model", db_url)
    assert code == 2
    assert "no config.json" in _one_error_line(err)
    assert not db_path.exists()


def test_model_with_unreadable_weights_writes_no_rows(cli, tiny_model, tmp_path, db_path, db_url, query):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 100)
    code, out, err = _eval(cli, broken, db_url)
    assert code == 2
    assert "cannot load model" in _one_error_line(err)
    if db_path.exists():  # the schema may exist; no checkpoint, run or sample does
        for table in ("checkpoint", "eval_run", "sample", "training_run"):
            assert query(db_path, f"select count(*) from {table}") == [(0,)]


@pytest.mark.parametrize(
    "url,expect",
    [
        ("sqlite:////nonexistent-folder/walkrun/results.db", "does not exist"),
        ("postgresql+psycopg://walkrun:pw@127.0.0.1:9/walkrun", "cannot open database"),
        ("notadb:///x", "database"),
    ],
)
def test_unusable_db_url(cli, tiny_model, url, expect):
    code, out, err = _eval(cli, tiny_model, url)
    assert code == 2
    line = _one_error_line(err)
    assert expect in line and "pw" not in line  # passwords are masked


def test_watch_of_a_missing_folder(cli, tmp_path, db_url):
    code, out, err = cli("watch", tmp_path / "nope", "--once", "--db", db_url)
    assert code == 2
    assert "not a folder" in _one_error_line(err)
