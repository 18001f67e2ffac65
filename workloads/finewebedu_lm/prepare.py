"""Prepare FineWeb-Edu sample-10BT for finewebedu_lm: the Hugging Face parquet shards -> two flat GPT-2 token streams.

The raw data are the parquet shards of HuggingFaceFW/fineweb-edu, config sample-10BT
(about 9.67 M documents, about 10 B GPT-2 tokens), as Hugging Face's CLI downloads them:
  huggingface-cli download HuggingFaceFW/fineweb-edu --repo-type dataset --include "sample/10BT/*" --local-dir RAW
RAW is then that folder (holding sample/10BT/*.parquet) or the folder of shards itself. The
shards are read in file-name order; only their `text` column is used (the others are id, dump,
url, file_path, language, language_score, token_count, score and int_score).

What the preparation does (reference §4.12):
  * tokenizes every document with GPT-2's BPE (tokenizer.py): its ids, then EOS 50256; an empty
    document gives nothing. No BOS, no padding, no truncation. --workers processes, each
    tokenizing a run of row groups (a work unit) at a time;
  * splits the documents 90/10: the documents in shard order, permuted by
    `numpy.random.default_rng(0).permutation(n)` (what Hugging Face datasets' `shuffle(seed=0)`
    does), the first floor(0.9 n) to train and the rest to validation. This rule is inferred,
    not read from the reference's (unpublished) final setup script: its WIP version shuffles
    the documents with seed 0 and keeps the first 90 % for training, and the reference's
    8,749,870 training sequences are about 90 % of sample-10BT's tokens;
  * writes, in DATA_DIR/finewebedu_lm/: train_tokens.npy and validation_tokens.npy (flat uint16
    streams, the documents in permuted order, each ending in EOS; `np.load(mmap_mode="r")`
    opens them), train_documents.npy and validation_documents.npy (int64: each stream's
    documents as their position in shard order), finewebedu_lm.json (what was prepared and
    how), and last the manifest. Its counts are each split's windows of 1,025 tokens ("train",
    "validation"; tokens // 1025) and its tokens and documents ("train_tokens",
    "train_documents", ...).
Full data (no --subset) must hold at least the windows the evals read: 100,096 validation
(391 batches of 256) and 10,240 train (40 batches of 256). A smaller set (tests, smoke runs)
must be marked with --subset: its runs evaluate on what it holds and are never scored. Every
split needs one complete window in either case.

Rerunning is safe and cheap: each work unit's tokens and document offsets are written to
DATA_DIR/finewebedu_lm/.prepare/ under temporary names and renamed, with a record written last;
a rerun reuses every unit whose record matches its shard and tokenizer, so an interrupted run
resumes where it stopped. The data dir counts as unprepared until the new manifest lands; the
work folder is removed after that (kept with --keep-work). Progress goes to stderr.

A data dir prepared by upstream's setup script (DIR/train and DIR/val, Hugging Face datasets
saved with `save_to_disk`, an integer column input_ids whose rows are documents or pre-cut
chunks) is taken with --from-upstream DIR: each split's input_ids are flattened in row order
into the two streams (val -> validation), checked to be GPT-2 ids, and the manifest written.

Usage: python -m workloads.finewebedu_lm.prepare --data-dir DIR --raw-dir RAW [--subset] [--workers N] [--tokenizer RANKS]
           [--keep-work]
       python -m workloads.finewebedu_lm.prepare --data-dir DIR --from-upstream UPSTREAM_DIR [--subset]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from workloads.data_manifest import MANIFEST_NAME, write_manifest
from workloads.finewebedu_lm import tokenizer as gpt2
from workloads.finewebedu_lm.input_pipeline import (
    DATASET_NAME,
    DOCUMENT_FILES,
    MIN_TRAIN_SEQUENCES,
    MIN_VALIDATION_SEQUENCES,
    REFERENCE_TRAIN_SEQUENCES,
    TOKEN_DTYPE,
    TOKEN_FILES,
    WINDOW_LENGTH,
    num_windows,
)

RAW_SUBFOLDER = Path("sample") / "10BT"  # where the shards sit in the Hugging Face repo
DOWNLOAD_COMMAND = 'huggingface-cli download HuggingFaceFW/fineweb-edu --repo-type dataset --include "sample/10BT/*" --local-dir RAW'
RAW_COLUMNS = ("text", "id", "dump", "url", "file_path", "language", "language_score", "token_count", "score", "int_score")
SPLIT_SEED = 0  # Hugging Face datasets' shuffle(seed=0)
TRAIN_FRACTION = (9, 10)  # the first floor(0.9 n) permuted documents train
SUMMARY_NAME = f"{DATASET_NAME}.json"
SUMMARY_FORMAT_VERSION = 1
UNIT_FORMAT_VERSION = 1  # bump when a work unit's files change meaning
STATE_DIR = ".prepare"
ROWS_PER_UNIT = 65_536  # documents per work unit (about 65 M tokens; row groups are never split)
READ_BATCH_ROWS = 1_024  # rows read from parquet at a time inside a unit
GATHER_BLOCK_TOKENS = 1 << 24  # tokens assembled per block when the streams are written
PROGRESS_SECONDS = 10.0
UPSTREAM_SPLITS = {"train": "train", "validation": "val"}
_PARTIAL = ".partial"


class PreparationError(Exception):
    """The raw data cannot become a valid finewebedu_lm data dir; the message says why and what to do."""


def preparation_command(data_dir: str, raw_dir: str = "RAW") -> str:
    return f"python -m workloads.finewebedu_lm.prepare --data-dir {data_dir} --raw-dir {raw_dir}"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the raw shards and the work units ------------------------------------------------------------


def find_shards(raw_dir: Path) -> List[Path]:
    """The parquet shards under RAW/sample/10BT/ or directly in RAW, in file-name order."""
    for folder in (raw_dir / RAW_SUBFOLDER, raw_dir):
        shards = sorted((path for path in folder.glob("*.parquet") if path.is_file()), key=lambda path: path.name)
        if shards:
            return shards
    raise PreparationError(
        f"no parquet shards in {raw_dir / RAW_SUBFOLDER} or {raw_dir}; expected FineWeb-Edu sample-10BT as Hugging Face "
        f"lays it out (RAW/{RAW_SUBFOLDER.as_posix()}/000_00000.parquet, ...). Download it with:\n  {DOWNLOAD_COMMAND}\n"
        "and pass RAW (or the folder of shards) as --raw-dir"
    )


def plan_units(shards: Sequence[Path], rows_per_unit: int = ROWS_PER_UNIT) -> List[Dict]:
    """Work units in shard order: runs of whole row groups of about `rows_per_unit` rows, each with what identifies it."""
    import pyarrow.parquet as pq

    units = []
    for shard in shards:
        try:
            parquet = pq.ParquetFile(shard)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise PreparationError(f"{shard} is not a readable parquet file ({error}); download it again") from None
        names = parquet.schema_arrow.names
        if "text" not in names:
            raise PreparationError(f"{shard} has no `text` column (its columns: {', '.join(names)}); "
                                   f"is it a FineWeb-Edu shard? FineWeb-Edu's columns are {', '.join(RAW_COLUMNS)}")
        stat = shard.stat()
        metadata = parquet.metadata
        first, rows = 0, 0
        for group in range(metadata.num_row_groups):
            rows += metadata.row_group(group).num_rows
            if rows >= rows_per_unit or group == metadata.num_row_groups - 1:
                units.append({
                    "key": f"{shard.stem}.{first:05d}-{group:05d}",
                    "shard": str(shard),
                    "row_groups": [first, group],
                    "rows": rows,
                    "identity": {"shard": shard.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                 "row_groups": [first, group], "rows": rows, "format": UNIT_FORMAT_VERSION},
                })
                first, rows = group + 1, 0
    return units


def _unit_paths(work_dir: Path, key: str) -> Tuple[Path, Path, Path]:
    return work_dir / f"{key}.tokens.npy", work_dir / f"{key}.offsets.npy", work_dir / f"{key}.json"


def _save_atomically(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(path.name + _PARTIAL)
    with open(partial, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(partial, path)


def _write_json_atomically(path: Path, data: Dict) -> None:
    partial = path.with_name(path.name + _PARTIAL)
    partial.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)


def tokenize_unit(shard: str, row_groups: Sequence[int], work_dir: str, key: str, identity: Dict,
                  ranks: Optional[str]) -> Tuple[str, int, int]:
    """(key, documents, tokens): tokenizes one unit's rows and saves its tokens, offsets and, last, its record.

    Runs in a worker process (or inline with one worker).
    """
    import pyarrow.parquet as pq

    encoding = gpt2.load_encoding(ranks)
    parquet = pq.ParquetFile(shard)
    pieces: List[np.ndarray] = []
    lengths: List[np.ndarray] = []
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=range(row_groups[0], row_groups[1] + 1),
                                      columns=["text"], use_threads=False):
        tokens, sizes = gpt2.encode_documents(batch.column(0).to_pylist(), encoding)
        pieces.append(tokens)
        lengths.append(sizes)
    tokens = np.concatenate(pieces) if pieces else np.empty(0, dtype=TOKEN_DTYPE)
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [], dtype=np.int64)]).astype(np.int64)
    tokens_path, offsets_path, record_path = _unit_paths(Path(work_dir), key)
    _save_atomically(tokens_path, tokens)
    _save_atomically(offsets_path, offsets)
    _write_json_atomically(record_path, {"identity": identity, "documents": len(offsets) - 1, "tokens": int(offsets[-1])})
    return key, len(offsets) - 1, int(offsets[-1])


def _finished_unit(work_dir: Path, unit: Dict) -> Optional[Dict]:
    tokens_path, offsets_path, record_path = _unit_paths(work_dir, unit["key"])
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("identity") != unit["identity"] or not (tokens_path.is_file() and offsets_path.is_file()):
        return None
    return record


class _Progress:
    def __init__(self, total_documents: int) -> None:
        self.total = total_documents
        self.documents = self.tokens = 0
        self.start = self.last = time.monotonic()

    def add(self, documents: int, tokens: int, force: bool = False) -> None:
        self.documents += documents
        self.tokens += tokens
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_SECONDS:
            self.last = now
            rate = self.tokens / max(now - self.start, 1e-9)
            _say(f"  tokenized {self.documents:,} of {self.total:,} documents, {self.tokens:,} tokens ({rate:,.0f} tokens/s)")


def tokenize_units(units: Sequence[Dict], work_dir: Path, workers: int, ranks: Optional[Path], identity_extra: Dict) -> Dict[str, Dict]:
    """Every unit's record {documents, tokens}; tokenizes the units no earlier run finished."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for leftover in work_dir.glob("*" + _PARTIAL):
        leftover.unlink()
    records: Dict[str, Dict] = {}
    pending = []
    for unit in units:
        unit["identity"].update(identity_extra)
        record = _finished_unit(work_dir, unit)
        if record is None:
            pending.append(unit)
        else:
            records[unit["key"]] = record
    total = sum(unit["rows"] for unit in units)
    if records:
        _say(f"{len(records)} of {len(units)} work units were tokenized by an earlier run; kept")
    if not pending:
        return records
    _say(f"tokenizing {sum(u['rows'] for u in pending):,} documents in {len(pending)} work units on {workers} process(es) ...")
    progress = _Progress(total)
    progress.add(sum(r["documents"] for r in records.values()), 0)
    jobs = [(unit["shard"], unit["row_groups"], str(work_dir), unit["key"], unit["identity"], str(ranks) if ranks else None)
            for unit in pending]

    def done(result: Tuple[str, int, int]) -> None:
        key, documents, tokens = result
        records[key] = {"documents": documents, "tokens": tokens}
        progress.add(documents, tokens)

    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            done(tokenize_unit(*job))
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs pyarrow's threads
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(tokenize_unit, *job) for job in jobs]
            try:
                for future in concurrent.futures.as_completed(futures):
                    done(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    progress.add(0, 0, force=True)
    return records


# --- the split and the streams -------------------------------------------------------------------


def split_documents(num_documents: int, seed: int = SPLIT_SEED) -> Tuple[np.ndarray, np.ndarray]:
    """(train, validation) document numbers in stream order: a seeded permutation, cut at floor(0.9 n)."""
    permutation = np.random.default_rng(seed).permutation(num_documents)
    cut = num_documents * TRAIN_FRACTION[0] // TRAIN_FRACTION[1]
    return permutation[:cut], permutation[cut:]


def segment_indices(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenated ranges starts[i] .. starts[i] + lengths[i] - 1, without a Python loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths) + np.arange(ends[-1] if len(ends) else 0)


class _Corpus:
    """The work units' tokens as one corpus of documents in shard order (memmapped; nothing is loaded up front)."""

    def __init__(self, work_dir: Path, units: Sequence[Dict]) -> None:
        self.tokens = []
        starts, lengths, first_document = [], [], [0]
        for unit in units:
            tokens_path, offsets_path, _ = _unit_paths(work_dir, unit["key"])
            offsets = np.load(offsets_path, allow_pickle=False)
            self.tokens.append(np.load(tokens_path, mmap_mode="r", allow_pickle=False))
            if len(self.tokens[-1]) != offsets[-1]:
                raise PreparationError(f"{tokens_path} holds {len(self.tokens[-1]):,} tokens, its offsets say {offsets[-1]:,}; "
                                       f"delete {work_dir} and rerun")
            starts.append(offsets[:-1])
            lengths.append(np.diff(offsets))
            first_document.append(first_document[-1] + len(offsets) - 1)
        self.starts = np.concatenate(starts) if starts else np.empty(0, np.int64)  # within the document's unit
        self.lengths = np.concatenate(lengths) if lengths else np.empty(0, np.int64)
        self.first_document = np.array(first_document, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def gather(self, documents: np.ndarray) -> np.ndarray:
        """The documents' tokens concatenated in the given order, one gather per unit involved."""
        lengths = self.lengths[documents]
        out = np.empty(int(lengths.sum()), dtype=TOKEN_DTYPE)
        destinations = np.cumsum(lengths) - lengths
        unit_of = np.searchsorted(self.first_document, documents, side="right") - 1
        by_unit = np.argsort(unit_of, kind="stable")
        bounds = np.searchsorted(unit_of[by_unit], np.arange(len(self.tokens) + 1))
        for unit in np.flatnonzero(np.diff(bounds)):
            chosen = by_unit[bounds[unit] : bounds[unit + 1]]
            if not lengths[chosen].any():
                continue
            source = segment_indices(self.starts[documents[chosen]], lengths[chosen])
            out[segment_indices(destinations[chosen], lengths[chosen])] = self.tokens[unit][source]
        return out


def write_stream(corpus: _Corpus, documents: np.ndarray, path: Path, block_tokens: Optional[int] = None) -> int:
    """The documents' tokens, in order, as a flat uint16 .npy at `path` (written in blocks); returns the tokens."""
    block_tokens = block_tokens or GATHER_BLOCK_TOKENS
    lengths = corpus.lengths[documents]
    total = int(lengths.sum())
    partial = path.with_name(path.name + _PARTIAL)
    stream = np.lib.format.open_memmap(partial, mode="w+", dtype=TOKEN_DTYPE, shape=(total,))
    # Block b ends at the first document whose running total reaches (b + 1) * block_tokens.
    ends = np.cumsum(lengths)
    cuts = np.unique(np.concatenate([np.searchsorted(ends, np.arange(block_tokens, total, block_tokens)) + 1, [len(documents)]]))
    position, first = 0, 0
    for cut in cuts.tolist():
        block = corpus.gather(documents[first:cut])
        stream[position : position + len(block)] = block
        position += len(block)
        first = cut
    stream.flush()
    del stream
    os.replace(partial, path)
    return total


def check_sizes(tokens: Dict[str, int], subset: bool) -> None:
    """Every split needs one window; full data needs the windows the evals read."""
    short = [f"{split} has {count:,} tokens, fewer than one sequence of {WINDOW_LENGTH}" for split, count in tokens.items()
             if count < WINDOW_LENGTH]
    if short:
        raise PreparationError("; ".join(short) + "; give more documents")
    if subset:
        return
    needed = {"train": MIN_TRAIN_SEQUENCES, "validation": MIN_VALIDATION_SEQUENCES}
    problems = [f"{split} has {num_windows(tokens[split]):,} sequences of {WINDOW_LENGTH} tokens, the evals read {needed[split]:,}"
                for split in needed if num_windows(tokens[split]) < needed[split]]
    if problems:
        raise PreparationError("; ".join(problems) + ". Is the download incomplete? Pass --subset to use a small set anyway "
                               "(its runs are never scored)")


def finish(dataset_dir: Path, tokens: Dict[str, int], extra_counts: Dict[str, int], summary: Dict, source: str,
           subset: bool, files: Sequence[str]) -> Path:
    """The summary, then the manifest (last)."""
    counts = {split: num_windows(count) for split, count in tokens.items()}
    counts.update({f"{split}_tokens": count for split, count in tokens.items()})
    counts.update(extra_counts)
    summary = {"format_version": SUMMARY_FORMAT_VERSION, "source": source, "subset": subset, "window_length": WINDOW_LENGTH,
               "counts": counts, **summary}
    (dataset_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    for split in tokens:
        _say(f"{split}: {counts[split]:,} sequences of {WINDOW_LENGTH} tokens ({tokens[split]:,} tokens)")
    if not subset and counts["train"] != REFERENCE_TRAIN_SEQUENCES:
        _say(f"note: the reference's training split has {REFERENCE_TRAIN_SEQUENCES:,} sequences, this one {counts['train']:,} "
             "(the reference's split rule is inferred; see this module's docstring)")
    _say("writing the manifest ...")
    return write_manifest(dataset_dir, [*files, SUMMARY_NAME], counts, source=source, subset=subset)


def _start(data_dir: Path) -> Path:
    dataset_dir = data_dir / DATASET_NAME
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # unfinished until the new manifest lands
    return dataset_dir


def prepare(raw_dir: Path, data_dir: Path, subset: bool = False, workers: int = 1, ranks: Optional[Path] = None,
            rows_per_unit: int = ROWS_PER_UNIT, keep_work: bool = False) -> Path:
    """Tokenizes every shard, splits the documents, writes the two streams and, last, the manifest; returns its path."""
    raw_dir, data_dir = Path(raw_dir), Path(data_dir)
    shards = find_shards(raw_dir)
    units = plan_units(shards, rows_per_unit)
    ranks_file = gpt2.ranks_path(ranks)
    gpt2.load_encoding(ranks_file)  # a missing tokenizer is reported before any work starts
    tokenizer_identity = {"tokenizer": gpt2.ranks_digest(ranks_file)}
    dataset_dir = _start(data_dir)
    work_dir = dataset_dir / STATE_DIR
    _say(f"{len(shards)} shard(s) in {shards[0].parent}, {sum(u['rows'] for u in units):,} documents")
    records = tokenize_units(units, work_dir, max(int(workers), 1), ranks_file, tokenizer_identity)
    corpus = _Corpus(work_dir, units)
    documents = dict(zip(("train", "validation"), split_documents(len(corpus))))
    tokens = {split: int(corpus.lengths[chosen].sum()) for split, chosen in documents.items()}
    check_sizes(tokens, subset)
    for split, chosen in documents.items():
        _say(f"writing {split}: {len(chosen):,} documents, {tokens[split]:,} tokens ...")
        write_stream(corpus, chosen, dataset_dir / TOKEN_FILES[split])
        _save_atomically(dataset_dir / DOCUMENT_FILES[split], chosen.astype(np.int64))
    summary = {
        "shards": [{"name": shard.name, "documents": sum(records[u["key"]]["documents"] for u in units if u["shard"] == str(shard))}
                   for shard in shards],
        "split": {"rule": "numpy.random.default_rng(seed).permutation(documents in shard order); the first floor(0.9 n) train",
                  "seed": SPLIT_SEED, "train_fraction": TRAIN_FRACTION[0] / TRAIN_FRACTION[1], "inferred": True},
        "tokenizer": {"name": "gpt2", "ranks": str(ranks_file) if ranks_file else "tiktoken:gpt2", **tokenizer_identity,
                      "vocab_size": gpt2.VOCAB_SIZE, "eos_id": gpt2.EOS_ID},
    }
    extra = {f"{split}_documents": len(chosen) for split, chosen in documents.items()}
    files = [*(TOKEN_FILES[split] for split in documents), *(DOCUMENT_FILES[split] for split in documents)]
    manifest = finish(dataset_dir, tokens, extra, summary, f"FineWeb-Edu sample-10BT from {raw_dir}", subset, files)
    if not keep_work:
        del corpus
        shutil.rmtree(work_dir, ignore_errors=True)
    return manifest


# --- an upstream-prepared data dir ----------------------------------------------------------------


def _flatten_upstream(folder: Path, path: Path) -> Tuple[int, int]:
    """(tokens, rows): the input_ids of a save_to_disk folder, flattened in row order into a uint16 .npy."""
    import datasets

    try:
        dataset = datasets.load_from_disk(str(folder))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise PreparationError(f"{folder} is not a Hugging Face dataset saved with save_to_disk ({error})") from None
    if not isinstance(dataset, datasets.Dataset):
        raise PreparationError(f"{folder} holds a DatasetDict ({', '.join(dataset)}); expected one split per folder")
    if "input_ids" not in dataset.column_names:
        raise PreparationError(f"{folder} has no input_ids column (its columns: {', '.join(dataset.column_names)})")
    if dataset._indices is not None:
        dataset = dataset.flatten_indices()
    import pyarrow as pa

    column = dataset.data.table.column("input_ids")
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)) or not pa.types.is_integer(column.type.value_type):
        raise PreparationError(f"{folder}: input_ids is {column.type}, expected a list of integer token ids per row")
    chunks = [chunk.flatten() for chunk in column.chunks]
    total = sum(len(chunk) for chunk in chunks)
    partial = path.with_name(path.name + _PARTIAL)
    stream = np.lib.format.open_memmap(partial, mode="w+", dtype=TOKEN_DTYPE, shape=(total,))
    position = 0
    for chunk in chunks:
        values = chunk.to_numpy(zero_copy_only=False)
        if len(values) and (values.min() < 0 or values.max() >= gpt2.VOCAB_SIZE):
            raise PreparationError(f"{folder}: input_ids holds {int(values.min())}..{int(values.max())}, outside GPT-2's "
                                   f"0..{gpt2.VOCAB_SIZE - 1}; was it tokenized with another tokenizer?")
        stream[position : position + len(values)] = values
        position += len(values)
    stream.flush()
    del stream
    os.replace(partial, path)
    return total, len(dataset)


def adopt_upstream(upstream_dir: Path, data_dir: Path, subset: bool = False) -> Path:
    """Turns upstream's train/ and val/ save_to_disk folders into the two streams and writes the manifest."""
    upstream_dir, data_dir = Path(upstream_dir), Path(data_dir)
    missing = [str(upstream_dir / folder) for folder in UPSTREAM_SPLITS.values() if not (upstream_dir / folder).is_dir()]
    if missing:
        raise PreparationError(f"{' and '.join(missing)} missing; --from-upstream takes the folder holding upstream's train/ and "
                               "val/ (Hugging Face save_to_disk folders with an input_ids column), e.g. /data/fineweb_edu_10B")
    dataset_dir = _start(data_dir)
    tokens, rows = {}, {}
    for split, folder in UPSTREAM_SPLITS.items():
        _say(f"reading {upstream_dir / folder} ...")
        tokens[split], rows[split] = _flatten_upstream(upstream_dir / folder, dataset_dir / TOKEN_FILES[split])
    try:
        check_sizes(tokens, subset)
    except PreparationError:
        (dataset_dir / TOKEN_FILES["train"]).unlink(missing_ok=True)
        (dataset_dir / TOKEN_FILES["validation"]).unlink(missing_ok=True)
        raise
    for name in DOCUMENT_FILES.values():  # a raw preparation's, which would not describe these streams
        (dataset_dir / name).unlink(missing_ok=True)
    summary = {"upstream": {split: {"folder": str(upstream_dir / folder), "rows": rows[split]} for split, folder in UPSTREAM_SPLITS.items()},
               "tokenizer": {"name": "gpt2", "vocab_size": gpt2.VOCAB_SIZE, "eos_id": gpt2.EOS_ID}}
    extra = {f"{split}_rows": count for split, count in rows.items()}
    return finish(dataset_dir, tokens, extra, summary, f"upstream-prepared FineWeb-Edu from {upstream_dir}", subset,
                  list(TOKEN_FILES.values()))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.finewebedu_lm.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help=f"the benchmark data dir; the prepared files go to DATA_DIR/{DATASET_NAME}/")
    parser.add_argument("--raw-dir", help="the download folder (holding sample/10BT/*.parquet) or the folder of parquet shards")
    parser.add_argument("--from-upstream", metavar="UPSTREAM_DIR",
                        help="take upstream's prepared train/ and val/ save_to_disk folders instead of raw shards")
    parser.add_argument("--subset", action="store_true", help="accept a set smaller than the evals need (never scored)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tokenizing processes (default: one per CPU)")
    parser.add_argument("--tokenizer", help=f"GPT-2's BPE ranks file (default: ${gpt2.RANKS_ENV}, else {gpt2.installed_ranks_path()})")
    parser.add_argument("--keep-work", action="store_true", help=f"keep the per-unit token files in {DATASET_NAME}/{STATE_DIR}/")
    parser.add_argument("--rows-per-unit", type=int, default=ROWS_PER_UNIT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir).expanduser()
    try:
        if args.from_upstream:
            manifest = adopt_upstream(Path(args.from_upstream).expanduser(), data_dir, args.subset)
        elif not args.raw_dir:
            parser.error("give --raw-dir (the FineWeb-Edu parquet shards) or --from-upstream (a data dir upstream prepared)")
        else:
            manifest = prepare(Path(args.raw_dir).expanduser(), data_dir, args.subset, args.workers,
                               Path(args.tokenizer).expanduser() if args.tokenizer else None, max(args.rows_per_unit, 1),
                               args.keep_work)
    except (PreparationError, gpt2.MissingTokenizerError) as error:
        print(f"finewebedu_lm preparation failed: {error}", file=sys.stderr)
        return 1
    print(f"FineWeb-Edu ready in {manifest.parent} ({manifest.name} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
