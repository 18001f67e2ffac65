"""Beam search: hand-worked searches over a tiny Markov 'model', length penalty, stopping and fallbacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workloads.wmt import decode
from workloads.wmt.bleu import tokens_up_to_eos
from workloads.wmt.model import Transformer, TransformerConfig

START, A, EOS, B = 0, 1, 2, 3  # token ids of the toy vocabulary (EOS is SentencePiece's 2)


def markov_model(table):
    """Next-token log-probabilities that depend only on the current token: table[current] = probabilities.

    Probability 0 becomes a logit of -1e9, below the search's own "minus infinity", so it is never chosen.
    """
    probabilities = torch.tensor(table, dtype=torch.float32)
    log_table = torch.where(probabilities > 0, probabilities.log(), torch.tensor(-1e9))
    calls = []

    def next_token_logits(tokens):
        calls.append(tokens.clone())
        return log_table[tokens[:, 0]]

    return next_token_logits, calls


def search(table, max_length=6, alpha=decode.LENGTH_PENALTY_ALPHA, batch_size=1):
    step, calls = markov_model(table)
    seqs, scores = decode.beam_search(step, lambda index: None, batch_size, max_length, torch.device("cpu"), alpha=alpha)
    return seqs, scores, calls


def test_the_best_finished_translation_wins_with_its_length_normalised_score():
    # From the start: a 0.6, EOS 0.3, b 0.1; after a: EOS 0.9. Best: "a EOS", log(0.6 * 0.9) / ((5 + 2) / 6) ** 0.6.
    table = [[0.0, 0.6, 0.3, 0.1], [0.0, 0.05, 0.9, 0.05], [0.0, 0.1, 0.8, 0.1], [0.0, 0.1, 0.1, 0.8]]
    seqs, scores, _ = search(table)
    assert seqs[0, -1, :3].tolist() == [START, A, EOS]
    assert seqs[0, -1, 3:].tolist() == [EOS] * 3  # the reference fills the rest with the last token
    assert scores[0, -1].item() == pytest.approx(math.log(0.6 * 0.9) / (7 / 6) ** 0.6, rel=1e-5)
    assert decode.length_penalty(2) == pytest.approx((7 / 6) ** 0.6)


def test_the_length_penalty_can_prefer_the_longer_translation():
    # "EOS" alone: log 0.40 = -0.916. "a EOS": log(0.38 * 0.99) = -0.978, divided by 1.097 -> -0.892: better.
    table = [[0.0, 0.38, 0.40, 0.22], [0.0, 0.005, 0.99, 0.005], [0.0, 0.1, 0.8, 0.1], [0.0, 0.1, 0.1, 0.8]]
    seqs, _, _ = search(table)
    assert seqs[0, -1, 1:3].tolist() == [A, EOS]
    seqs_without_penalty, _, _ = search(table, alpha=0.0)
    assert seqs_without_penalty[0, -1, 1].item() == EOS


def test_without_any_finished_translation_the_live_beams_are_returned():
    table = [[0.0, 0.7, 0.0, 0.3], [0.0, 0.9, 0.0, 0.1], [0.0, 0.5, 0.0, 0.5], [0.0, 0.4, 0.0, 0.6]]
    seqs, scores, calls = search(table, max_length=5)
    assert seqs[0, -1].tolist() == [START, A, A, A, A]  # the most probable live beam, best last
    assert scores[0, -1].item() == pytest.approx(math.log(0.7 * 0.9**3), rel=1e-5)
    assert len(calls) == 4  # max_length - 1 steps
    # Cut the reference's way, an unfinished translation keeps only its first token.
    assert tokens_up_to_eos(seqs[0, -1, 1:].numpy(), EOS).tolist() == [A]
    assert tokens_up_to_eos(np.array([A, B, EOS, EOS]), EOS).tolist() == [A, B, EOS]


def test_the_search_stops_once_no_live_beam_can_win(monkeypatch):
    # EOS is so likely that four finished translations soon beat anything still alive.
    table = [[0.0, 0.06, 0.9, 0.04]] * 4
    seqs, scores, calls = search(table, max_length=60, batch_size=2)
    assert len(calls) < 20
    monkeypatch.setattr(decode, "_search_finished", lambda *args: False)  # search to the end instead
    full_seqs, full_scores, full_calls = search(table, max_length=60, batch_size=2)
    assert len(full_calls) == 59
    assert torch.allclose(scores, full_scores)
    assert torch.equal(seqs[:, -1], full_seqs[:, -1])
    assert seqs[0, -1, 1].item() == EOS


def test_translate_returns_the_best_beam_of_every_source_row():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=30, d_model=16, num_heads=2, d_hidden=16, num_layers=1, max_length=12))
    inputs = torch.tensor([[5, 6, 7, 2, 0, 0], [8, 2, 0, 0, 0, 0]])
    translations = decode.translate(model, inputs, max_length=10)
    assert translations.shape == (2, 9) and translations.dtype == torch.long
    assert not model.training
    # Each row is translated independently of the others in the batch.
    alone = decode.translate(model, inputs[1:], max_length=10)
    assert torch.equal(alone[0], translations[1])
