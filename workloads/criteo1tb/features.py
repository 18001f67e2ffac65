"""The reference's model inputs from raw Criteo lines: 13 log-scaled integers and 26 hashed categories.

Reference §4.2 (the TensorFlow parse function of the upstream pipeline):
  * label and integers are read as float32, missing ones as 0;
  * integer feature x becomes log(max(x, 0) + 1), computed in float32;
  * categorical value v of column i (0..25) becomes
    `to_hash_bucket_fast(v + str(i), VOCAB_SIZES[i])` = Fingerprint64(v + str(i)) mod VOCAB_SIZES[i],
    with '00000000' for a missing value;
  * the bucket ids are cast to float32 and concatenated after the 13 dense features, so an
    id above 2**24 is rounded to a representable float32 before the model takes it modulo
    its vocabulary size. That rounding is part of the reference's data and is kept.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from workloads.criteo1tb import tsv_format
from workloads.criteo1tb.farmhash import fingerprint64
from workloads.criteo1tb.tsv_format import FIRST_SPARSE_FIELD, NUM_DENSE_FEATURES, NUM_LABELS, NUM_SPARSE_FEATURES

NUM_INPUTS = NUM_DENSE_FEATURES + NUM_SPARSE_FEATURES  # 39 columns of `inputs`
MISSING_CATEGORY = b"00000000"  # the reference's record default for a categorical field

# Per-column hash-bucket counts of the reference pipeline (its "raw vocab sizes", taken from
# Google Cloud's DLRM tutorial); the largest columns exceed the model's 4,194,304-row table,
# which the model folds in with a modulo.
VOCAB_SIZES = (
    39_884_406, 39_043, 17_289, 7_420, 20_263, 3, 7_120, 1_543, 63,
    38_532_951, 2_953_546, 403_346, 10, 2_208, 11_938, 155, 4, 976, 14,
    39_979_771, 25_641_295, 39_664_984, 585_935, 12_972, 108, 36,
)
_HEX_LENGTH = 8  # Criteo's categorical values are 32-bit hashes in 8 hex digits

_DENSE_FIELDS = slice(NUM_LABELS, NUM_LABELS + NUM_DENSE_FEATURES)
_SPARSE_FIELDS = slice(FIRST_SPARSE_FIELD, FIRST_SPARSE_FIELD + NUM_SPARSE_FEATURES)
_LABEL_FIELD = slice(0, NUM_LABELS)


def dense_features(raw: np.ndarray) -> np.ndarray:
    """log(relu(x) + 1) in float32, step by step as the reference computes it."""
    positive = np.maximum(raw.astype(np.float32, copy=False), np.float32(0))
    return np.log(positive + np.float32(1))


def _column_suffix(column: int) -> np.ndarray:
    return np.frombuffer(str(column).encode("ascii"), dtype=np.uint8)


def _fingerprints_with_suffix(values: np.ndarray, columns: range) -> np.ndarray:
    """Fingerprint64 of value + str(column) for an (n, len(columns), width) block of equal-width values."""
    n, count, width = values.shape
    suffix = np.stack([_column_suffix(column) for column in columns])  # (count, digits)
    strings = np.concatenate([values, np.broadcast_to(suffix, (n, count, suffix.shape[1]))], axis=2)
    return fingerprint64(strings.reshape(n * count, width + suffix.shape[1])).reshape(n, count)


def category_fingerprints(spans: tsv_format.FieldSpans) -> np.ndarray:
    """(n, 26) uint64 Fingerprint64 of each categorical value with its column index appended."""
    n = spans.num_lines
    missing = spans.is_missing(_SPARSE_FIELDS)
    lengths = spans.lengths[:, _SPARSE_FIELDS]
    regular = missing | (lengths == _HEX_LENGTH)

    # Fast path for the official data: every value is 8 hex digits or missing ('00000000').
    words = spans.words_at(spans.starts[:, _SPARSE_FIELDS])  # (n, 26) the first 8 bytes of each value
    words[missing] = np.frombuffer(MISSING_CATEGORY, dtype="<u8")[0]
    values = words.view(np.uint8).reshape(n, NUM_SPARSE_FEATURES, _HEX_LENGTH)
    result = np.empty((n, NUM_SPARSE_FEATURES), dtype=np.uint64)
    # One call per suffix width: columns 0-9 append one digit, 10-25 two.
    for columns in (range(0, 10), range(10, NUM_SPARSE_FEATURES)):
        result[:, columns.start : columns.stop] = _fingerprints_with_suffix(values[:, columns.start : columns.stop], columns)

    # Values of any other length (never in the official logs): one call per column and length.
    for column in np.flatnonzero(~regular.all(axis=0)):
        irregular = np.flatnonzero(~regular[:, column])
        for length in np.unique(lengths[irregular, column]):
            lines = irregular[lengths[irregular, column] == length]
            text = tsv_format.gather_bytes(spans, lines, FIRST_SPARSE_FIELD + int(column), int(length))
            result[lines, column] = _fingerprints_with_suffix(text[:, None, :], range(int(column), int(column) + 1))[:, 0]
    return result


def hash_buckets(fingerprints: np.ndarray) -> np.ndarray:
    """to_hash_bucket_fast's bucket ids (n, 26) int64: fingerprint modulo the column's bucket count."""
    return (fingerprints % np.asarray(VOCAB_SIZES, dtype=np.uint64)).astype(np.int64)


def parse_block(block: bytes, source: str, first_line: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Whole raw lines -> (inputs (n, 39) float32, targets (n,) float32), exactly the reference's values."""
    spans = tsv_format.split_fields(block, source, first_line)
    targets = tsv_format.parse_numbers(spans, _LABEL_FIELD)[:, 0]
    dense = dense_features(tsv_format.parse_numbers(spans, _DENSE_FIELDS))
    # int64 -> float32 rounds to nearest even, like the reference's tf.cast.
    sparse = hash_buckets(category_fingerprints(spans)).astype(np.float32)
    return np.concatenate([dense, sparse], axis=1), targets
