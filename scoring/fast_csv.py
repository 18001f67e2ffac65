"""Parse thousands of eval_measurements.csv files fast, with the same numbers pandas gives per file.

A v0.5 log tree has ~3,700 small CSVs; calling ``pandas.read_csv`` once per file costs far more in
per-call overhead than in parsing. Files with the same header line are therefore concatenated and
parsed by one ``read_csv`` call, asking only for the wanted columns, and the rows are handed back to
their files by counting lines. The numbers are bit-for-bit those of one ``read_csv`` per file: the
same C tokenizer converts the same tokens. Anything that could make line counting and parsing
disagree (quotes, carriage returns, blank lines, a byte-order mark, duplicate column names) sends a
file down the plain path: ``read_csv`` on that file alone. These checks cost as much as the parse
if made file by file, so they are made once per distinct header and once per group, on the joined
bytes (a blank line shows as fewer rows parsed than lines counted); only a group that fails them
is searched for its odd files, and the others are parsed together again. A whole group whose
combined parse fails or yields non-numeric columns goes down the plain path, so that the plain
path names the bad file. With ``fast=False`` every file takes the plain path; tests compare the
two.

With ``workers > 1`` (Linux only) the files are split between forked processes. That pays off
only for trees far larger than v0.5's (~0.3 s on one core) on an idle multi-core machine, and
forking a process that holds threads (a pytest session with torch loaded) is unsafe, so it is off
by default.
"""

from __future__ import annotations

import io
import multiprocessing
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pandas as pd

from .problems import Problems


@dataclass(frozen=True)
class ColumnSelection:
    """Which columns to keep, as fnmatch patterns (``"validation/*"``); picklable and hashable."""

    patterns: tuple[str, ...]

    def select(self, names: Sequence[str]) -> list[str]:
        return [name for name in names if any(fnmatchcase(name, p) for p in self.patterns)]


ALL_COLUMNS = ColumnSelection(("*",))


@dataclass
class ParsedFiles:
    """The rows of all files, file after file, in the order the paths were given."""

    columns: dict[str, np.ndarray]  # float64 per row; NaN where a file lacks the column
    file_index: np.ndarray  # per row: index into the given paths
    eval_index: np.ndarray  # per row: position of the row within its file
    rows_per_file: np.ndarray  # per path; 0 for unreadable files
    headers: list[tuple[str, ...] | None]  # per path: all column names; None if unreadable
    problems: Problems = field(default_factory=Problems)


@dataclass
class _Chunk:
    """Parsed rows of some files, before they are placed into the final arrays."""

    files: np.ndarray  # which files, in order
    rows: np.ndarray  # how many rows each
    columns: dict[str, np.ndarray]  # all rows of these files, file after file


def read_measurement_files(paths: Sequence[str | Path], selections: Sequence[ColumnSelection],
                           fast: bool = True, workers: int = 1) -> ParsedFiles:
    """Read the CSVs at ``paths``, keeping the columns ``selections[i]`` picks from file ``i``.

    ``workers``: processes to parse in (more than one only on Linux, see the module notes).
    """
    paths = [str(p) for p in paths]
    if len(selections) != len(paths):
        raise ValueError("one column selection per path is needed")
    if not sys.platform.startswith("linux"):
        workers = 1
    shares = _split_into_shares(len(paths), workers)
    if len(shares) == 1:
        results = [_parse_share(paths, list(selections), fast, 0)]
    else:
        context = multiprocessing.get_context("fork")
        with context.Pool(len(shares)) as pool:
            results = pool.starmap(_parse_share, [
                (paths[start:stop], list(selections[start:stop]), fast, start)
                for start, stop in shares])
    return _assemble(len(paths), results)


def _split_into_shares(n_files: int, workers: int) -> list[tuple[int, int]]:
    workers = max(1, min(workers, n_files))
    bounds = np.linspace(0, n_files, workers + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class _FileNotes:
    """Problems per file number, so that they come out in file order however files were split."""

    def __init__(self, paths: list[str], offset: int) -> None:
        self.number = {path: offset + i for i, path in enumerate(paths)}
        self.by_file: dict[int, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_file.setdefault(self.number[path], []).append(f"{path}: {message}")


_ShareResult = tuple[list[_Chunk], dict[int, tuple[str, ...]], dict[int, list[str]]]


def _parse_share(paths: list[str], selections: list[ColumnSelection], fast: bool,
                 offset: int) -> _ShareResult:
    """Parse some of the files; file numbers in the result are offset to the global numbering."""
    notes = _FileNotes(paths, offset)
    headers: dict[int, tuple[str, ...]] = {}
    chunks: list[_Chunk] = []
    contents = [_read_bytes(path, notes) for path in paths]
    plain = []
    groups: dict[tuple[bytes, ColumnSelection], list[int]] = {}
    usable_header: dict[bytes, bool] = {}
    for i, data in enumerate(contents):
        if data is None:
            continue
        header = data[:data.find(b"\n")] if b"\n" in data else data
        if header not in usable_header:
            usable_header[header] = _usable_header(header)
        if fast and usable_header[header] and not data.startswith(b"\xef\xbb\xbf"):
            groups.setdefault((header, selections[i]), []).append(i)
        else:
            plain.append(i)
    for (header, selection), members in groups.items():
        chunk = _parse_group(header, selection, [contents[i] for i in members], members)
        if chunk is None:
            # Rare: find the odd files, read them alone and try the others together again.
            odd = {i for i in members if not _safe_to_concatenate(contents[i])}
            members = [i for i in members if i not in odd]
            plain.extend(odd)
            if odd and members:
                chunk = _parse_group(header, selection, [contents[i] for i in members], members)
            if chunk is None:
                plain.extend(members)
                continue
        names = tuple(header.decode().split(","))
        for i in members:
            headers[i] = names
            _check_last_row(contents[i], len(names), paths[i], notes)
        chunks.append(chunk)
    for i in sorted(plain):
        parsed = _parse_one(contents[i], paths[i], selections[i], notes)
        if parsed is not None:
            headers[i], frame = parsed
            chunks.append(_Chunk(np.array([i]), np.array([len(frame)]),
                                 {name: frame[name].to_numpy(np.float64) for name in frame}))
    for chunk in chunks:
        chunk.files = chunk.files + offset
    return chunks, {i + offset: names for i, names in headers.items()}, notes.by_file


def _read_bytes(path: str, problems: _FileNotes) -> bytes | None:
    try:
        with open(path, "rb", buffering=0) as file:
            return file.read()
    except FileNotFoundError:
        problems.add(path, "missing (the trial directory has no measurements file)")
    except OSError as error:
        problems.add(path, f"unreadable ({error.strerror or error})")
    return None


def _usable_header(header: bytes) -> bool:
    """A header line that names each column once, in UTF-8, without quotes or carriage returns."""
    names = header.split(b",")
    if not header or len(set(names)) != len(names) or b"" in names:
        return False
    if b'"' in header or b"\r" in header:
        return False
    try:
        header.decode()
    except UnicodeDecodeError:
        return False
    return True


def _safe_to_concatenate(data: bytes) -> bool:
    """True if counting newlines gives exactly the rows read_csv would see in this file."""
    if not data or data.startswith(b"\xef\xbb\xbf") or b'"' in data or b"\r" in data:
        return False
    header, _, body = data.partition(b"\n")
    if not _usable_header(header):
        return False
    return not body.startswith(b"\n") and b"\n\n" not in body


def _parse_group(header: bytes, selection: ColumnSelection, contents: list[bytes],
                 members: list[int]) -> _Chunk | None:
    """One read_csv for many files sharing a header; None if it must be redone file by file.

    Quotes or carriage returns anywhere return None too, and so does a blank line: read_csv skips
    it, so that fewer rows come back than the files have lines. The caller then sorts out the odd
    files (see _safe_to_concatenate).
    """
    bodies = []
    rows = np.empty(len(contents), dtype=np.int64)
    for k, data in enumerate(contents):
        body = data[len(header) + 1:]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        bodies.append(body)
        rows[k] = body.count(b"\n")
    joined = header + b"\n" + b"".join(bodies)
    if b'"' in joined or b"\r" in joined:
        return None
    names = header.decode().split(",")
    wanted = selection.select(names)
    columns: dict[str, np.ndarray] = {}
    if wanted:
        try:
            frame = pd.read_csv(io.BytesIO(joined), usecols=wanted, low_memory=False)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
            return None
        if len(frame) != rows.sum() or (len(frame) and not all(
                pd.api.types.is_numeric_dtype(frame[name]) for name in frame)):
            return None
        columns = {name: frame[name].to_numpy(np.float64) for name in frame}
    elif b"\n\n" in joined:
        return None  # nothing parsed to count the rows by
    return _Chunk(np.asarray(members), rows, columns)


def _parse_one(data: bytes, path: str, selection: ColumnSelection,
               problems: _FileNotes) -> tuple[tuple[str, ...], pd.DataFrame] | None:
    """The plain path: read_csv on one file. Returns its header and the selected numeric columns."""
    try:
        frame = pd.read_csv(io.BytesIO(data), low_memory=False)
    except pd.errors.EmptyDataError:
        problems.add(path, "empty file")
        return None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        problems.add(path, f"not a readable CSV ({str(error).splitlines()[0]})")
        return None
    names = tuple(str(name) for name in frame.columns)
    _check_last_row(data, len(names), path, problems)
    selected = frame[selection.select(names)].copy()
    for name in selected:
        if selected.empty:  # a header-only file: its columns have no type yet
            selected[name] = selected[name].astype(np.float64)
        elif not pd.api.types.is_numeric_dtype(selected[name]):
            problems.add(path, f"column {name!r} has non-numeric values; they count as NaN")
            selected[name] = pd.to_numeric(selected[name], errors="coerce")
    return names, selected


def _check_last_row(data: bytes, n_fields: int, path: str, problems: _FileNotes) -> None:
    """A run killed while writing leaves a last row with fewer fields than the header."""
    end = len(data)
    while end and data[end - 1] in b"\r\n":
        end -= 1
    start = data.rfind(b"\n", 0, end) + 1
    if start and data.count(b",", start, end) + 1 < n_fields:
        problems.add(path, "truncated: the last row has fewer fields than the header "
                           "(missing values count as NaN)")


def _assemble(n_files: int, results: list[_ShareResult]) -> ParsedFiles:
    problems = Problems()
    headers: list[tuple[str, ...] | None] = [None] * n_files
    chunks: list[_Chunk] = []
    notes: dict[int, list[str]] = {}
    for share_chunks, share_headers, share_notes in results:
        chunks.extend(share_chunks)
        for i, names in share_headers.items():
            headers[i] = names
        notes.update(share_notes)
    for i in sorted(notes):
        for message in notes[i]:
            problems.add(None, message)
    rows_per_file = np.zeros(n_files, dtype=np.int64)
    for chunk in chunks:
        rows_per_file[chunk.files] = chunk.rows
    starts = np.concatenate([[0], np.cumsum(rows_per_file)])
    n_rows = int(starts[-1])
    names = sorted({name for chunk in chunks for name in chunk.columns})
    columns = {name: np.full(n_rows, np.nan) for name in names}
    for chunk in chunks:
        # Row j of a chunk goes to its file's start plus its position within the file.
        chunk_starts = np.concatenate([[0], np.cumsum(chunk.rows)[:-1]])
        within = np.arange(int(chunk.rows.sum())) - np.repeat(chunk_starts, chunk.rows)
        target = np.repeat(starts[chunk.files], chunk.rows) + within
        for name, values in chunk.columns.items():
            columns[name][target] = values
    file_index = np.repeat(np.arange(n_files), rows_per_file)
    eval_index = np.arange(n_rows) - np.repeat(starts[:-1], rows_per_file)
    return ParsedFiles(columns, file_index, eval_index, rows_per_file, headers, problems)
