"""The official WMT raw files of the reference's German-English splits, and how to read them.

The reference reads TFDS `wmt17_translate/de-en` (train) and
`wmt14_translate/de-en` (validation, test), which TFDS builds from these
files of the WMT releases (unpack the archives anywhere under the raw dir):

  train       training-parallel-europarl-v7.tgz   training/europarl-v7.de-en.{de,en}
              training-parallel-commoncrawl.tgz   commoncrawl.de-en.{de,en}
              training-parallel-nc-v12.tgz        training/news-commentary-v12.de-en.{de,en}
              rapid2016.tgz                       rapid2016.de-en.{de,en}
  validation  dev.tgz                             dev/newstest2013.{de,en}  (or newstest2013-{src.de,ref.en}.sgm)
  test        dev.tgz / test-full.tgz             newstest2014-deen-{src.de,ref.en}.sgm  (or newstest2014.{de,en})

Parsing follows TFDS: a plain file is split on "\\n" with nothing stripped;
an SGML file yields the text of each line that starts with `<seg id="N">`
(entities are left as they are); pairs with an empty side are dropped. That
gives the reference's counts: 5,906,184 / 3,000 / 3,003.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

Pair = Tuple[str, str]  # (German source, English target)

REFERENCE_COUNTS = {"train": 5_906_184, "validation": 3_000, "test": 3_003}


@dataclasses.dataclass(frozen=True)
class ParallelFiles:
    """One parallel corpus: a German file and the line-aligned English file."""

    name: str
    german: str
    english: str

    @property
    def is_sgml(self) -> bool:
        return self.german.endswith(".sgm")


# In the order TFDS concatenates them.
TRAIN_CORPORA = (
    ParallelFiles("europarl_v7", "europarl-v7.de-en.de", "europarl-v7.de-en.en"),
    ParallelFiles("commoncrawl", "commoncrawl.de-en.de", "commoncrawl.de-en.en"),
    ParallelFiles("newscommentary_v12", "news-commentary-v12.de-en.de", "news-commentary-v12.de-en.en"),
    ParallelFiles("rapid_2016", "rapid2016.de-en.de", "rapid2016.de-en.en"),
)
# Each eval split: the files the reference reads first, then the other format WMT ships.
EVAL_SOURCES = {
    "validation": (
        ParallelFiles("newstest2013", "newstest2013.de", "newstest2013.en"),
        ParallelFiles("newstest2013", "newstest2013-src.de.sgm", "newstest2013-ref.en.sgm"),
    ),
    "test": (
        ParallelFiles("newstest2014", "newstest2014-deen-src.de.sgm", "newstest2014-deen-ref.en.sgm"),
        ParallelFiles("newstest2014", "newstest2014.de", "newstest2014.en"),
    ),
}

_SEGMENT = re.compile(r"<seg id=\"\d+\">(.*)</seg>")


class RawDataError(Exception):
    """The raw files are missing, misaligned or unreadable; the message names the file."""


def read_plain_lines(path: Path) -> List[str]:
    return path.read_bytes().decode("utf-8").split("\n")


def read_sgml_segments(path: Path) -> List[str]:
    segments = []
    for line in path.read_bytes().decode("utf-8").split("\n"):
        match = _SEGMENT.match(line)
        if match:
            segments.append(match.group(1))
    return segments


def read_pairs(german_path: Path, english_path: Path) -> List[Pair]:
    """Aligned (German, English) pairs of one corpus, without pairs that have an empty side."""
    reader = read_sgml_segments if german_path.name.endswith(".sgm") else read_plain_lines
    try:
        german, english = reader(german_path), reader(english_path)
    except UnicodeDecodeError as error:
        raise RawDataError(f"{german_path} or {english_path} is not UTF-8 text: {error}") from None
    if len(german) != len(english):
        raise RawDataError(f"{german_path} has {len(german)} segments but {english_path} has {len(english)}; they must align line by line.")
    return [(source, target) for source, target in zip(german, english) if source and target]


def find_file(raw_dir: Path, name: str) -> Optional[Path]:
    """The file called `name` anywhere under raw_dir (the archives may be unpacked in any layout)."""
    matches = sorted(raw_dir.rglob(name))
    return matches[0] if matches else None


def locate(raw_dir: Path, files: ParallelFiles) -> Optional[Tuple[Path, Path]]:
    german, english = find_file(raw_dir, files.german), find_file(raw_dir, files.english)
    if german is None and english is None:
        return None
    if german is None or english is None:
        present, missing = (german, files.english) if english is None else (english, files.german)
        raise RawDataError(f"found {present} but not its parallel file {missing} under {raw_dir}.")
    return german, english


@dataclasses.dataclass
class RawSplits:
    pairs: Dict[str, List[Pair]]
    sources: Dict[str, List[str]]  # split -> the files read, for the record
    missing_train_corpora: List[str]


def read_splits(raw_dir: Path, train_corpora: Sequence[ParallelFiles] = TRAIN_CORPORA) -> RawSplits:
    """All three splits from raw_dir; some training corpora may be absent (that makes a subset)."""
    if not raw_dir.is_dir():
        raise RawDataError(f"raw dir {raw_dir} does not exist.")
    pairs: Dict[str, List[Pair]] = {"train": []}
    sources: Dict[str, List[str]] = {"train": []}
    missing = []
    for corpus in train_corpora:
        paths = locate(raw_dir, corpus)
        if paths is None:
            missing.append(corpus.name)
            continue
        pairs["train"].extend(read_pairs(*paths))
        sources["train"].extend(str(path) for path in paths)
    if not sources["train"]:
        names = ", ".join(f"{corpus.german}/{corpus.english}" for corpus in train_corpora)
        raise RawDataError(f"no training corpus under {raw_dir}; expected at least one of {names}.")
    for split, candidates in EVAL_SOURCES.items():
        for candidate in candidates:
            paths = locate(raw_dir, candidate)
            if paths is not None:
                pairs[split] = read_pairs(*paths)
                sources[split] = [str(path) for path in paths]
                break
        else:
            names = " or ".join(f"{c.german} + {c.english}" for c in candidates)
            raise RawDataError(f"no {split} files under {raw_dir}; expected {names}.")
    return RawSplits(pairs, sources, missing)
