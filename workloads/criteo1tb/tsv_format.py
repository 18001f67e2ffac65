"""The raw Criteo 1TB click-log format, parsed a block of lines at a time with numpy.

Each line of a `day_<d>` file is 40 tab-separated fields: the click label, 13 integer
features and 26 categorical features (32-bit hashes written as 8 hex digits). Any field
may be empty, meaning missing. The reference reads these lines with
`tf.io.decode_csv(..., field_delim='\\t', na_value='-1')`, so the literal text `-1` is
missing too (reference §4.2). Parsing here works on byte offsets: find every separator
once, then read all fields of a column together.
"""

from __future__ import annotations

import dataclasses

import numpy as np

NUM_LABELS = 1
NUM_DENSE_FEATURES = 13
NUM_SPARSE_FEATURES = 26
NUM_FIELDS = NUM_LABELS + NUM_DENSE_FEATURES + NUM_SPARSE_FEATURES  # 40
FIRST_SPARSE_FIELD = NUM_LABELS + NUM_DENSE_FEATURES  # 14
NA_VALUE = b"-1"  # decode_csv's na_value: this exact text counts as missing

_TAB, _NEWLINE, _MINUS, _ZERO = 9, 10, ord("-"), ord("0")
# Integers of up to 18 digits parse exactly in int64; longer or non-integer text takes a slow path.
_MAX_FAST_DIGITS = 18
# Zero bytes after the block, so reads of a few bytes past any field start stay in bounds.
_PADDING = 32


class RawFormatError(ValueError):
    """A raw file does not follow the Criteo TSV layout; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class FieldSpans:
    """Where every field of a block of lines sits in the block's bytes."""

    data: np.ndarray  # (bytes + _PADDING,) uint8: the lines, each ending in a newline, then zeros
    starts: np.ndarray  # (lines, 40) int64 offsets into `data`
    lengths: np.ndarray  # (lines, 40) int64
    source: str  # file name, for error messages
    first_line: int  # 1-based line number of the block's first line

    @property
    def num_lines(self) -> int:
        return self.starts.shape[0]

    def text(self, line: int, field: int) -> bytes:
        start = int(self.starts[line, field])
        return self.data[start : start + int(self.lengths[line, field])].tobytes()

    def words_at(self, offsets: np.ndarray) -> np.ndarray:
        """The 8 bytes starting at each offset, as little-endian uint64 words (an unaligned strided view)."""
        words = np.ndarray(shape=(len(self.data) - 7,), dtype="<u8", buffer=self.data, strides=(1,))
        return words[offsets]

    def is_missing(self, fields: slice) -> np.ndarray:
        """(lines, k) True where a field is empty or the na_value `-1`."""
        starts, lengths = self.starts[:, fields], self.lengths[:, fields]
        is_na = (lengths == len(NA_VALUE)) & (self.data[starts] == NA_VALUE[0]) & (self.data[starts + 1] == NA_VALUE[1])
        return (lengths == 0) | is_na


def split_fields(block: bytes, source: str, first_line: int = 1) -> FieldSpans:
    """Locates the 40 fields of every line of `block` (whole lines; a missing final newline is added)."""
    text = np.frombuffer(block, dtype=np.uint8)
    ends_in_newline = len(text) == 0 or text[-1] == _NEWLINE
    data = np.concatenate([text, np.array([] if ends_in_newline else [_NEWLINE], dtype=np.uint8), np.zeros(_PADDING, np.uint8)])
    body = data[: len(data) - _PADDING]
    separators = np.flatnonzero((body == _TAB) | (body == _NEWLINE))
    line_ends = np.flatnonzero(body[separators] == _NEWLINE)  # index of each newline among the separators
    fields_per_line = np.diff(line_ends, prepend=-1)
    wrong = np.flatnonzero(fields_per_line != NUM_FIELDS)
    if len(wrong):
        line = int(wrong[0])
        raise RawFormatError(
            f"{source}: line {first_line + line} has {int(fields_per_line[line])} tab-separated fields, "
            f"expected {NUM_FIELDS} (label, {NUM_DENSE_FEATURES} integer and {NUM_SPARSE_FEATURES} categorical features)"
        )
    ends = separators.reshape(len(line_ends), NUM_FIELDS)
    starts = np.empty_like(ends)
    starts[:, 1:] = ends[:, :-1] + 1
    if len(ends):
        starts[:, 0] = np.concatenate(([0], ends[:-1, -1] + 1))
    return FieldSpans(data, starts, ends - starts, source, first_line)


def parse_numbers(spans: FieldSpans, fields: slice) -> np.ndarray:
    """Numeric fields as float32 the way decode_csv reads them; missing ones are 0 (the reference default)."""
    starts, lengths = spans.starts[:, fields], spans.lengths[:, fields]
    negative = (lengths > 0) & (spans.data[starts] == _MINUS)
    num_digits = lengths - negative
    values = np.zeros(starts.shape, dtype=np.int64)
    malformed = ((num_digits == 0) & negative) | (num_digits > _MAX_FAST_DIGITS)  # a lone '-', or too long
    first_digit = starts + negative
    for position in range(min(int(num_digits.max(initial=0)), _MAX_FAST_DIGITS)):
        in_field = position < num_digits
        digit = spans.data[first_digit + position].astype(np.int64) - _ZERO
        is_digit = (digit >= 0) & (digit <= 9)
        malformed |= in_field & ~is_digit
        values = np.where(in_field & is_digit, values * 10 + digit, values)
    # int64 -> float32 rounds to nearest even, as decode_csv's correctly rounded parse does.
    result = np.where(negative, -values, values).astype(np.float32)
    for line, column in zip(*np.nonzero(malformed), strict=True):
        result[line, column] = _parse_float_slowly(spans, int(line), fields.start + int(column))
    result[spans.is_missing(fields)] = 0.0
    return result


def _parse_float_slowly(spans: FieldSpans, line: int, field: int) -> np.float32:
    text = spans.text(line, field)
    try:
        return np.float32(float(text.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        raise RawFormatError(
            f"{spans.source}: line {spans.first_line + line}, field {field + 1}: {text[:40]!r} is not a number"
        ) from None


def gather_bytes(spans: FieldSpans, lines: np.ndarray, field: int, length: int) -> np.ndarray:
    """(len(lines), length) uint8: the text of `field` on the given lines, all of that length."""
    offsets = spans.starts[lines, field][:, None] + np.arange(length)
    return spans.data[offsets]
