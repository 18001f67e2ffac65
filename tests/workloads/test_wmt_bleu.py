"""Corpus BLEU against the reference's definition (sacrebleu 1.3.1 defaults), worked by hand.

Definition: 13a tokenisation; per order n = 1..4, clipped n-gram matches over
the corpus / n-grams in the output; the k-th order with no match gets
1 / (2^k * total) ('exp' smoothing); BLEU = 100 * BP * geometric mean, with
BP = exp(1 - ref_len / sys_len) when the output is shorter, else 1.
"""

from __future__ import annotations

import math

import pytest

from workloads.wmt.bleu import corpus_bleu, gather_across_ranks


def test_one_sentence_with_a_missing_4_gram():
    # the cat sat on the mat / the cat is on the mat: 1-grams 5/6, 2-grams 3/5, 3-grams 1/4
    # ("on the mat"), 4-grams 0/3 -> 1/(2*3); equal lengths, BP 1.
    expected = 100 * ((5 / 6) * (3 / 5) * (1 / 4) * (1 / 6)) ** 0.25
    assert corpus_bleu(["the cat sat on the mat"], ["the cat is on the mat"]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(37.9918, abs=1e-4)


def test_a_corpus_with_punctuation_and_a_brevity_penalty():
    # 13a splits off the punctuation: "Hello , world !" (4 tokens, all n-grams match) and
    # "It rains ." vs "It is raining today ." (3 vs 5 tokens). Corpus totals: 1-grams 6/7, 2-grams 3/5,
    # 3-grams 2/3, 4-grams 1/1; lengths 7 vs 9, so BP = exp(1 - 9/7).
    expected = 100 * math.exp(1 - 9 / 7) * ((6 / 7) * (3 / 5) * (2 / 3) * 1.0) ** 0.25
    score = corpus_bleu(["Hello, world!", "It rains."], ["Hello, world!", "It is raining today."])
    assert score == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(57.5035, abs=1e-4)


def test_exp_smoothing_halves_again_for_each_further_missing_order():
    # a b c d e / a x b y c: 1-grams 3/5; 2-, 3- and 4-grams have no match: 1/(2*4), 1/(4*3), 1/(8*2).
    expected = 100 * ((3 / 5) * (1 / 8) * (1 / 12) * (1 / 16)) ** 0.25
    assert corpus_bleu(["a b c d e"], ["a x b y c"]) == pytest.approx(expected, rel=1e-12)


def test_13a_unescapes_entities_and_keeps_case():
    assert corpus_bleu(['He said &quot;yes&quot;.'], ['He said "yes".']) == pytest.approx(100.0)
    assert corpus_bleu(["the cat"], ["The cat"]) < 100.0  # no lowercasing
    assert corpus_bleu([""], ["Something was said here."]) == 0.0  # empty output: BP 0


def test_streams_must_align_and_a_single_process_keeps_its_texts():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    assert gather_across_ranks(["x", "y"]) == ["x", "y"]
