"""The fast CSV path gives exactly what one pandas.read_csv per file gives, odd files included."""

import numpy as np
import pandas as pd
import pytest

from scoring import read_log_tree
from scoring.fast_csv import ALL_COLUMNS, ColumnSelection, read_measurement_files

HEADER = "global_step,score,validation/loss"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.fixture
def odd_files(tmp_path):
    """Files of every kind the fast path must either handle or hand to the plain path."""
    contents = {
        "plain_a": f"{HEADER}\n1,10.5,0.9\n2,20.25,0.8\n",
        "plain_b": f"{HEADER}\n1,11.0,0.7\n",
        "no_final_newline": f"{HEADER}\n1,1.0,0.5\n2,2.0,0.4",
        "other_header": "global_step,score,validation/loss,validation/wer\n5,1e3,0.1,0.2\n",
        "header_only": f"{HEADER}\n",
        "empty": "",
        "truncated": f"{HEADER}\n1,10.0,0.9\n2,20.0\n",
        "blank_line": f"{HEADER}\n1,1.0,0.5\n\n2,2.0,0.4\n",
        "crlf": f"{HEADER}\r\n1,1.0,0.5\r\n",
        "quoted": f'{HEADER}\n1,"3.5",0.5\n',
        "non_numeric": f"{HEADER}\n1,abc,0.5\n2,3.0,0.25\n",
        "nan_and_inf": f"{HEADER}\n1,nan,inf\n2,,-inf\n",
        "long_floats": f"{HEADER}\n7,2348.883147239685,0.7241875214327167\n",
        "bom": b"\xef\xbb\xbf" + f"{HEADER}\n1,1.0,0.5\n".encode(),
    }
    paths = [write(tmp_path / name / "eval_measurements.csv", text)
             for name, text in contents.items()]
    return paths + [tmp_path / "missing" / "eval_measurements.csv"]


def test_fast_and_plain_paths_agree_on_every_kind_of_file(odd_files):
    selections = [ALL_COLUMNS] * len(odd_files)
    fast = read_measurement_files(odd_files, selections, fast=True)
    plain = read_measurement_files(odd_files, selections, fast=False)
    assert fast.columns.keys() == plain.columns.keys()
    for name in fast.columns:
        np.testing.assert_array_equal(fast.columns[name], plain.columns[name], err_msg=name)
    np.testing.assert_array_equal(fast.file_index, plain.file_index)
    np.testing.assert_array_equal(fast.eval_index, plain.eval_index)
    np.testing.assert_array_equal(fast.rows_per_file, plain.rows_per_file)
    assert fast.headers == plain.headers
    assert fast.problems.messages == plain.problems.messages


def test_rows_stay_with_their_file_in_order(odd_files):
    parsed = read_measurement_files(odd_files, [ALL_COLUMNS] * len(odd_files))
    by_name = {path.parent.name: i for i, path in enumerate(odd_files)}
    rows = parsed.file_index == by_name["plain_a"]
    assert parsed.columns["score"][rows].tolist() == [10.5, 20.25]
    assert parsed.eval_index[rows].tolist() == [0, 1]
    assert parsed.rows_per_file[by_name["blank_line"]] == 2
    assert parsed.rows_per_file[by_name["header_only"]] == 0
    assert parsed.headers[by_name["empty"]] is None
    other = parsed.file_index == by_name["other_header"]
    assert parsed.columns["validation/wer"][other].tolist() == [0.2]
    assert np.isnan(parsed.columns["validation/wer"][rows]).all()


def test_problems_name_the_file(odd_files):
    parsed = read_measurement_files(odd_files, [ALL_COLUMNS] * len(odd_files))
    text = "\n".join(parsed.problems.messages)
    for name, words in [("empty", "empty file"), ("truncated", "truncated"),
                        ("non_numeric", "column 'score' has non-numeric"), ("missing", "missing")]:
        assert f"{name}/eval_measurements.csv: {words}" in text, name
    for fine in ("plain_a", "header_only", "no_final_newline", "nan_and_inf", "bom"):
        assert f"{fine}/eval_measurements.csv" not in text, fine


def test_only_selected_columns_are_kept(odd_files):
    selection = ColumnSelection(("score", "validation/*"))
    parsed = read_measurement_files(odd_files, [selection] * len(odd_files))
    assert sorted(parsed.columns) == ["score", "validation/loss", "validation/wer"]


def test_worker_processes_give_the_same_result(odd_files):
    selections = [ALL_COLUMNS] * len(odd_files)
    one = read_measurement_files(odd_files, selections, workers=1)
    two = read_measurement_files(odd_files, selections, workers=2)
    for name in one.columns:
        np.testing.assert_array_equal(one.columns[name], two.columns[name])
    assert one.problems.messages == two.problems.messages


def test_read_log_tree_matches_straightforward_pandas(log_tree):
    for study in range(2):
        for trial in range(1, 4):
            log_tree.times_trial("sub", study, "ogbg", trial, reach_at=trial)
            log_tree.times_trial("sub", study, "wmt", trial, reach_at=None, n_evals=3 + trial)
    table = read_log_tree(log_tree.root / "sub")
    assert list(table.columns[:8]) == ["submission", "workload", "framework", "study",
                                       "experiment", "trial", "eval", "path"]
    for path, rows in table.groupby("path", observed=True, sort=False):
        expected = pd.read_csv(path)
        got = rows[expected.columns].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected.astype(float), check_exact=True)
        assert rows["eval"].tolist() == list(range(len(expected)))
    assert read_log_tree(log_tree.root / "sub", columns=["score"]).columns[-1] == "score"
