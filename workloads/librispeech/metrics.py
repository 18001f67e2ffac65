"""Word error rate for the LibriSpeech workloads: greedy CTC decoding, detokenisation, word-level edit distance (reference §4.6).

Upstream (librispeech_pytorch/workload.py `greedy_decode`, librispeech_conformer/metrics.py
`compute_wer`, `edit_distance`):
  * greedy decoding: the arg-max id of every frame; padded frames become 0 (the blank); runs
    of the same id collapse to one; blanks are dropped; the ids left are moved to the front of
    a zero-filled (B, T) array whose paddings are 1.0 where no id is;
  * each row's decoded ids and its reference ids (the unpadded targets, EOS included) are
    detokenised with the SentencePiece model (EOS decodes to nothing);
  * word errors = the Levenshtein distance between the two texts split into words
    (substitutions, insertions, deletions, each 1); reference words = the words of the
    reference text; WER = sum of word errors / sum of reference words, over the split.

Rows of weight 0 (the eval pipeline's padding rows) are skipped. Upstream has none (its
last eval batch is short), so its sums are these sums.

An upstream quirk, kept out of the default: `compute_wer` applies `str()` to the tf-text
tensor that `detokenize` returns, so every text it scores reads
`tf.Tensor(b'HELLO WORLD', shape=(), dtype=string)`. That counts two extra words
("shape=(),", "dtype=string)") in every reference, and glues the first and last words to the
wrapper (an apostrophe in one text but not the other switches Python's bytes quotes from
' to ", which adds an error). `upstream_tf_strings=True` reproduces it, for comparing a
run's WER with upstream's logged numbers and targets, which were computed this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    import torch

    from workloads.librispeech.tokenizer import Tokenizer

BLANK_ID = 0


def greedy_decode(logits: "torch.Tensor", logit_paddings: "torch.Tensor") -> Tuple["torch.Tensor", "torch.Tensor"]:
    """(ids (B, T) int64, paddings (B, T) float32) from logits (B, T, V) and their paddings (B, T), on their device."""
    import torch

    frames = logits.argmax(dim=-1) * (logit_paddings == 0)  # a padded frame reads as blank
    previous = torch.cat([torch.full_like(frames[:, :1], -1), frames[:, :-1]], dim=1)
    keep = (frames != previous) & (frames != BLANK_ID)
    length = frames.shape[1]
    # Kept ids go to their rank among the row's kept ids; the rest to a spare last column.
    slots = torch.where(keep, keep.cumsum(dim=1) - 1, torch.full_like(frames, length))
    decoded = torch.zeros((frames.shape[0], length + 1), dtype=frames.dtype, device=frames.device)
    decoded.scatter_(1, slots, frames)
    decoded = decoded[:, :length]
    counts = keep.sum(dim=1, keepdim=True)
    paddings = (torch.arange(length, device=frames.device)[None, :] >= counts).to(torch.float32)
    return decoded, paddings


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level Levenshtein distance: the fewest substitutions, insertions and deletions of whole words."""
    hyp, ref = hypothesis.split(), reference.split()
    row = list(range(len(ref) + 1))  # distances from the empty hypothesis prefix
    for i, hyp_word in enumerate(hyp, 1):
        diagonal, row[0] = row[0], i
        for j, ref_word in enumerate(ref, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (hyp_word != ref_word))
    return row[-1]


def wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Sum of word errors / sum of reference words (a corpus WER, not a mean of per-utterance rates)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    words = sum(len(reference.split()) for reference in references)
    if words == 0:
        raise ValueError("the references hold no words")
    return sum(word_errors(h, r) for h, r in zip(hypotheses, references)) / words


def tf_string_form(text: str) -> str:
    """How str() shows the scalar tf.string tensor upstream's WER scores (see the module docstring)."""
    return f"tf.Tensor({text.encode('utf-8')!r}, shape=(), dtype=string)"


def upstream_word_counts(hypothesis: str, reference: str) -> Tuple[int, int]:
    """(word errors, reference words) exactly as upstream's compute_wer counts them for one row."""
    hyp, ref = tf_string_form(hypothesis), " ".join(tf_string_form(reference).split())
    return word_errors(hyp, ref), len(ref.split(" "))


def _numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _unpadded(ids: np.ndarray, paddings: np.ndarray) -> Iterable[np.ndarray]:
    """Each row's ids where its padding is 0 (upstream takes the first (paddings == 0).sum() ids)."""
    lengths = (paddings == 0).sum(axis=-1)
    return (row[:length] for row, length in zip(ids, lengths))


def detokenize_rows(ids: Any, paddings: Any, tokenizer: "Tokenizer") -> list:
    """Texts of a batch of padded id rows (decoded or targets; float ids are fine)."""
    return [tokenizer.decode(row.astype(np.int64)) for row in _unpadded(_numpy(ids), _numpy(paddings))]


def batch_word_errors(
    decoded: Any,
    decoded_paddings: Any,
    targets: Any,
    target_paddings: Any,
    tokenizer: "Tokenizer",
    weights: Optional[Any] = None,
    upstream_tf_strings: bool = False,
) -> Tuple[float, float]:
    """(word errors, reference words) of one eval batch, over its rows of nonzero weight.

    Sum both over batches (and ranks) and divide for the split's WER. Takes torch tensors or
    numpy arrays: decoded (B, T) with its paddings from greedy_decode, the batch's targets.
    """
    hypotheses = detokenize_rows(decoded, decoded_paddings, tokenizer)
    references = detokenize_rows(targets, target_paddings, tokenizer)
    rows = range(len(references)) if weights is None else np.flatnonzero(_numpy(weights) > 0)
    errors = words = 0
    for row in rows:
        if upstream_tf_strings:
            row_errors, row_words = upstream_word_counts(hypotheses[row], references[row])
        else:
            row_errors, row_words = word_errors(hypotheses[row], references[row]), len(references[row].split())
        errors += row_errors
        words += row_words
    return float(errors), float(words)
