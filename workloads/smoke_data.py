"""Tiny prepared data sets for smoke runs, made by each workload's real preparation command.

Each writer generates a few dozen examples in the official raw layout (or, for
MNIST, in the IDX files themselves), runs the real preparation path on them and
leaves a data dir marked as a subset: real shapes, dtypes, keys and code paths,
with evaluation over a handful of examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict


def _mnist(data_dir: Path) -> None:
    from workloads.mnist import prepare

    prepare.write_subset(data_dir / "mnist", num_train=256, num_validation=64, num_test=64)


def _ogbg(data_dir: Path) -> None:
    from workloads.ogbg import prepare
    from workloads.ogbg.raw_format import write_release
    from workloads.ogbg.synthetic import random_molecules

    molecules = random_molecules(120, seed=0, split_fractions=(0.5, 0.25, 0.25), positive_fraction=0.05, missing_fraction=0.3)
    raw = write_release(data_dir / "ogbg_smoke_raw" / "pcba", molecules)
    prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw)])


def _wmt(data_dir: Path) -> None:
    from workloads.wmt import prepare, sample_data

    raw = sample_data.write_raw_dir(data_dir / "wmt_smoke_raw", copies=1)
    prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw), "--vocab-size", "300", "--max-length", "16"])


def _criteo1tb(data_dir: Path) -> None:
    from workloads.criteo1tb import prepare
    from workloads.criteo1tb.sample_data import write_raw_dump

    # Day 23 in 21 files of 20 lines: 19 test files, 2 validation files (the reference's split rule).
    raw = write_raw_dump(data_dir / "criteo1tb_smoke_raw", {0: 400, 23: 420}, seed=0, split_days={23: 20})
    prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw), "--subset", "--workers", "1"])


def _fastmri(data_dir: Path) -> None:
    from workloads.fastmri import prepare, sample_data

    # Real anatomy (mricron-data's T1 scan) as simulated single-coil k-space, left unpacked as
    # `tar -xJf` leaves the official archives (packing noise-like k-space with xz takes seconds).
    # 2 training volumes of 2 slices (two smoke batches of 2); 2 val volumes give validation and test,
    # so each eval passes 6 slices through the U-Net.
    raw = sample_data.write_raw_dir(data_dir / "fastmri_smoke_raw", train_volumes=2, val_volumes=2, slices=2, unpacked=True)
    if prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw), "--subset"]) != 0:
        raise RuntimeError(f"preparing the fastmri smoke data from {raw} failed (see the message above)")


def _imagenet(data_dir: Path) -> None:
    from workloads.imagenet import prepare, sample_data

    # foolbox's real ImageNet photographs with their real classes: 4 training images (two smoke
    # batches of 2), 2 validation and 2 ImageNet-v2 images, so each eval passes 6 images (eval_train
    # is capped at the 4 training images) through the network.
    raw = data_dir / "imagenet_smoke_raw"
    sample_data.write_raw_dir(raw, num_train=4, num_val=2, num_v2=2)
    if prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw), "--subset"]) != 0:
        raise RuntimeError(f"preparing the imagenet smoke data from {raw} failed (see the message above)")


def _cifar(data_dir: Path) -> None:
    from workloads.cifar import prepare, sample_data

    # foolbox's 20 real CIFAR-10 images: 5 x 4 training images (18 train, 2 validation), 4 test.
    raw = data_dir / "cifar_smoke_raw"
    sample_data.write_raw_dir(raw, per_train_file=4, num_test=4)
    prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw), "--subset"])


def _librispeech(data_dir: Path) -> None:
    from workloads.librispeech import sample_data

    # Real speech (asterisk's prompts, pocketsphinx's LibriVox clips) as the six official archives.
    # Every utterance is padded to 320,000 samples, so a CPU pays as much for a short one as for 20 s
    # of speech: prompts are joined into utterances of 6 s or more, one per archive but two in
    # train-clean-100 (whose transcripts train the tokenizer: two cover every letter), so that each
    # eval passes 7 utterances (4 training, 2 validation, 1 test) through the model.
    counts = {subset: 1 for subset in sample_data.SUBSETS}
    counts["train-clean-100"] = 2
    sample_data.write_prepared_data_dir(data_dir, counts, seconds=6.0)


SMOKE_LM_DOCUMENTS = ("Artistic", "CC0-1.0")  # /usr/share/common-licenses files (base-files)


def _finewebedu_lm(data_dir: Path) -> None:
    from workloads.finewebedu_lm import prepare, sample_data

    # Two whole real English documents, Debian's Artistic and CC0 licence texts (about 1,400 and 1,650
    # GPT-2 tokens), as a FineWeb-Edu parquet shard. The split rule puts one in train and one in
    # validation, one 1,025-token window each: an eval passes two sequences through the 253 M-parameter
    # model (about 0.5 TFLOP each).
    rows = [row for row in sample_data.documents() if Path(row["file_path"]).name in SMOKE_LM_DOCUMENTS]
    raw = data_dir / "finewebedu_lm_smoke_raw"
    sample_data.write_raw_dir(raw, rows=rows)
    if prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw), "--subset", "--workers", "1"]) != 0:
        raise RuntimeError(f"preparing the finewebedu_lm smoke data from {raw} failed (see the message above)")

SMOKE_DATA_WRITERS: Dict[str, Callable[[Path], None]] = {
    "mnist": _mnist,
    "ogbg": _ogbg,
    "wmt": _wmt,
    "criteo1tb": _criteo1tb,
    "fastmri": _fastmri,
    "imagenet": _imagenet,
    "cifar": _cifar,
    "librispeech": _librispeech,
    "finewebedu_lm": _finewebedu_lm,
}


def prepare_smoke_data(dataset_name: str, data_dir: Path) -> None:
    """Writes the tiny prepared data set of `dataset_name` under `data_dir` (once; a finished one is kept)."""
    if (data_dir / dataset_name / "manifest.json").is_file():
        return
    try:
        writer = SMOKE_DATA_WRITERS[dataset_name]
    except KeyError:
        raise KeyError(f"No smoke data writer for data set {dataset_name!r}; add one to workloads/smoke_data.py.") from None
    writer(data_dir)
