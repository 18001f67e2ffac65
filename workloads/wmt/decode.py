"""Beam search with cached incremental decoding, as the reference translates for BLEU (reference §4.9).

The reference's algorithm (from the Flax WMT example): every sequence starts
with a dummy token 0; each step extends the live beams by their 2K best
continuations, keeps the K best that did not just emit EOS as live beams and
merges the ones that did into the K best finished sequences, scored by
log-probability / ((5 + length) / 6) ** alpha. The search stops at the
maximum length, or once no live beam can still beat every finished one. A
batch item with no finished sequence returns its live beams.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Tuple

import torch
import torch.nn.functional as F

EOS_ID = 2  # SentencePiece's default end-of-sentence id, appended to every tokenised sentence
BEAM_SIZE = 4
LENGTH_PENALTY_ALPHA = 0.6
# "Minus infinity" that stays finite, so sums and comparisons never produce NaN.
NEG_INF = -1.0e7
# The termination test needs a host sync; checking it every few steps instead of every
# step gives the same result, because once it holds the finished set can no longer change.
TERMINATION_CHECK_EVERY = 4


def length_penalty(length, alpha: float = LENGTH_PENALTY_ALPHA):
    """((5 + length) / 6) ** alpha; dividing a log-probability by it favours longer translations."""
    return ((5.0 + length) / 6.0) ** alpha


@dataclasses.dataclass
class BeamState:
    step: int  # tokens decoded so far (the dummy start token sits at index 0)
    live_seqs: torch.Tensor  # (B, K, L) int64
    live_log_probs: torch.Tensor  # (B, K), ascending, so [:, -1] is the best live beam
    finished_seqs: torch.Tensor  # (B, K, L)
    finished_scores: torch.Tensor  # (B, K), ascending
    finished_flags: torch.Tensor  # (B, K) bool: the slot holds a real finished sequence


def _take_beams(values: torch.Tensor, beam_indices: torch.Tensor) -> torch.Tensor:
    """values (B, K_old, ...) gathered along the beam axis with beam_indices (B, K_new)."""
    batch_indices = torch.arange(values.shape[0], device=values.device).unsqueeze(1)
    return values[batch_indices, beam_indices]


def _search_finished(state: BeamState, max_length: int, alpha: float) -> bool:
    """True when no live beam, even at the most favourable length, beats every finished sequence."""
    best_live = state.live_log_probs[:, -1:] / length_penalty(max_length, alpha)  # (B, 1)
    worst_finished = state.finished_scores.min(dim=1, keepdim=True).values  # (B, 1)
    worst_finished = torch.where(state.finished_flags, worst_finished, torch.full_like(worst_finished, NEG_INF))
    return bool((worst_finished > best_live).all())


def _advance(state: BeamState, logits: torch.Tensor, beam_size: int, eos_id: int, alpha: float):
    """One step: logits (B*K, V) for each live beam's next token -> (new state, parent beam of each live beam)."""
    batch_size = state.live_seqs.shape[0]
    log_probs = F.log_softmax(logits.float(), dim=-1).view(batch_size, beam_size, -1)  # (B, K, V)
    vocab_size = log_probs.shape[-1]
    log_probs = log_probs + state.live_log_probs.unsqueeze(-1)

    # The 2K best continuations over all beams, so K survive even if K of them end here.
    top_log_probs, top_flat = log_probs.view(batch_size, beam_size * vocab_size).topk(2 * beam_size)  # (B, 2K)
    top_parents = torch.div(top_flat, vocab_size, rounding_mode="floor")
    top_tokens = top_flat % vocab_size
    top_seqs = _take_beams(state.live_seqs, top_parents).clone()  # (B, 2K, L)
    # The reference writes the new token into every later slot, so a finished
    # sequence is followed by EOS up to the end; only the first slot survives later steps otherwise.
    top_seqs[:, :, state.step + 1 :] = top_tokens.unsqueeze(-1)
    just_finished = top_tokens == eos_id

    # Live: the K best that did not just end (ascending order, as the reference keeps them).
    live_candidates = top_log_probs + just_finished * NEG_INF
    keep = live_candidates.topk(beam_size).indices.flip(1)  # (B, K)
    live_seqs = _take_beams(top_seqs, keep)
    live_log_probs = _take_beams(live_candidates, keep)
    parents = _take_beams(top_parents, keep)

    # Finished: merge the newly ended sequences (length-normalised) into the K best so far.
    new_scores = top_log_probs / length_penalty(state.step + 1, alpha) + (~just_finished) * NEG_INF
    all_seqs = torch.cat([state.finished_seqs, top_seqs], dim=1)  # (B, 3K, L)
    all_scores = torch.cat([state.finished_scores, new_scores], dim=1)
    all_flags = torch.cat([state.finished_flags, just_finished], dim=1)
    best = all_scores.topk(beam_size).indices.flip(1)
    new_state = BeamState(
        step=state.step + 1,
        live_seqs=live_seqs,
        live_log_probs=live_log_probs,
        finished_seqs=_take_beams(all_seqs, best),
        finished_scores=_take_beams(all_scores, best),
        finished_flags=_take_beams(all_flags, best),
    )
    return new_state, parents


def beam_search(
    next_token_logits: Callable[[torch.Tensor], torch.Tensor],
    reorder: Callable[[torch.Tensor], None],
    batch_size: int,
    max_length: int,
    device: torch.device,
    beam_size: int = BEAM_SIZE,
    alpha: float = LENGTH_PENALTY_ALPHA,
    eos_id: int = EOS_ID,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Searches translations of at most max_length - 1 tokens.

    next_token_logits: (B*K, 1) current tokens -> (B*K, V) logits, advancing the model's cache;
    reorder: (B*K,) flat indices of the parent sequences -> rearranges that cache.
    Returns sequences (B, K, max_length) starting with the dummy 0 and scores (B, K), best beam last.
    """
    state = BeamState(
        step=0,
        live_seqs=torch.zeros(batch_size, beam_size, max_length, dtype=torch.long, device=device),
        # Only beam 0 is alive at first; the copies would otherwise all propose the same tokens.
        live_log_probs=torch.tensor([0.0] + [NEG_INF] * (beam_size - 1), device=device).repeat(batch_size, 1),
        finished_seqs=torch.zeros(batch_size, beam_size, max_length, dtype=torch.long, device=device),
        finished_scores=torch.full((batch_size, beam_size), NEG_INF, device=device),
        finished_flags=torch.zeros(batch_size, beam_size, dtype=torch.bool, device=device),
    )
    flat_offsets = (torch.arange(batch_size, device=device) * beam_size).unsqueeze(1)  # (B, 1)
    while state.step < max_length - 1:
        if state.step % TERMINATION_CHECK_EVERY == 0 and _search_finished(state, max_length, alpha):
            break
        current = state.live_seqs[:, :, state.step].reshape(batch_size * beam_size, 1)
        state, parents = _advance(state, next_token_logits(current), beam_size, eos_id, alpha)
        reorder((parents + flat_offsets).reshape(-1))

    any_finished = state.finished_flags.any(dim=1)  # (B,)
    seqs = torch.where(any_finished[:, None, None], state.finished_seqs, state.live_seqs)
    scores = torch.where(any_finished[:, None], state.finished_scores, state.live_log_probs)
    return seqs, scores


@torch.no_grad()
def translate(model, inputs: torch.Tensor, max_length: int, beam_size: int = BEAM_SIZE) -> torch.Tensor:
    """Best beam-search translation of each source row in inputs (B, S): (B, max_length - 1) token ids.

    `model` is the bare Transformer (not a DDP or compiled wrapper); it is put in eval mode.
    """
    model.eval()
    memory = model.encoder(inputs)  # (B, S, D)
    cache = model.decoder.start_decoding(
        memory.repeat_interleave(beam_size, dim=0), inputs.repeat_interleave(beam_size, dim=0), max_length
    )
    seqs, _ = beam_search(
        lambda tokens: model.decoder.decode_step(tokens, cache),
        cache.reorder,
        batch_size=inputs.shape[0],
        max_length=max_length,
        device=inputs.device,
        beam_size=beam_size,
    )
    return seqs[:, -1, 1:]  # the best beam, without the dummy start token
