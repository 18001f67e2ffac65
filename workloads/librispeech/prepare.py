"""Prepare LibriSpeech for the librispeech workloads: the official OpenSLR archives -> the reference's npy layout.

The raw data are six archives from https://www.openslr.org/12 (960 h of training speech):
train-clean-100, train-clean-360, train-other-500, dev-clean, dev-other and test-clean,
each `<subset>.tar.gz` holding LibriSpeech/<subset>/<speaker>/<chapter>/ with one FLAC per
utterance (`<speaker>-<chapter>-<n>.flac`, 16 kHz, 16-bit mono) and the chapter's transcripts
(`<speaker>-<chapter>.trans.txt`, lines `<utterance id> <TRANSCRIPT>`). Put them in RAW_DIR,
per subset in either form:
  <subset>.tar.gz                   as downloaded (streamed, never unpacked to disk);
  LibriSpeech/<subset>/ or <subset>/   already unpacked (`tar -xzf`, e.g. upstream's temp dir).

What the preparation does, as the reference's datasets/librispeech_{tokenizer,preprocess}.py:
  * decodes every FLAC to its integer samples (soundfile; the reference uses pydub/ffmpeg,
    which gives the same samples for this lossless 16-bit audio), on --workers processes;
  * trains the SentencePiece tokenizer on the train-clean-100 transcripts (tokenizer.py);
  * drops, per utterance and in this order, what the reference drops: a transcript over 256
    characters, audio over 320,000 samples (20 s); and, a rule the reference does not need
    because its vocabulary never produces them, targets over 256 ids (only a tiny --vocab-size
    of a sample set can make more ids than characters);
  * writes, in DATA_DIR/librispeech/: <subset>/<id>_audio.npy (int64, as the reference; or
    --audio-dtype int16, four times smaller, which the pipeline reads alike),
    <subset>/<id>_targets.npy (int32 ids ending in EOS), <subset>.csv (pandas' one-column
    layout), spm_model.vocab, librispeech.json (what was kept and dropped), and last the
    manifest (of the csvs, the tokenizer and the summary, with the split counts).
The counts are checked unless --subset: each archive's transcript lines against the
release (upstream's check: 28,539 / 104,014 / 148,688 / 2,703 / 2,864 / 2,620), and the
kept utterances per split against the workloads' 263,840 / 5,348 / 2,472.
Utterances are listed in speaker, chapter, utterance order (numerically); the reference
lists folders in os.listdir order, which depends on the file system.

A set smaller than the release (tests, smoke runs) must be marked with --subset: its runs
evaluate on what it holds and are never scored. Such a set may be too small for 1,024
SentencePiece pieces; with --subset, --vocab-size (default 1,024) is an upper bound and the
tokenizer gets as many pieces as the transcripts support (librispeech.json records how
many); without --subset it must be 1,024 and is exact.

Rerunning is safe and cheap: decoded audio files are kept (each is written under a
temporary name and renamed), a subset whose decoding finished is not read again, the
tokenizer is retrained only when its training text changes, and the data dir counts as
unprepared until the new manifest lands. Progress is printed every 10 seconds.

A data dir prepared by upstream (datasets/dataset_setup.py --librispeech, the same layout
without a manifest) is taken as it is with --from-upstream: its csvs are read, every listed
utterance's two files are checked for presence, its tokenizer is loaded, the counts are
checked, and the summary and manifest are added. Given another folder than
DATA_DIR/librispeech, its subset folders are symlinked and its csvs and tokenizer copied
(--tokenizer names a tokenizer kept elsewhere, e.g. upstream's --librispeech_tokenizer_vocab_path).

Usage: python -m workloads.librispeech.prepare --data-dir DIR --raw-dir RAW_DIR [--subset] [--workers N]
           [--vocab-size 1024] [--audio-dtype int64]
       python -m workloads.librispeech.prepare --data-dir DIR --from-upstream [UPSTREAM_DIR] [--tokenizer PATH] [--subset]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import shutil
import sys
import tarfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from workloads.base import DataProblem
from workloads.data_manifest import MANIFEST_NAME, file_sha256, write_manifest
from workloads.librispeech import tokenizer as spm
from workloads.librispeech.input_pipeline import (
    AUDIO_SUFFIX,
    DATASET_NAME,
    MAX_AUDIO_SAMPLES,
    MAX_TARGET_TOKENS,
    MAX_TRANSCRIPT_CHARS,
    REFERENCE_COUNTS,
    SAMPLE_RATE,
    SPLIT_SUBSETS,
    SUBSETS,
    TARGETS_SUFFIX,
    TOKENIZER_FILE,
    csv_path,
    read_ids,
    write_ids,
)

DOWNLOAD_HINT = "download the archives from https://www.openslr.org/12 (e.g. https://www.openslr.org/resources/12/dev-clean.tar.gz)"
# Utterances per archive before filtering: upstream's librispeech_example_counts (taken from TFDS).
RAW_COUNTS = {
    "train-clean-100": 28_539,
    "train-clean-360": 104_014,
    "train-other-500": 148_688,
    "dev-clean": 2_703,
    "dev-other": 2_864,
    "test-clean": 2_620,
}
SUMMARY_NAME = "librispeech.json"
SUMMARY_FORMAT_VERSION = 1
STATE_DIR = ".prepare"  # per-subset records that make a rerun skip finished work
AUDIO_DTYPES = ("int64", "int16")
PROGRESS_SECONDS = 10.0
DROP_RULES = ("no audio", f"transcript over {MAX_TRANSCRIPT_CHARS} characters", f"audio over {MAX_AUDIO_SAMPLES:,} samples",
              f"targets over {MAX_TARGET_TOKENS} ids")
_PARTIAL = ".partial"
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
_MAX_NAMED = 10  # problems listed one by one before "... and N more"


class PreparationError(Exception):
    """The raw data cannot become a valid librispeech data dir; the message says why and what to do."""


def preparation_command(data_dir: str, raw_dir: str = "RAW") -> str:
    return f"python -m workloads.librispeech.prepare --data-dir {data_dir} --raw-dir {raw_dir}"


def utterance_key(utterance: str) -> Tuple:
    """Numeric speaker, chapter, utterance order for ids like 103-1240-0000 (text order otherwise)."""
    parts = utterance.split("-")
    return (0, *map(int, parts)) if all(part.isdigit() for part in parts) else (1, utterance)


def _listing(problems: Sequence[str]) -> str:
    shown = "\n  ".join(problems[:_MAX_NAMED])
    more = f"\n  ... and {len(problems) - _MAX_NAMED} more" if len(problems) > _MAX_NAMED else ""
    return f"\n  {shown}{more}"


class _Progress:
    def __init__(self, subset: str, expected: Optional[int]) -> None:
        self.subset, self.expected = subset, expected
        self.start = self.last = time.monotonic()
        self.count = 0

    def tick(self, count: int = 1) -> None:
        self.count += count
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            of = f" of {self.expected:,}" if self.expected else ""
            print(f"  {self.subset}: {self.count:,}{of} utterances decoded ({self.count / (now - self.start):,.0f}/s)", flush=True)


# --- decoding (runs in worker processes) --------------------------------------------------------------


def _save_atomically(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(path.name + _PARTIAL)
    with open(partial, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(partial, path)


def decode_utterance(utterance: str, source: Union[bytes, str], out_dir: str, audio_dtype: str) -> Tuple[str, Optional[int], Optional[str]]:
    """(utterance, samples, problem): decodes one FLAC and saves its samples unless they are over the limit."""
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(source) if isinstance(source, bytes) else source, dtype="int16", always_2d=True)
    except (RuntimeError, ValueError, EOFError, OSError) as error:  # soundfile's errors are RuntimeErrors
        return utterance, None, f"cannot be decoded as FLAC ({error})"
    if rate != SAMPLE_RATE or samples.shape[1] != 1:
        return utterance, None, f"is {rate} Hz with {samples.shape[1]} channels, expected {SAMPLE_RATE} Hz mono"
    count = len(samples)
    if count <= MAX_AUDIO_SAMPLES:
        _save_atomically(Path(out_dir) / f"{utterance}{AUDIO_SUFFIX}", samples[:, 0].astype(audio_dtype))
    return utterance, count, None


class _Decoder:
    """Decodes on a pool of processes (or inline with one worker), a bounded number of FLACs in flight."""

    def __init__(self, workers: int, on_result: Callable[[Tuple[str, Optional[int], Optional[str]]], None]) -> None:
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        self.limit = 8 * workers
        self.pending: set = set()
        self.on_result = on_result

    def submit(self, *job) -> None:
        if self.pool is None:
            self.on_result(decode_utterance(*job))
            return
        self.pending.add(self.pool.submit(decode_utterance, *job))
        if len(self.pending) >= self.limit:
            done, self.pending = concurrent.futures.wait(self.pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                self.on_result(future.result())

    def finish(self) -> None:
        if self.pool is None:
            return
        for future in concurrent.futures.as_completed(self.pending):
            self.on_result(future.result())
        self.pending = set()
        self.pool.shutdown()

    def abandon(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# --- one subset: raw files -> audio npy files + a record -------------------------------------------


def find_source(raw_dir: Path, subset: str) -> Path:
    """An unpacked folder wins over the archive."""
    for folder in (raw_dir / "LibriSpeech" / subset, raw_dir / subset):
        if folder.is_dir() and any(folder.glob("*/*/*.trans.txt")):
            return folder
    archive = raw_dir / f"{subset}.tar.gz"
    if archive.is_file():
        return archive
    raise PreparationError(
        f"{raw_dir} holds neither {subset}.tar.gz nor an unpacked LibriSpeech/{subset}/ with transcripts; "
        f"{DOWNLOAD_HINT} and pass their folder as --raw-dir"
    )


def source_identity(source: Path) -> Dict:
    """What a finished subset record is valid for: the archive's size and time, or the unpacked files' count and bytes."""
    if source.is_file():
        stat = source.stat()
        return {"path": str(source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    files = [path for path in source.glob("*/*/*") if path.suffix == ".flac" or path.name.endswith(".trans.txt")]
    return {"path": str(source.resolve()), "files": len(files), "bytes": sum(path.stat().st_size for path in files)}


def _parse_transcripts(text: str, where: str, transcripts: Dict[str, str]) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        utterance, _, transcript = line.partition(" ")
        if utterance in transcripts:
            raise PreparationError(f"{where}:{number}: utterance {utterance} is listed twice")
        transcripts[utterance] = transcript


def _archive_members(archive: Path, subset: str) -> Iterator[Tuple[str, str, bytes]]:
    """(kind, name, bytes) of the archive's transcript files and FLACs, as they stream by."""
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or not (parts[-1].endswith(".trans.txt") or parts[-1].endswith(".flac")):
                continue  # README.TXT, SPEAKERS.TXT, ... of the release
            if len(parts) < 4 or parts[-4] != subset:
                raise PreparationError(
                    f"{archive} holds {member.name}, which is not under {subset}/<speaker>/<chapter>/; is it {subset}.tar.gz?"
                )
            kind = "transcripts" if parts[-1].endswith(".trans.txt") else "flac"
            yield kind, member.name, tar.extractfile(member).read()


def _folder_members(folder: Path) -> Iterator[Tuple[str, str, Union[bytes, str]]]:
    for chapter in sorted((path for path in folder.glob("*/*") if path.is_dir()), key=lambda p: utterance_key(f"{p.parent.name}-{p.name}")):
        for path in sorted(chapter.iterdir()):
            if path.name.endswith(".trans.txt"):
                yield "transcripts", str(path), path.read_bytes()
            elif path.suffix == ".flac":
                yield "flac", str(path), str(path)


def _read_members(source: Path, subset: str, decoded: Dict) -> Iterator[Tuple[str, str, Union[bytes, str]]]:
    """The source's members; a damaged archive (or unreadable folder) becomes an error that names it."""
    members = _archive_members(source, subset) if source.is_file() else _folder_members(source)
    while True:
        try:
            yield next(members)
        except StopIteration:
            return
        except _ARCHIVE_ERRORS as error:
            again = f"download {subset}.tar.gz again" if source.is_file() else "unpack it again"
            raise PreparationError(
                f"{source} is truncated or damaged ({error}); {again}. "
                f"The {len(decoded)} utterances decoded before the damage are kept for the rerun"
            ) from None


def _existing_samples(path: Path) -> Optional[int]:
    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])
    except (OSError, ValueError, EOFError):
        return None


def _state_path(dataset_dir: Path, name: str) -> Path:
    return dataset_dir / STATE_DIR / f"{name}.json"


def _read_state(dataset_dir: Path, name: str) -> Optional[Dict]:
    try:
        return json.loads(_state_path(dataset_dir, name).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _write_state(dataset_dir: Path, name: str, state: Dict) -> None:
    path = _state_path(dataset_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, path)


def decode_subset(raw_dir: Path, dataset_dir: Path, subset: str, workers: int, audio_dtype: str, subset_mode: bool) -> Dict:
    """The subset's record {"transcripts": {id: text}, "samples": {id: count}, ...}; decodes what is not done yet."""
    source = find_source(raw_dir, subset)
    identity = {"source": source_identity(source), "audio_dtype": audio_dtype}
    record = _read_state(dataset_dir, subset)
    if record is not None and record.get("identity") == identity:
        print(f"{subset}: decoded by an earlier run, kept")
        return record
    subset_dir = dataset_dir / subset
    started = _read_state(dataset_dir, f"{subset}.started")
    if subset_dir.is_dir() and (record is not None or (started is not None and started != identity)):
        shutil.rmtree(subset_dir)  # another raw set's (or dtype's) files; nothing of them can be kept
    subset_dir.mkdir(parents=True, exist_ok=True)
    for leftover in subset_dir.glob("*" + _PARTIAL):
        leftover.unlink()
    _write_state(dataset_dir, f"{subset}.started", identity)
    _state_path(dataset_dir, subset).unlink(missing_ok=True)

    transcripts: Dict[str, str] = {}
    samples: Dict[str, Optional[int]] = {}
    problems: List[str] = []
    names: Dict[str, str] = {}
    progress = _Progress(subset, None if subset_mode else RAW_COUNTS[subset])

    def on_result(result: Tuple[str, Optional[int], Optional[str]]) -> None:
        utterance, count, problem = result
        if problem:
            problems.append(f"{names[utterance]}: {problem}")
        samples[utterance] = count
        progress.tick()

    print(f"{subset}: decoding {source} ...", flush=True)
    decoder = _Decoder(workers, on_result)
    try:
        for kind, name, payload in _read_members(source, subset, samples):
            if kind == "transcripts":
                _parse_transcripts(payload.decode("utf-8"), name, transcripts)
                continue
            utterance = PurePosixPath(name).name[: -len(".flac")]
            names[utterance] = name
            existing = subset_dir / f"{utterance}{AUDIO_SUFFIX}"
            count = _existing_samples(existing) if existing.is_file() else None
            if count is not None:
                on_result((utterance, count, None))  # decoded by an interrupted earlier run
            else:
                decoder.submit(utterance, payload, str(subset_dir), audio_dtype)
        decoder.finish()
    except BaseException:
        decoder.abandon()
        raise
    if problems:
        raise PreparationError(
            f"{len(problems)} of {len(names)} FLAC files of {subset} cannot be used:{_listing(sorted(problems))}\n"
            f"Download {subset}.tar.gz again (or unpack it again) and rerun"
        )
    if not transcripts:
        raise PreparationError(f"{source} holds no <speaker>-<chapter>.trans.txt transcripts; is it the LibriSpeech {subset} archive?")
    record = {"identity": identity, "transcripts": transcripts, "samples": samples}
    _write_state(dataset_dir, subset, record)
    _state_path(dataset_dir, f"{subset}.started").unlink(missing_ok=True)
    print(f"{subset}: {len(transcripts):,} transcribed utterances, {len(samples):,} FLAC files", flush=True)
    return record


# --- tokenizer, filters, targets --------------------------------------------------------------------


def ordered(transcripts: Dict[str, str]) -> List[str]:
    return sorted(transcripts, key=utterance_key)


def prepare_tokenizer(dataset_dir: Path, records: Dict[str, Dict], vocab_size: int, subset_mode: bool) -> spm.Tokenizer:
    """Trains spm_model.vocab on train-clean-100's transcripts, unless the same training already made it."""
    transcripts = [records[subset]["transcripts"] for subset in spm.TRAINING_SUBSETS]
    lines = spm.training_lines(texts[utterance] for texts in transcripts for utterance in ordered(texts))
    digest = spm.training_text_digest(lines, vocab_size, soft_limit=subset_mode)
    model_path = dataset_dir / TOKENIZER_FILE
    state = _read_state(dataset_dir, "tokenizer")
    if not (model_path.is_file() and state and state.get("training") == digest and state.get("model") == file_sha256(model_path)):
        limit = " at most" if subset_mode else ""
        print(f"training the SentencePiece tokenizer ({vocab_size:,} pieces{limit}) on {len(lines):,} train-clean-100 transcripts ...",
              flush=True)
        try:
            spm.train(lines, model_path, vocab_size, soft_limit=subset_mode)
        except ValueError as error:
            raise PreparationError(f"{error}; a sample set this small needs --subset (and maybe a smaller --vocab-size)") from None
        _write_state(dataset_dir, "tokenizer", {"training": digest, "model": file_sha256(model_path)})
    tokenizer = spm.load_tokenizer(model_path)
    print(f"tokenizer: {tokenizer.vocab_size:,} pieces")
    if not subset_mode and tokenizer.vocab_size != vocab_size:
        raise PreparationError(f"{model_path} has {tokenizer.vocab_size} pieces, expected {vocab_size}")
    return tokenizer


def filter_and_write_targets(
    dataset_dir: Path, subset: str, record: Dict, tokenizer: spm.Tokenizer
) -> Tuple[List[str], Dict[str, int], int]:
    """(kept ids in order, dropped counts by rule, kept utterances holding unknown characters); writes their targets."""
    subset_dir = dataset_dir / subset
    dropped = {rule: 0 for rule in DROP_RULES}
    kept, with_unknown = [], 0
    model_digest = file_sha256(tokenizer.model_path)
    done = _read_state(dataset_dir, f"{subset}.targets")
    rewrite = done != {"tokenizer": model_digest, "source": record["identity"]}
    for utterance in ordered(record["transcripts"]):
        transcript = record["transcripts"][utterance]
        count = record["samples"].get(utterance)
        # The reference's order of checks: the audio file, the transcript, the audio's length.
        if utterance not in record["samples"]:
            rule = DROP_RULES[0]
        elif len(transcript) > MAX_TRANSCRIPT_CHARS:
            rule = DROP_RULES[1]
        elif count > MAX_AUDIO_SAMPLES:
            rule = DROP_RULES[2]
        else:
            ids = tokenizer.encode(transcript)
            rule = DROP_RULES[3] if len(ids) > MAX_TARGET_TOKENS else None
        if rule:
            dropped[rule] += 1
            for suffix in (AUDIO_SUFFIX, TARGETS_SUFFIX):
                (subset_dir / f"{utterance}{suffix}").unlink(missing_ok=True)
            continue
        kept.append(utterance)
        with_unknown += int((ids == spm.UNK_ID).any())
        target_path = subset_dir / f"{utterance}{TARGETS_SUFFIX}"
        if rewrite or not target_path.is_file():
            _save_atomically(target_path, ids)
    for utterance in set(record["samples"]) - set(record["transcripts"]):  # audio without a transcript line
        (subset_dir / f"{utterance}{AUDIO_SUFFIX}").unlink(missing_ok=True)
    _write_state(dataset_dir, f"{subset}.targets", {"tokenizer": model_digest, "source": record["identity"]})
    return kept, dropped, with_unknown


# --- checks and the whole preparation ---------------------------------------------------------------


def split_counts(kept: Dict[str, Sequence[str]]) -> Dict[str, int]:
    return {split: sum(len(kept[subset]) for subset in subsets) for split, subsets in SPLIT_SUBSETS.items() if split in REFERENCE_COUNTS}


def check_raw_counts(raw: Dict[str, int], subset_mode: bool) -> None:
    """Transcribed utterances per archive against the release (upstream's check), before any further work."""
    problems = [f"{name}: {raw[name]:,} transcribed utterances, the release has {RAW_COUNTS[name]:,}"
                for name in SUBSETS if raw[name] != RAW_COUNTS[name]]
    if problems and not subset_mode:
        raise PreparationError(
            "the archives do not match the release:" + _listing(problems) + "\nCheck for an incomplete download or unpacking, "
            "or pass --subset for a partial set (its runs are never scored)"
        )


def check_counts(counts: Dict[str, int], subset_mode: bool) -> None:
    """Kept utterances per split against the workloads' example counts; every split needs one even in a subset."""
    empty = [split for split, count in counts.items() if count == 0]
    if empty:
        raise PreparationError(f"no utterances are left in {', '.join(empty)} after the length filters; every split needs at least one")
    problems = [f"{split}: {counts[split]:,} utterances kept, the reference has {REFERENCE_COUNTS[split]:,}" for split in REFERENCE_COUNTS
                if counts[split] != REFERENCE_COUNTS[split]]
    if problems and not subset_mode:
        raise PreparationError(
            "the prepared data do not match the reference:" + _listing(problems) + "\nA raw file may be from another "
            "release; pass --subset to use it anyway (its runs are never scored)"
        )


def finish(dataset_dir: Path, kept: Dict[str, List[str]], summary: Dict, source: str, subset_mode: bool) -> Path:
    """The csvs, the summary, then the manifest (last)."""
    for subset in SUBSETS:
        write_ids(dataset_dir, subset, kept[subset])
    counts = split_counts(kept)
    summary = {"format_version": SUMMARY_FORMAT_VERSION, "source": source, "subset": subset_mode, "counts": counts, **summary}
    (dataset_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    files = [csv_path(dataset_dir, subset).name for subset in SUBSETS] + [TOKENIZER_FILE, SUMMARY_NAME]
    for split, count in counts.items():
        print(f"{split}: {count:,} utterances")
    return write_manifest(dataset_dir, files, counts, source=source, subset=subset_mode)


def prepare(
    raw_dir: Path,
    data_dir: Path,
    subset: bool = False,
    workers: int = 1,
    vocab_size: int = spm.VOCAB_SIZE,
    audio_dtype: str = "int64",
) -> Path:
    """Decodes, filters and tokenises every subset, then writes the csvs and, last, the manifest."""
    if not subset and vocab_size != spm.VOCAB_SIZE:
        raise PreparationError(f"--vocab-size {vocab_size}: the workloads' vocabulary has {spm.VOCAB_SIZE} pieces; "
                               "another size is only for a --subset sample")
    if audio_dtype not in AUDIO_DTYPES:
        raise PreparationError(f"--audio-dtype {audio_dtype}: expected one of {', '.join(AUDIO_DTYPES)}")
    dataset_dir = data_dir / DATASET_NAME
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # unfinished until the new manifest lands
    for name in SUBSETS:  # every source is found before hours of decoding start
        find_source(raw_dir, name)
    records = {name: decode_subset(raw_dir, dataset_dir, name, workers, audio_dtype, subset) for name in SUBSETS}
    check_raw_counts({name: len(records[name]["transcripts"]) for name in SUBSETS}, subset)
    tokenizer = prepare_tokenizer(dataset_dir, records, vocab_size, subset)
    kept, report = {}, {}
    for name in SUBSETS:
        kept[name], dropped, with_unknown = filter_and_write_targets(dataset_dir, name, records[name], tokenizer)
        report[name] = {"transcribed": len(records[name]["transcripts"]), "kept": len(kept[name]), "dropped": dropped,
                        "with_unknown_characters": with_unknown}
        reasons = ", ".join(f"{count:,} {rule}" for rule, count in dropped.items() if count)
        print(f"{name}: kept {len(kept[name]):,} of {len(records[name]['transcripts']):,}" + (f" (dropped: {reasons})" if reasons else ""))
        if with_unknown:
            print(f"warning: {with_unknown} kept {name} utterances hold characters the tokenizer never saw (id 0, CTC's blank)")
    check_counts(split_counts(kept), subset)
    summary = {"subsets": report, "audio_dtype": audio_dtype,
               "tokenizer": {"file": TOKENIZER_FILE, "vocab_size": tokenizer.vocab_size, "trained_on": list(spm.TRAINING_SUBSETS)}}
    print("writing the csvs and the manifest ...", flush=True)
    return finish(dataset_dir, kept, summary, f"LibriSpeech from {raw_dir}", subset)


# --- an upstream-prepared data dir ------------------------------------------------------------------


def _link_or_copy(source: Path, target: Path, folder: bool) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if folder:
        target.symlink_to(source.resolve(), target_is_directory=True)
    else:
        shutil.copyfile(source, target)


def adopt_upstream(upstream_dir: Path, data_dir: Path, subset: bool = False, tokenizer_file: Optional[Path] = None) -> Path:
    """Checks a data dir upstream's datasets/librispeech_preprocess.py wrote and adds the summary and the manifest."""
    dataset_dir = data_dir / DATASET_NAME
    in_place = dataset_dir.exists() and upstream_dir.resolve() == dataset_dir.resolve()
    tokenizer_file = tokenizer_file or upstream_dir / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise PreparationError(f"{tokenizer_file} is missing; pass the tokenizer upstream trained with --tokenizer PATH")
    try:
        tokenizer = spm.load_tokenizer(tokenizer_file)
    except ValueError as error:
        raise PreparationError(str(error)) from None
    kept, problems = {}, []
    for name in SUBSETS:
        if not csv_path(upstream_dir, name).is_file():
            problems.append(f"{csv_path(upstream_dir, name)} is missing")
            continue
        try:
            kept[name] = read_ids(upstream_dir, name)
        except DataProblem as problem:
            problems.append(str(problem).split("; rerun")[0])
            continue
        absent = [f"{name}/{utterance}{suffix}" for utterance in kept[name] for suffix in (AUDIO_SUFFIX, TARGETS_SUFFIX)
                  if not (upstream_dir / name / f"{utterance}{suffix}").is_file()]
        if absent:
            problems.append(f"{name}: {len(absent):,} listed files are missing, e.g. {', '.join(absent[:3])}")
    if problems:
        raise PreparationError(f"{upstream_dir} is not a complete upstream-prepared LibriSpeech dir:{_listing(problems)}\n"
                               "Rerun upstream's preparation, or prepare from the archives with --raw-dir")
    check_counts(split_counts(kept), subset)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)
    if not in_place:
        for name in SUBSETS:
            _link_or_copy(upstream_dir / name, dataset_dir / name, folder=True)
    if tokenizer_file.resolve() != (dataset_dir / TOKENIZER_FILE).resolve():
        _link_or_copy(tokenizer_file, dataset_dir / TOKENIZER_FILE, folder=False)
    first = [next(iter(kept[name]), None) for name in SUBSETS]
    dtypes = {str(np.load(dataset_dir / name / f"{utterance}{AUDIO_SUFFIX}", mmap_mode="r").dtype)
              for name, utterance in zip(SUBSETS, first) if utterance}
    summary = {"subsets": {name: {"kept": len(kept[name])} for name in SUBSETS}, "audio_dtype": ",".join(sorted(dtypes)),
               "tokenizer": {"file": TOKENIZER_FILE, "vocab_size": tokenizer.vocab_size, "from": str(tokenizer_file)}}
    print(f"taking the upstream-prepared data in {upstream_dir} ...", flush=True)
    return finish(dataset_dir, kept, summary, f"upstream-prepared LibriSpeech from {upstream_dir}", subset)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.librispeech.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help=f"the benchmark data dir; the prepared files go to DATA_DIR/{DATASET_NAME}/")
    parser.add_argument("--raw-dir", help="where the six <subset>.tar.gz archives (or the unpacked LibriSpeech/ folder) are")
    parser.add_argument("--from-upstream", nargs="?", const="", metavar="UPSTREAM_DIR",
                        help=f"take a data dir upstream's preparation wrote (default: DATA_DIR/{DATASET_NAME}) instead of raw archives")
    parser.add_argument("--tokenizer", help="with --from-upstream: upstream's tokenizer file, when it is not UPSTREAM_DIR/spm_model.vocab")
    parser.add_argument("--subset", action="store_true", help="accept a set smaller than the release (never scored)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes (default: one per CPU)")
    parser.add_argument("--vocab-size", type=int, default=spm.VOCAB_SIZE,
                        help="SentencePiece pieces (default 1,024; with --subset an upper bound, otherwise exact)")
    parser.add_argument("--audio-dtype", choices=AUDIO_DTYPES, default="int64", help="stored sample type (default int64, as the reference)")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir).expanduser()
    try:
        if args.from_upstream is not None:
            upstream_dir = Path(args.from_upstream).expanduser() if args.from_upstream else data_dir / DATASET_NAME
            tokenizer_file = Path(args.tokenizer).expanduser() if args.tokenizer else None
            manifest = adopt_upstream(upstream_dir, data_dir, args.subset, tokenizer_file)
        elif not args.raw_dir:
            parser.error("give --raw-dir (the official archives) or --from-upstream (a data dir upstream prepared)")
        else:
            raw_dir = Path(args.raw_dir).expanduser()
            manifest = prepare(raw_dir, data_dir, args.subset, max(args.workers, 1), args.vocab_size, args.audio_dtype)
    except PreparationError as error:
        print(f"librispeech preparation failed: {error}", file=sys.stderr)
        return 1
    print(f"LibriSpeech ready in {manifest.parent} ({manifest.name} written; tokenizer {TOKENIZER_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
