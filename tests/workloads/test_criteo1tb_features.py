"""Criteo raw-line parsing and the reference's features: FarmHash Fingerprint64, hash buckets, log scaling."""

from __future__ import annotations

import numpy as np
import pytest

from workloads.criteo1tb import farmhash, features, tsv_format
from workloads.criteo1tb.features import VOCAB_SIZES, parse_block


def _letters(length: int) -> str:
    return "".join(chr(97 + (i * 7) % 26) for i in range(length))


# Fingerprint64 of _letters(length), from Google's FarmHash C++ library (through the pyfarmhash
# bindings), covering every length branch of farmhashna::Hash64 (0-16, 17-32, 33-64, over 64).
FINGERPRINTS = [
    (0, 11160318154034397263), (1, 12917804110809363939), (2, 7334479770752477263), (3, 3268219959478574187),
    (4, 8899178591127745170), (5, 10853072327754618121), (7, 17088493756539222794), (8, 10643460534063147040),
    (9, 17221811645977154638), (10, 14242047910970827659), (15, 11791221699636333675), (16, 17624453864830929246),
    (17, 2237273621417572890), (24, 15616007536954119532), (32, 10824083725960157628), (33, 8045080651094301868),
    (48, 14934853808105169872), (64, 16149515108185634462), (65, 2768067016444695309), (100, 15524442050350733416),
    (128, 10481128642166395277), (129, 1060550032972533880), (200, 15075557378531049012),
]


@pytest.mark.parametrize("length, expected", FINGERPRINTS)
def test_fingerprint64_matches_farmhash(length, expected):
    assert farmhash.fingerprint64_of(_letters(length)) == expected


def test_fingerprint64_of_the_empty_string_is_farmhash_k2():
    assert farmhash.fingerprint64_of(b"") == 0x9AE16A3B2F90404F


def test_to_hash_bucket_fast_reproduces_tensorflows_documented_example():
    # tf.strings.to_hash_bucket_fast(["Hello", "TensorFlow", "2.x"], 3) == [0, 2, 2] (TensorFlow API docs).
    assert [farmhash.to_hash_bucket_fast(word, 3) for word in ("Hello", "TensorFlow", "2.x")] == [0, 2, 2]


def test_vectorised_rows_equal_one_at_a_time():
    rng = np.random.RandomState(0)
    for length in (3, 9, 10, 20, 40, 130):
        strings = rng.randint(0, 256, size=(5, length)).astype(np.uint8)
        assert farmhash.fingerprint64(strings).tolist() == [farmhash.fingerprint64_of(row.tobytes()) for row in strings]


def test_vocab_sizes_are_the_references_26_columns():
    assert len(VOCAB_SIZES) == 26
    assert VOCAB_SIZES[:3] == (39_884_406, 39_043, 17_289) and VOCAB_SIZES[-1] == 36
    assert sum(VOCAB_SIZES) == 187_767_399


def _line(label="1", dense=None, sparse=None) -> str:
    dense = dense if dense is not None else [""] * 13
    sparse = sparse if sparse is not None else [""] * 26
    return "\t".join([label, *dense, *sparse])


def test_a_hand_worked_line():
    dense = ["5", "", "-3", "-1", "0", "16777217", "99"] + [""] * 6
    sparse = ["68fd1e64", "", "80e26c9b"] + [""] * 6 + ["05db9164"] + [""] * 9 + ["e5ba7672"] + [""] * 6
    inputs, targets = parse_block((_line("1", dense, sparse) + "\n").encode(), "day_0")
    assert targets.tolist() == [1.0] and inputs.shape == (1, 39) and inputs.dtype == np.float32
    np.testing.assert_array_equal(
        inputs[0, :7], np.log(np.float32([6, 1, 1, 1, 1, 16777216 + 1, 100]), dtype=np.float32)
    )  # missing, -3 and -1 all give log(1) = 0; 16,777,217 reads as the float32 16,777,216, and + 1 rounds back to it
    assert inputs[0, 7:13].tolist() == [0.0] * 6
    # Buckets: Fingerprint64(value + column index) mod the column's size (values from FarmHash itself).
    assert inputs[0, 13 + 0] == 6_734_129  # '68fd1e640' mod 39,884,406
    assert inputs[0, 13 + 1] == int(farmhash.to_hash_bucket_fast("000000001", VOCAB_SIZES[1]))  # missing -> '00000000'
    assert inputs[0, 13 + 2] == 15_915  # '80e26c9b2'
    assert inputs[0, 13 + 9] == 31_105_631  # '05db91649'
    assert inputs[0, 13 + 19] == 19_086_686  # 'e5ba767219'
    assert inputs[0, 13 + 25] == 8  # missing in the last column: '0000000025' mod 36


def test_bucket_ids_make_the_float32_round_trip_of_the_reference():
    # '6a99b44c' in column 0 hashes to bucket 36,043,802, which float32 stores as 36,043,800.
    inputs, _ = parse_block((_line(sparse=["6a99b44c"] + [""] * 25) + "\n").encode(), "day_0")
    assert farmhash.to_hash_bucket_fast("6a99b44c0", VOCAB_SIZES[0]) == 36_043_802
    assert inputs[0, 13] == np.float32(36_043_800)


def test_na_value_and_empty_fields_are_missing_and_the_last_line_may_lack_a_newline():
    text = _line("-1", ["-1"] + [""] * 12, ["-1"] + [""] * 25) + "\n" + _line("0")
    inputs, targets = parse_block(text.encode(), "day_0")
    assert targets.tolist() == [0.0, 0.0]  # the label's na_value gives the default 0
    np.testing.assert_array_equal(inputs[0], inputs[1])  # '-1' reads exactly as an empty field


def test_every_column_matches_a_line_by_line_reading():
    rng = np.random.RandomState(1)
    lines = []
    for _ in range(50):
        dense = [rng.choice(["", "-1", "-2", str(rng.randint(0, 10**6)), "1.5", "2e3"]) for _ in range(13)]
        sparse = [rng.choice(["", "-1", f"{rng.randint(0, 2**32):08x}", "abc", "0123456789abcdef0"]) for _ in range(26)]
        lines.append(_line(str(rng.randint(0, 2)), dense, sparse))
    inputs, targets = parse_block(("\n".join(lines) + "\n").encode(), "day_0")
    for row, line in enumerate(lines):
        fields = line.split("\t")
        assert targets[row] == float(fields[0])
        for column in range(13):
            text = fields[1 + column]
            value = np.float32(0 if text in ("", "-1") else float(text))
            assert inputs[row, column] == np.log(np.maximum(value, np.float32(0)) + np.float32(1))
        for column in range(26):
            text = fields[14 + column]
            value = "00000000" if text in ("", "-1") else text
            assert inputs[row, 13 + column] == np.float32(farmhash.to_hash_bucket_fast(value + str(column), VOCAB_SIZES[column]))


def test_malformed_lines_are_named_with_file_and_line():
    good = _line("0")
    with pytest.raises(tsv_format.RawFormatError, match=r"day_7_03: line 12 has 39 tab-separated fields, expected 40"):
        parse_block((good + "\n" + good[:-1] + "\n").encode(), "day_7_03", first_line=11)
    bad_number = _line("0", ["12x"] + [""] * 12)
    with pytest.raises(tsv_format.RawFormatError, match=r"day_0: line 1, field 2: b'12x' is not a number"):
        parse_block(bad_number.encode(), "day_0")


def test_dense_features_are_log1p_of_the_positive_part_in_float32():
    raw = np.float32([[-5, 0, 1, np.e - 1, 1e9]])
    out = features.dense_features(raw)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 0, np.log(2), 1, np.log(1e9 + 1)]], rtol=1e-6)
