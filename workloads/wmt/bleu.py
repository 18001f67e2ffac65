"""Corpus BLEU as the reference scores translations (reference §4.9).

The reference re-implements sacrebleu 1.3.1's `corpus_bleu` with its
defaults: mteval-13a tokenisation, n-grams up to 4, 'exp' smoothing (a
missing n-gram order gets precision 1 / (2^k * total) for its k-th zero),
no lowercasing, no effective order, brevity penalty exp(1 - ref/sys) when
the system output is shorter. sacrebleu 2.x computes exactly that with the
same arguments, so it is used here rather than a copy.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

BLEU_SETTINGS = {"tokenize": "13a", "smooth_method": "exp", "lowercase": False, "use_effective_order": False}


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """BLEU in 0..100 of the predictions against one reference each."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)], **BLEU_SETTINGS).score)


def gather_across_ranks(texts: List[str]) -> List[str]:
    """Under DDP every rank translates its own rows; BLEU needs the whole corpus, so all ranks share theirs.

    Corpus BLEU depends only on the summed n-gram counts and lengths, so scoring the gathered corpus
    gives the score of upstream's all-reduced statistics.
    """
    from workloads import parallel

    return [text for part in parallel.all_gather_objects(texts) for text in part]


def tokens_up_to_eos(tokens: np.ndarray, eos_id: int) -> np.ndarray:
    """The ids up to and including the first EOS, as the reference cuts them.

    Reference quirk kept: with no EOS at all, argmax finds index 0, so only the
    first token survives (an unfinished beam-search output decodes to one token).
    """
    return tokens[: int(np.argmax(tokens == eos_id)) + 1]
