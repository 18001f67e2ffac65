"""Prepare WMT German->English under `<data-dir>/wmt/` from the official raw WMT files.

Steps, as the reference's data setup and input pipeline do them:
  1. read the raw files (see workloads/wmt/raw_format.py for which, and where
     to get them): WMT17 training corpora, newstest2013, newstest2014;
  2. put the training pairs in a fixed pseudo-random order (TFDS stores them in
     an order decided by hashing, so the reference's 1,024-example shuffle
     buffer mixes the corpora; a corpus-by-corpus order would not);
  3. train the SentencePiece vocabulary on the first 10^7 bytes of that order
     (unigram, 32,000 pieces, character coverage 1.0) unless one is given;
  4. tokenise every sentence (EOS appended), drop pairs whose longer side has
     more than 256 tokens (in every split: the reference filters its eval
     data too), and write memory-mappable arrays;
  5. write manifest.json last.

A raw dump smaller than the reference's (a missing training corpus, fewer
pairs), or `--subset`, or a non-reference `--vocab-size` / `--max-length`
gives a subset data dir: fine for smoke runs and tests, never scored.

Usage: python -m workloads.wmt.prepare --data-dir DIR --raw-dir RAW
           [--vocab-size 32000] [--max-length 256] [--subset] [--sentencepiece-model FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from workloads.data_manifest import MANIFEST_NAME, write_manifest
from workloads.wmt import raw_format, tokenizer
from workloads.wmt.token_arrays import SPLITS, RaggedTokens, TokenizedPairs, token_dtype, write_split

DATASET_NAME = "wmt"
METADATA_NAME = "preparation.json"
MAX_LENGTH = 256  # the reference drops pairs with a side longer than this, and packs rows of this length
TRAIN_ORDER_SEED = 0  # fixes the stored training order (step 2)
ENCODE_CHUNK = 100_000  # sentences tokenised per call: bounds the memory of the Python id lists


class PreparationError(SystemExit):
    """A preparation that cannot go on; the message says why and what to do."""


def stored_training_order(pairs: Sequence[raw_format.Pair]) -> List[raw_format.Pair]:
    order = np.random.RandomState(TRAIN_ORDER_SEED).permutation(len(pairs))
    return [pairs[index] for index in order]


def tokenize_pairs(pairs: Sequence[raw_format.Pair], vocab: tokenizer.Tokenizer, max_length: int) -> TokenizedPairs:
    """Token ids of both sides; pairs whose longer side exceeds max_length tokens (EOS included) are dropped."""
    dtype = token_dtype(vocab.vocab_size)
    inputs: List[RaggedTokens] = []
    targets: List[RaggedTokens] = []
    for start in range(0, len(pairs), ENCODE_CHUNK):
        chunk = pairs[start : start + ENCODE_CHUNK]
        sources = vocab.encode([source for source, _ in chunk])
        references = vocab.encode([target for _, target in chunk])
        kept = [index for index in range(len(chunk)) if max(len(sources[index]), len(references[index])) <= max_length]
        inputs.append(RaggedTokens.from_sequences([sources[index] for index in kept], dtype))
        targets.append(RaggedTokens.from_sequences([references[index] for index in kept], dtype))
    return TokenizedPairs(RaggedTokens.concatenate(inputs, dtype), RaggedTokens.concatenate(targets, dtype))


def subset_reasons(args: argparse.Namespace, raw: raw_format.RawSplits) -> List[str]:
    """Why these data are a subset of the reference's (empty: they are the full reference data)."""
    reasons = []
    if args.subset:
        reasons.append("--subset was given")
    if raw.missing_train_corpora:
        reasons.append(f"training corpora missing: {', '.join(raw.missing_train_corpora)}")
    for split, reference in raw_format.REFERENCE_COUNTS.items():
        if len(raw.pairs[split]) < reference:
            reasons.append(f"{split} has {len(raw.pairs[split]):,} pairs, the reference {reference:,}")
    if args.vocab_size != tokenizer.VOCAB_SIZE:
        reasons.append(f"vocabulary of {args.vocab_size} pieces instead of {tokenizer.VOCAB_SIZE}")
    if args.max_length != MAX_LENGTH:
        reasons.append(f"sequence length {args.max_length} instead of {MAX_LENGTH}")
    return reasons


def check_full_counts(raw: raw_format.RawSplits) -> None:
    for split, reference in raw_format.REFERENCE_COUNTS.items():
        if len(raw.pairs[split]) != reference:
            raise PreparationError(
                f"{split} has {len(raw.pairs[split]):,} pairs but the reference has {reference:,} "
                f"(read from {', '.join(raw.sources[split])}); these are not the reference's files. "
                "Pass --subset to prepare them anyway as unscored smoke data."
            )


def prepare(args: argparse.Namespace) -> Path:
    dataset_dir = Path(args.data_dir).expanduser() / DATASET_NAME
    try:
        raw = raw_format.read_splits(Path(args.raw_dir).expanduser())
    except raw_format.RawDataError as error:
        raise PreparationError(f"cannot read the raw WMT files: {error}") from None
    reasons = subset_reasons(args, raw)
    if not reasons:
        check_full_counts(raw)

    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # unfinished until the new manifest lands
    train_pairs = stored_training_order(raw.pairs["train"])
    model_path = dataset_dir / tokenizer.MODEL_FILE_NAME
    if args.sentencepiece_model:
        shutil.copyfile(args.sentencepiece_model, model_path)
    else:
        print(f"training the {args.vocab_size}-piece SentencePiece model ...", flush=True)
        try:
            tokenizer.train(iter(train_pairs), model_path, vocab_size=args.vocab_size)
        except RuntimeError as error:  # e.g. a vocabulary too large for a small corpus
            raise PreparationError(f"SentencePiece training failed: {error}") from None
    vocab = tokenizer.Tokenizer(model_path)
    if vocab.vocab_size != args.vocab_size:
        raise PreparationError(f"{model_path} has {vocab.vocab_size} pieces, but --vocab-size is {args.vocab_size}.")

    files = [model_path.name]
    kept: Dict[str, int] = {}
    for split in SPLITS:
        print(f"tokenising {split} ({len(raw.pairs[split]):,} pairs) ...", flush=True)
        pairs = train_pairs if split == "train" else raw.pairs[split]
        tokenized = tokenize_pairs(pairs, vocab, args.max_length)
        if not len(tokenized):
            raise PreparationError(f"no {split} pair fits in {args.max_length} tokens; raise --max-length.")
        kept[split] = len(tokenized)
        files += write_split(dataset_dir, split, tokenized)

    counts = {split: len(raw.pairs[split]) for split in SPLITS}
    metadata = {
        "max_length": args.max_length,
        "vocab_size": vocab.vocab_size,
        "train_order_seed": TRAIN_ORDER_SEED,
        "pairs_read": counts,
        "pairs_within_max_length": kept,
        "raw_files": raw.sources,
        "subset_reasons": reasons,
    }
    (dataset_dir / METADATA_NAME).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    files.append(METADATA_NAME)
    if reasons:
        # A subset evaluates on as many training examples as it has validation examples.
        counts["eval_train"] = counts["validation"]
    return write_manifest(dataset_dir, files, counts, source=f"raw WMT files in {args.raw_dir}", subset=bool(reasons))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workloads.wmt.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the benchmark data dir; files go to DATA_DIR/wmt/")
    parser.add_argument("--raw-dir", required=True, help="where the official WMT archives are unpacked")
    parser.add_argument("--vocab-size", type=int, default=tokenizer.VOCAB_SIZE,
                        help=f"SentencePiece pieces (default {tokenizer.VOCAB_SIZE}, the reference's; smaller only for tests)")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH,
                        help=f"longest kept sentence in tokens, also the packed row and decode length (default {MAX_LENGTH})")
    parser.add_argument("--subset", action="store_true", help="mark the result as unscored smoke data")
    parser.add_argument("--sentencepiece-model", help="use this SentencePiece model instead of training one")
    args = parser.parse_args(argv)
    if not 2 <= args.max_length <= MAX_LENGTH:
        parser.error(f"--max-length must be between 2 and {MAX_LENGTH} (the model's position table)")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    manifest = prepare(args)
    print(f"WMT ready in {manifest.parent} ({manifest.name} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
