"""Real eval_measurements.csv files hold every column the runner logs; only a few are parsed.

The fast path groups files by header line, so files whose columns come in another order, or that
carry a quoted cell among many plain files, must still give what one read_csv per file gives.
"""

import numpy as np
import pytest

from scoring.fast_csv import ColumnSelection, read_measurement_files

COLUMNS = ["accumulated_eval_time", "accumulated_logging_time", "accumulated_submission_time",
           "global_step", "preemption_count", "score", "test/accuracy", "test/loss",
           "test/num_examples", "total_duration", "train/accuracy", "train/loss",
           "validation/accuracy", "validation/loss", "validation/num_examples"]
WANTED = ColumnSelection(("score", "global_step", "validation/accuracy", "test/accuracy"))


def wide_file(path, columns, n_rows, seed, quote_row=None):
    rng = np.random.default_rng(seed)
    values = {name: rng.random(n_rows) for name in columns}
    values["global_step"] = np.arange(1, n_rows + 1) * 100
    lines = [",".join(columns)]
    for row in range(n_rows):
        cells = [repr(float(values[name][row])) if name != "global_step"
                 else str(values[name][row]) for name in columns]
        if row == quote_row:
            cells[columns.index("score")] = f'"{cells[columns.index("score")]}"'
        lines.append(",".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path, values


@pytest.fixture
def wide_tree(tmp_path):
    shuffled = list(np.random.default_rng(7).permutation(COLUMNS))
    files = []
    for k in range(6):
        columns = shuffled if k % 3 == 1 else COLUMNS
        quote_row = 2 if k == 4 else None
        files.append(wide_file(tmp_path / f"trial_{k}" / "eval_measurements.csv", columns,
                               5 + k, seed=k, quote_row=quote_row))
    return files


def test_only_the_wanted_columns_come_back(wide_tree):
    parsed = read_measurement_files([p for p, _ in wide_tree], [WANTED] * len(wide_tree))
    assert sorted(parsed.columns) == sorted(WANTED.patterns)
    assert all(len(header) == len(COLUMNS) for header in parsed.headers)


def test_values_follow_their_column_names_whatever_the_order(wide_tree):
    parsed = read_measurement_files([p for p, _ in wide_tree], [WANTED] * len(wide_tree))
    for number, (_, values) in enumerate(wide_tree):
        rows = parsed.file_index == number
        for name in WANTED.patterns:
            np.testing.assert_array_equal(parsed.columns[name][rows], values[name].astype(float),
                                          err_msg=f"file {number}, {name}")


def test_fast_and_plain_paths_agree_on_wide_files(wide_tree):
    paths = [p for p, _ in wide_tree]
    fast = read_measurement_files(paths, [WANTED] * len(paths), fast=True)
    plain = read_measurement_files(paths, [WANTED] * len(paths), fast=False)
    for name in plain.columns:
        np.testing.assert_array_equal(fast.columns[name], plain.columns[name], err_msg=name)
    np.testing.assert_array_equal(fast.rows_per_file, plain.rows_per_file)
    assert fast.headers == plain.headers
    assert fast.problems.messages == plain.problems.messages == []


def test_a_blank_line_in_one_file_leaves_the_others_in_the_group(tmp_path):
    paths = [wide_file(tmp_path / f"t{k}" / "eval_measurements.csv", COLUMNS, 4, seed=k)[0]
             for k in range(3)]
    text = paths[1].read_text().splitlines()
    paths[1].write_text("\n".join(text[:2] + [""] + text[2:]) + "\n")
    fast = read_measurement_files(paths, [WANTED] * 3, fast=True)
    plain = read_measurement_files(paths, [WANTED] * 3, fast=False)
    assert fast.rows_per_file.tolist() == plain.rows_per_file.tolist() == [4, 4, 4]
    for name in plain.columns:
        np.testing.assert_array_equal(fast.columns[name], plain.columns[name], err_msg=name)
