"""The 1,000 ILSVRC 2012 classes: WordNet ids in class-index order.

Class k of ImageNet is the k-th WordNet id in sorted order; that is how torchvision's
ImageFolder numbers the train/ and val/ folders of the full release, how TFDS numbers
its labels, and what ImageNet-v2's folder names 0 ... 999 mean. synsets.json holds the
list, so a subset data dir (a few classes, for tests and smoke runs) keeps each image's
real class id instead of renumbering the classes it happens to contain, and the
preparation command can tell a foreign folder from an ILSVRC class.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Dict, Tuple

SYNSETS_FILE = Path(__file__).with_name("synsets.json")


@functools.lru_cache(maxsize=1)
def wnids() -> Tuple[str, ...]:
    """The 1,000 WordNet ids, sorted, so wnids()[k] is class k."""
    return tuple(json.loads(SYNSETS_FILE.read_text()))


@functools.lru_cache(maxsize=1)
def class_index() -> Dict[str, int]:
    """wnid -> class id."""
    return {wnid: index for index, wnid in enumerate(wnids())}
