"""The prepared on-disk format: per split and side, all token ids in one array plus sentence offsets.

`<split>.<side>.tokens.npy` holds the sentences' ids back to back (each ends
with EOS; uint16 because the 32,000-piece vocabulary fits); `<split>.<side>.offsets.npy`
holds N + 1 int64 offsets, sentence i being tokens[offsets[i]:offsets[i + 1]].
Sides are `inputs` (German) and `targets` (English); pair i is row i of both.
The arrays are memory-mapped, so a 5.9M-pair training split costs no load time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

SPLITS = ("train", "validation", "test")
SIDES = ("inputs", "targets")


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


def file_names(split: str) -> List[str]:
    return [f"{split}.{side}.{part}.npy" for side in SIDES for part in ("tokens", "offsets")]


@dataclasses.dataclass(frozen=True)
class RaggedTokens:
    tokens: np.ndarray  # (total,) ids of all sentences back to back
    offsets: np.ndarray  # (N + 1,)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index] : self.offsets[index + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], dtype: np.dtype) -> "RaggedTokens":
        lengths = np.fromiter((len(sequence) for sequence in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.fromiter((token for sequence in sequences for token in sequence), dtype=dtype, count=int(offsets[-1]))
        return cls(tokens, offsets)

    @classmethod
    def concatenate(cls, parts: Sequence["RaggedTokens"], dtype: np.dtype) -> "RaggedTokens":
        if not parts:
            return cls(np.zeros(0, dtype=dtype), np.zeros(1, dtype=np.int64))
        lengths = np.concatenate([part.lengths for part in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.concatenate([part.tokens for part in parts]).astype(dtype, copy=False), offsets)


@dataclasses.dataclass(frozen=True)
class TokenizedPairs:
    inputs: RaggedTokens
    targets: RaggedTokens

    def __len__(self) -> int:
        return len(self.inputs)


def write_split(dataset_dir: Path, split: str, pairs: TokenizedPairs) -> List[str]:
    names = file_names(split)
    arrays = (pairs.inputs.tokens, pairs.inputs.offsets, pairs.targets.tokens, pairs.targets.offsets)
    for name, array in zip(names, arrays):
        np.save(dataset_dir / name, array, allow_pickle=False)
    return names


def load_split(dataset_dir: Path, split: str) -> TokenizedPairs:
    arrays: Tuple[np.ndarray, ...] = tuple(
        np.load(dataset_dir / name, mmap_mode="r", allow_pickle=False) for name in file_names(split)
    )
    pairs = TokenizedPairs(RaggedTokens(arrays[0], arrays[1]), RaggedTokens(arrays[2], arrays[3]))
    if len(pairs.inputs) != len(pairs.targets):
        raise ValueError(f"{dataset_dir}: {split} has {len(pairs.inputs)} sources but {len(pairs.targets)} targets.")
    return pairs
