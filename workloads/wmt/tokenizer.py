"""The WMT SentencePiece vocabulary: trained the reference's way, used to tokenise and detokenise.

Reference recipe (`wmt/tokenizer.py`, from the Flax WMT example): write the
training pairs in stored order as alternating German / English lines until
10^7 bytes are written (the pair that crosses the limit is kept whole), then
train a unigram model of 32,000 pieces with character coverage 1.0 and
SentencePiece's default special ids (unk 0, bos 1, eos 2, no pad piece; the
input pipeline pads with 0). Every tokenised sentence ends with EOS.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple

import numpy as np

MODEL_FILE_NAME = "wmt_sentencepiece_model"  # the reference's file name in the data dir
VOCAB_SIZE = 32_000
MAX_CORPUS_BYTES = 10_000_000
PAD_ID = 0  # also SentencePiece's unk id: the reference pads with it, so unknown pieces count as padding
EOS_ID = 2


def write_training_text(pairs: Iterable[Tuple[str, str]], path: Path, max_bytes: int = MAX_CORPUS_BYTES) -> int:
    """Writes de/en lines of `pairs` until max_bytes are written; returns the bytes written."""
    written = 0
    with open(path, "wb") as handle:
        for source, target in pairs:
            if written >= max_bytes:
                break
            for sentence in (source, target):
                line = sentence.encode("utf-8") + b"\n"
                handle.write(line)
                written += len(line)
    return written


def train(pairs: Iterable[Tuple[str, str]], model_path: Path, vocab_size: int = VOCAB_SIZE,
          max_bytes: int = MAX_CORPUS_BYTES, num_threads: int = 0) -> Path:
    """Trains the SentencePiece model on the first max_bytes of `pairs` and writes it to model_path."""
    import sentencepiece

    with tempfile.TemporaryDirectory(prefix="wmt_spm_") as scratch:
        text_path = Path(scratch) / "corpus.txt"
        write_training_text(pairs, text_path, max_bytes)
        prefix = Path(scratch) / "model"
        options = dict(
            input=str(text_path),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            character_coverage=1.0,
            model_type="unigram",
            minloglevel=2,  # training log only; does not change the model
        )
        if num_threads:
            options["num_threads"] = num_threads
        sentencepiece.SentencePieceTrainer.train(**options)
        model_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = model_path.with_name(model_path.name + ".tmp")
        temporary.write_bytes(prefix.with_suffix(".model").read_bytes())
        os.replace(temporary, model_path)
    return model_path


class Tokenizer:
    """A loaded SentencePiece model: text -> ids ending in EOS, and ids -> text."""

    def __init__(self, model_path: Path) -> None:
        import sentencepiece

        self.model_path = Path(model_path)
        self._processor = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
        self.vocab_size = self._processor.get_piece_size()
        if self._processor.eos_id() != EOS_ID or self._processor.unk_id() != PAD_ID:
            raise ValueError(
                f"{model_path} has eos id {self._processor.eos_id()} and unk id {self._processor.unk_id()}; "
                f"the WMT pipeline needs SentencePiece's defaults (eos {EOS_ID}, unk {PAD_ID})."
            )

    def encode(self, texts: Sequence[str], num_threads: int = -1) -> List[List[int]]:
        return self._processor.encode(list(texts), add_eos=True, num_threads=num_threads)

    def decode(self, ids: np.ndarray) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        # Ids past this vocabulary only arise when a small test vocabulary feeds the
        # reference's 32,000-way model; they read as unknown pieces.
        ids = np.where(ids < self.vocab_size, ids, PAD_ID)
        return self._processor.decode(ids.tolist())
