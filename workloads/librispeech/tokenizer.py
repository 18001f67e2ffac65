"""The LibriSpeech SentencePiece vocabulary: trained the reference's way, used to tokenise and detokenise.

Reference recipe (datasets/librispeech_tokenizer.py, called by datasets/dataset_setup.py):
  * training text: the transcripts of train-clean-100 only, speaker folder by chapter folder,
    each line of a `<speaker>-<chapter>.trans.txt` without its utterance id, one per line,
    until 10^7 characters are written (each line counted with its newline; the line that
    would pass the limit and everything after it are left out; train-clean-100 holds about
    5.4 million, so in practice all of it). The transcripts are taken before the length
    filters of the preparation, so dropped utterances still shape the vocabulary;
  * a unigram model of 1,024 pieces, character coverage 1.0, SentencePiece's other defaults:
    unk 0, bos 1, eos 2, no pad piece;
  * the serialised model is stored as `spm_model.vocab` in the data dir (a binary
    SentencePiece model, despite the name), and read with add_eos=True, add_bos=False.
CTC uses id 0 as its blank, which is also the unk id; targets are padded with 0 as well.

Difference: the reference lists speaker and chapter folders in `os.listdir` order, which
depends on the file system; here they are taken in numeric order. It matters only through
the 10^7-character cap, which the real train-clean-100 does not reach.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Iterable, List, Sequence

import numpy as np

MODEL_FILE_NAME = "spm_model.vocab"  # the reference's name for the serialised model in the data dir
VOCAB_SIZE = 1024  # the Conformer's and DeepSpeech's output classes
MAX_TRAINING_CHARS = 10_000_000
TRAINING_SUBSETS = ("train-clean-100",)  # the reference trains on this archive's transcripts only
UNK_ID = 0  # SentencePiece's default; also CTC's blank and the targets' padding value
BOS_ID = 1
EOS_ID = 2


def training_lines(transcripts: Iterable[str], max_chars: int = MAX_TRAINING_CHARS) -> List[str]:
    """The transcripts the reference feeds the trainer: in order, while the running count of
    characters (newlines included) stays within max_chars."""
    lines, count = [], 0
    for text in transcripts:
        count += len(text) + 1
        if count > max_chars:
            break
        lines.append(text)
    return lines


def training_text_digest(lines: Sequence[str], vocab_size: int, soft_limit: bool) -> str:
    """Identifies a training run: the same digest means the same model, so a rerun can keep it."""
    digest = hashlib.sha256(f"{vocab_size} {soft_limit}\n".encode())
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def train(
    lines: Sequence[str],
    model_path: Path,
    vocab_size: int = VOCAB_SIZE,
    soft_limit: bool = False,
    num_threads: int = 0,
) -> Path:
    """Trains the unigram model on `lines` (see `training_lines`) and writes it to model_path.

    soft_limit: vocab_size becomes an upper bound (SentencePiece's hard_vocab_limit=false), for
    sample sets too small to support 1,024 pieces; the full set always gives exactly vocab_size.
    """
    import sentencepiece

    if not lines:
        raise ValueError("no transcripts to train the tokenizer on (train-clean-100 is empty)")
    # The lines go in directly rather than through a text file as the reference's do: the same
    # model, but its stored trainer options then name no temporary paths, so equal training
    # gives byte-equal files.
    model = io.BytesIO()
    options = dict(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        character_coverage=1.0,
        model_type="unigram",
        minloglevel=2,  # quiet; does not change the model
    )
    if soft_limit:
        options["hard_vocab_limit"] = False
    if num_threads:
        options["num_threads"] = num_threads
    try:
        sentencepiece.SentencePieceTrainer.train(**options)
    except RuntimeError as error:
        raise ValueError(f"SentencePiece could not train a {vocab_size}-piece vocabulary: {error}") from None
    model_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = model_path.with_name(model_path.name + ".tmp")
    temporary.write_bytes(model.getvalue())
    os.replace(temporary, model_path)
    return model_path


class Tokenizer:
    """A loaded SentencePiece model: transcripts -> int32 ids ending in EOS (no BOS), ids -> text."""

    def __init__(self, model_path: Path) -> None:
        import sentencepiece

        self.model_path = Path(model_path)
        try:
            self._processor = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
        except (OSError, RuntimeError) as error:
            raise ValueError(f"{model_path} is not a SentencePiece model ({error})") from None
        self.vocab_size = self._processor.get_piece_size()
        if self._processor.eos_id() != EOS_ID or self._processor.unk_id() != UNK_ID:
            raise ValueError(
                f"{model_path} has eos id {self._processor.eos_id()} and unk id {self._processor.unk_id()}; the "
                f"LibriSpeech workloads need SentencePiece's defaults (eos {EOS_ID}; unk {UNK_ID}, which CTC uses as blank)"
            )

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._processor.encode(text, add_eos=True), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; control ids (eos, bos) decode to nothing, as in tf-text's detokenize.

        A model has 1,024 output classes; a tokenizer trained on a small subset has fewer pieces,
        and ids beyond them decode as the unknown piece (one wrong word, never a crash).
        """
        return self._processor.decode([int(i) if int(i) < self.vocab_size else UNK_ID for i in ids])


def load_tokenizer(model_path: Path) -> Tokenizer:
    return Tokenizer(model_path)
