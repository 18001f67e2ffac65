"""Small FineWeb-Edu-layout parquet shards made from real English text, for tests, smoke runs and the benchmark.

No FineWeb-Edu text installs offline, but every Debian system carries real English prose in
/usr/share/common-licenses/ (package base-files: the Apache, Artistic, BSD, CC0, GFDL, GPL,
LGPL and MPL licence texts, 14 distinct files, about 237,000 characters). Each distinct file
(symlinks and files with the same text skipped, in name order) becomes one document.
With `copies` > 1 every text comes again as another document (a different id), for more data.

The shards follow the sample-10BT release: RAW/sample/10BT/000_00000.parquet (and 001_00000.parquet,
... when the documents are spread over several shards), with FineWeb-Edu's ten columns:
  text            the file's text
  id              "<urn:uuid:...>" (a UUID derived from the file name and copy number)
  dump            "CC-MAIN-2024-10" (a Common Crawl dump name; these texts were not crawled)
  url             file:///usr/share/common-licenses/<name> (#copy-<k> for copies)
  file_path       the file's path
  language        "en"
  language_score  0.95 (FineWeb's fastText English score; a placeholder, no classifier is run)
  token_count     the text's GPT-2 token count (without EOS), as FineWeb-Edu counts
  score           3.0 and int_score 3 (FineWeb-Edu's educational score; sample-10BT holds int_score >= 3)

With one copy (58,209 GPT-2 tokens with the EOSs) and the preparation's split rule (seed 0,
90/10 by document), train gets 12 documents, 48,726 tokens, 47 windows of 1,025 tokens, and
validation 2 (GPL-3 and Artistic), 9,483 tokens, 9 windows (with the texts of Debian 12's base-files).

Usage: python -m workloads.finewebedu_lm.sample_data --raw-dir RAW [--copies 1] [--shards 1] [--row-group-rows N]
       python -m workloads.finewebedu_lm.prepare --data-dir DATA --raw-dir RAW --subset --workers 1
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from workloads.data_manifest import MANIFEST_NAME
from workloads.finewebedu_lm import tokenizer as gpt2
from workloads.finewebedu_lm.input_pipeline import DATASET_NAME

LICENSES_DIR = Path("/usr/share/common-licenses")
INSTALL_HINT = "apt-get install base-files"
SHARD_FOLDER = Path("sample") / "10BT"
DUMP = "CC-MAIN-2024-10"
LANGUAGE_SCORE = 0.95
SCORE = 3.0


class MissingTextError(RuntimeError):
    """The licence texts are not there."""


def license_texts(folder: Path = LICENSES_DIR) -> List[Tuple[str, str]]:
    """(file name, text) of each distinct licence text, in name order."""
    texts, seen = [], set()
    paths = sorted(folder.iterdir(), key=lambda path: path.name) if folder.is_dir() else []
    for path in paths:
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        if text.strip() and digest not in seen:
            seen.add(digest)
            texts.append((path.name, text))
    if not texts:
        raise MissingTextError(f"no licence texts in {folder}; install them with: {INSTALL_HINT}")
    return texts


def documents(copies: int = 1, folder: Path = LICENSES_DIR) -> List[Dict[str, str]]:
    """The documents in order: every licence text once per copy, with its name, URL and path."""
    rows = []
    for copy in range(copies):
        for name, text in license_texts(folder):
            path = folder / name
            url = path.as_uri() + (f"#copy-{copy}" if copy else "")
            rows.append({"text": text, "url": url, "file_path": str(path)})
    return rows


def _uuid(url: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>"


def write_shard(path: Path, rows: Sequence[Dict[str, Optional[str]]], row_group_rows: Optional[int] = None) -> Path:
    """One parquet shard with FineWeb-Edu's ten columns; `rows` give text (and optionally url, file_path)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoding = gpt2.load_encoding()
    texts = [row["text"] for row in rows]
    urls = [row.get("url") or f"https://example.org/sample/{number}" for number, row in enumerate(rows)]
    table = pa.table({
        "text": pa.array(texts, pa.string()),
        "id": pa.array([_uuid(url) for url in urls], pa.string()),
        "dump": pa.array([DUMP] * len(rows), pa.string()),
        "url": pa.array(urls, pa.string()),
        "file_path": pa.array([row.get("file_path") or "" for row in rows], pa.string()),
        "language": pa.array(["en"] * len(rows), pa.string()),
        "language_score": pa.array([LANGUAGE_SCORE] * len(rows), pa.float64()),
        "token_count": pa.array([gpt2.token_count(text, encoding) for text in texts], pa.int64()),
        "score": pa.array([SCORE] * len(rows), pa.float64()),
        "int_score": pa.array([int(round(SCORE))] * len(rows), pa.int64()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial, row_group_size=row_group_rows or max(len(rows), 1))
    partial.replace(path)
    return path


def shard_name(number: int) -> str:
    """sample-10BT's file names: 000_00000.parquet, 001_00000.parquet, ..."""
    return f"{number:03d}_00000.parquet"


def write_raw_dir(raw_dir: Path, copies: int = 1, shards: int = 1, row_group_rows: Optional[int] = None,
                  rows: Optional[Sequence[Dict[str, Optional[str]]]] = None) -> List[Dict[str, Optional[str]]]:
    """RAW/sample/10BT/<nnn>_00000.parquet holding the documents (the licence texts, or `rows`) spread in order over
    `shards` files; returns the documents in shard order."""
    rows = list(documents(copies) if rows is None else rows)
    folder = Path(raw_dir) / SHARD_FOLDER
    for old in folder.glob("*.parquet"):
        old.unlink()
    for number, part in enumerate(np.array_split(np.arange(len(rows)), max(int(shards), 1))):
        write_shard(folder / shard_name(number), [rows[i] for i in part], row_group_rows)
    return rows


def write_prepared_data_dir(data_dir: Path, copies: int = 1, workers: int = 1) -> Path:
    """DATA_DIR/finewebedu_lm made by the real preparation from the sample shards (in DATA_DIR/finewebedu_lm_smoke_raw),
    as a --subset; a finished one (its manifest present) is kept as it is. Returns the dataset dir."""
    from workloads.finewebedu_lm import prepare

    data_dir = Path(data_dir)
    dataset_dir = data_dir / DATASET_NAME
    if (dataset_dir / MANIFEST_NAME).is_file():
        return dataset_dir
    raw = data_dir / f"{DATASET_NAME}_smoke_raw"
    write_raw_dir(raw, copies=copies)
    arguments = ["--data-dir", str(data_dir), "--raw-dir", str(raw), "--subset", "--workers", str(workers)]
    if prepare.main(arguments) != 0:
        raise RuntimeError(f"preparing the finewebedu_lm sample data from {raw} failed (see the message above)")
    return dataset_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.finewebedu_lm.sample_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw-dir", required=True, help=f"where {SHARD_FOLDER.as_posix()}/*.parquet go")
    parser.add_argument("--copies", type=int, default=1, help="documents per licence text (default 1)")
    parser.add_argument("--shards", type=int, default=1, help="parquet files the documents are spread over (default 1)")
    parser.add_argument("--row-group-rows", type=int, help="rows per parquet row group (default: one row group per shard)")
    args = parser.parse_args(argv)
    try:
        rows = write_raw_dir(Path(args.raw_dir).expanduser(), args.copies, args.shards, args.row_group_rows)
    except (MissingTextError, gpt2.MissingTokenizerError) as error:
        print(f"FineWeb-Edu sample data: {error}", file=sys.stderr)
        return 1
    print(f"FineWeb-Edu sample shards ({len(rows)} documents) written to {Path(args.raw_dir) / SHARD_FOLDER}; prepare them with "
          f"python -m workloads.finewebedu_lm.prepare --data-dir DATA --raw-dir {args.raw_dir} --subset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
