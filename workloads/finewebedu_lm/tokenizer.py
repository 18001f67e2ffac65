"""GPT-2's byte-level BPE (reference §4.12: Hugging Face's `gpt2` tokenizer), through tiktoken and offline.

The reference tokenizes every document as `text + "<|endoftext|>"` with the Hugging Face GPT-2
tokenizer: 50,257 ids, EOS = 50256, no BOS, no padding, no truncation. tiktoken's "gpt2"
encoding gives the same ids, but fetches its ranks from the internet at first use. GPT-2's ranks
ship as `whisper/assets/gpt2.tiktoken` in the openai-whisper sdist, which scripts/setup_env.sh
unpacks to <venv>/share/pytest-algoperf/gpt2.tiktoken; the encoding is built from that file.

Where the ranks come from, first found wins:
  1. a path given by the caller (prepare's --tokenizer) or the ALGOPERF_GPT2_RANKS variable;
  2. the file setup_env.sh installs (installed_ranks_path());
  3. tiktoken.get_encoding("gpt2"), which downloads (or reads tiktoken's cache).

Two details of the reference are kept:
  * an empty document gives no tokens at all (only non-empty documents get the EOS);
  * "<|endoftext|>" written inside a document's text becomes the EOS id, as the Hugging Face
    tokenizer splits on its special tokens before the BPE (FineWeb-Edu text almost never holds it).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

VOCAB_SIZE = 50_257  # 50,256 byte-level BPE ranks + <|endoftext|>
EOS_ID = 50_256
EOS_TOKEN = "<|endoftext|>"
RANKS_ENV = "ALGOPERF_GPT2_RANKS"
RANKS_FILE_NAME = "gpt2.tiktoken"
RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"  # openai-whisper's copy, 835,554 bytes
RANKS_COUNT = 50_256
# GPT-2's pre-tokenisation regex in the form tiktoken's r50k/gpt2 encodings use (possessive
# quantifiers; the same splits as GPT-2's original pattern).
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_SPECIALS = frozenset({EOS_TOKEN})
DOWNLOAD_HINT = (
    "run `bash scripts/setup_env.sh`, or take it from the openai-whisper sdist: "
    "`pip download --no-deps --no-binary :all: openai-whisper` and copy whisper/assets/gpt2.tiktoken "
    f"from the tarball to that path (or name the file in ${RANKS_ENV})"
)

PathLike = Union[str, os.PathLike]


def _tiktoken_at_least(major: int, minor: int) -> bool:
    try:
        from importlib.metadata import version

        return tuple(int(part) for part in version("tiktoken").split(".")[:2]) >= (major, minor)
    except (ImportError, ValueError):
        return False


# tiktoken's encode_to_numpy (no list of Python ints in between) handles special tokens right from 0.11 on.
_NUMPY_ENCODE = _tiktoken_at_least(0, 11)


class MissingTokenizerError(RuntimeError):
    """GPT-2's BPE ranks are neither installed nor downloadable; the message says where to put them."""


def installed_ranks_path() -> Path:
    """Where scripts/setup_env.sh puts GPT-2's ranks: inside the virtualenv."""
    return Path(sys.prefix) / "share" / "pytest-algoperf" / RANKS_FILE_NAME


def ranks_path(path: Optional[PathLike] = None) -> Optional[Path]:
    """The ranks file to use (an explicit path, the env variable, the installed file), or None to ask tiktoken.

    A file named explicitly must exist: a wrong path is an error, not a silent download.
    """
    named = path if path is not None else os.environ.get(RANKS_ENV) or None
    if named is not None:
        named = Path(named).expanduser()
        if not named.is_file():
            source = "given" if path is not None else f"named by ${RANKS_ENV}"
            raise MissingTokenizerError(f"the GPT-2 BPE ranks file {named} ({source}) does not exist; {DOWNLOAD_HINT}")
        return named
    installed = installed_ranks_path()
    return installed if installed.is_file() else None


def ranks_digest(path: Optional[Path]) -> str:
    """What identifies the ranks in use (recorded by the preparation; a change invalidates its work)."""
    if path is None:
        return "tiktoken:gpt2"
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=4)
def _encoding_from(path: Optional[Path]):
    import tiktoken

    if path is None:
        try:
            encoding = tiktoken.get_encoding("gpt2")
        except Exception as error:  # requests' connection errors, tiktoken's hash check, ...
            raise MissingTokenizerError(
                f"GPT-2's BPE ranks are not installed at {installed_ranks_path()} and tiktoken could not fetch them "
                f"({type(error).__name__}: {error}); {DOWNLOAD_HINT}"
            ) from None
    else:
        import tiktoken.load

        try:
            ranks = tiktoken.load.load_tiktoken_bpe(str(path))
        except (ValueError, OSError) as error:
            raise MissingTokenizerError(f"{path} is not a tiktoken BPE ranks file ({error}); {DOWNLOAD_HINT}") from None
        if len(ranks) != RANKS_COUNT or max(ranks.values()) != RANKS_COUNT - 1:
            raise MissingTokenizerError(f"{path} holds {len(ranks):,} BPE ranks, GPT-2 has {RANKS_COUNT:,}; {DOWNLOAD_HINT}")
        encoding = tiktoken.Encoding(
            name="gpt2", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={EOS_TOKEN: EOS_ID}
        )
    if encoding.n_vocab != VOCAB_SIZE or encoding.eot_token != EOS_ID:
        raise MissingTokenizerError(f"the GPT-2 encoding has {encoding.n_vocab} ids and EOS {encoding.eot_token}, "
                                    f"expected {VOCAB_SIZE} and {EOS_ID}")
    return encoding


def load_encoding(path: Optional[PathLike] = None):
    """The `tiktoken.Encoding` of GPT-2 (built once per ranks file)."""
    return _encoding_from(ranks_path(path))


def encode_document(text: Optional[str], encoding=None) -> np.ndarray:
    """One document's ids as the reference makes them: its BPE ids then EOS; none for an empty document (uint32)."""
    if not text:
        return np.empty(0, dtype=np.uint32)
    encoding = encoding or load_encoding()
    if _NUMPY_ENCODE:
        return encoding.encode_to_numpy(text + EOS_TOKEN, allowed_special=_SPECIALS)
    return np.array(encoding.encode(text + EOS_TOKEN, allowed_special=_SPECIALS), dtype=np.uint32)


def encode_documents(texts: Iterable[Optional[str]], encoding=None) -> Tuple[np.ndarray, np.ndarray]:
    """(tokens, lengths) of many documents: their ids concatenated as uint16, and each document's length (int64).

    One process, one thread (the preparation runs one of these per CPU).
    """
    encoding = encoding or load_encoding()
    pieces = [encode_document(text, encoding) for text in texts]
    lengths = np.fromiter((len(piece) for piece in pieces), dtype=np.int64, count=len(pieces))
    tokens = np.concatenate(pieces).astype(np.uint16) if pieces else np.empty(0, dtype=np.uint16)
    return tokens, lengths


def encode_batch(texts: Sequence[Optional[str]], encoding=None, num_threads: int = 8) -> List[List[int]]:
    """Each document's ids (BPE ids + EOS, empty for an empty document) as lists, encoded on `num_threads` threads."""
    encoding = encoding or load_encoding()
    present = [i for i, text in enumerate(texts) if text]
    encoded = encoding.encode_batch([texts[i] + EOS_TOKEN for i in present], num_threads=num_threads, allowed_special=_SPECIALS)
    result: List[List[int]] = [[] for _ in texts]
    for i, ids in zip(present, encoded):
        result[i] = ids
    return result


def token_count(text: Optional[str], encoding=None) -> int:
    """GPT-2 tokens of a text without the EOS (FineWeb-Edu's `token_count` column)."""
    if not text:
        return 0
    encoding = encoding or load_encoding()
    return len(encoding.encode_ordinary(text))
