"""LibriSpeech data path: real speech in the official archive layout -> prepared npy files -> padded batches.

The speech is Debian's asterisk prompts (resampled to 16 kHz) and pocketsphinx's LibriVox clips
(workloads/librispeech/sample_data.py); tests skip with the apt-get command when they are missing.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import tarfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
soundfile = pytest.importorskip("soundfile")
pytest.importorskip("sentencepiece")

from workloads.base import DataProblem  # noqa: E402
from workloads.data_manifest import check_manifest, subset_counts  # noqa: E402
from workloads.librispeech import input_pipeline, prepare, sample_data, tokenizer  # noqa: E402
from workloads.librispeech.input_pipeline import REFERENCE_COUNTS, SUBSETS  # noqa: E402
from workloads.parallel import World  # noqa: E402

CPU = torch.device("cpu")
SMALL = {"train-clean-100": 6, "train-clean-360": 1, "train-other-500": 1, "dev-clean": 1, "dev-other": 1, "test-clean": 1}

needs_speech = pytest.mark.skipif(
    not sample_data.speech_available(), reason=f"needs Debian's speech test data: {sample_data.INSTALL_HINT}"
)


def _prepare(raw, data, *extra) -> int:
    return prepare.main(["--data-dir", str(data), "--raw-dir", str(raw), "--workers", "1", *extra])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The default sample (32 utterances: 20 train, 8 validation, 4 test) prepared as a subset."""
    if not sample_data.speech_available():
        pytest.skip(f"needs Debian's speech test data: {sample_data.INSTALL_HINT}")
    root = tmp_path_factory.mktemp("librispeech")
    written = sample_data.write_raw_dir(root / "raw")
    assert _prepare(root / "raw", root / "data", "--subset") == 0
    return root / "data" / "librispeech", written, root


def _world(rank=0, ranks=0):
    """A CPU process; ranks > 1: rank `rank` of a DDP world (no process group is needed to read data)."""
    return World(use_ddp=ranks > 1, rank=rank, device=CPU, num_devices=ranks)


def _flac_samples(raw, subset, utterance):
    speaker, chapter, _ = utterance.split("-")
    with tarfile.open(raw / f"{subset}.tar.gz") as tar:
        data = tar.extractfile(f"LibriSpeech/{subset}/{speaker}/{chapter}/{utterance}.flac").read()
    return soundfile.read(io.BytesIO(data), dtype="int16")[0]


def _texts(dataset_dir, split, rows):
    """Reference transcripts of a batch's rows, from their (padded) target ids."""
    spm = tokenizer.load_tokenizer(input_pipeline.tokenizer_path(dataset_dir))
    targets, paddings = rows
    return [spm.decode(row[paddings_row == 0].long().tolist()) for row, paddings_row in zip(targets, paddings)]


# --- raw files and preparation ----------------------------------------------------------------------


def test_official_archives_become_the_reference_layout(prepared, capsys):
    dataset_dir, written, root = prepared
    with tarfile.open(root / "raw" / "dev-clean.tar.gz") as tar:
        names = tar.getnames()
    assert "LibriSpeech/dev-clean/401/4010/401-4010.trans.txt" in names and "LibriSpeech/dev-clean/401/4010/401-4010-0000.flac" in names
    assert [len(written[subset]) for subset in SUBSETS] == [12, 4, 4, 4, 4, 4]
    # pandas' one-column csv, and one audio and one targets file per utterance.
    assert (dataset_dir / "dev-clean.csv").read_text() == ",id\n" + "".join(f"{i},401-4010-{i:04d}\n" for i in range(4))
    spm = tokenizer.load_tokenizer(dataset_dir / "spm_model.vocab")
    for subset in SUBSETS:
        ids = input_pipeline.read_ids(dataset_dir, subset)
        assert ids == sorted(written[subset])
        files = sorted(p.name for p in (dataset_dir / subset).iterdir())
        assert files == sorted(f"{u}{suffix}" for u in ids for suffix in ("_audio.npy", "_targets.npy"))
    utterance = "401-4010-0001"  # a LibriVox clip
    audio = np.load(dataset_dir / "dev-clean" / f"{utterance}_audio.npy")
    targets = np.load(dataset_dir / "dev-clean" / f"{utterance}_targets.npy")
    assert audio.dtype == np.int64 and targets.dtype == np.int32  # as upstream stores them
    np.testing.assert_array_equal(audio, _flac_samples(root / "raw", "dev-clean", utterance))
    assert targets[-1] == tokenizer.EOS_ID and tokenizer.BOS_ID not in targets  # eos appended, no bos
    assert spm.decode(targets) == written["dev-clean"][utterance] == "HE WAS NOT AN ILL DISPOSED YOUNG MAN"
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    assert manifest["subset"] is True and manifest["counts"] == {"train": 20, "validation": 8, "test": 4}
    assert set(manifest["files"]) == {f"{s}.csv" for s in SUBSETS} | {"spm_model.vocab", "librispeech.json"}
    assert subset_counts(dataset_dir) == {"train": 20, "validation": 8, "test": 4}
    assert check_manifest(dataset_dir, prepare.preparation_command("DATA"), REFERENCE_COUNTS).ready
    summary = json.loads((dataset_dir / "librispeech.json").read_text())
    assert summary["tokenizer"]["trained_on"] == ["train-clean-100"] and summary["tokenizer"]["vocab_size"] == spm.vocab_size
    assert all(report["with_unknown_characters"] == 0 for report in summary["subsets"].values())

    # A rerun decodes nothing again and lands the same files.
    stamps = {p: p.stat().st_mtime_ns for p in (dataset_dir / "train-clean-100").iterdir()}
    capsys.readouterr()
    assert _prepare(root / "raw", dataset_dir.parent, "--subset") == 0
    assert "decoding" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (dataset_dir / "train-clean-100").iterdir()} == stamps
    assert json.loads((dataset_dir / "manifest.json").read_text())["files"] == manifest["files"]


def test_unpacked_folders_and_worker_processes_give_the_same_data(prepared, tmp_path):
    dataset_dir, _, _ = prepared
    raw = tmp_path / "raw"
    sample_data.write_raw_dir(raw, unpacked=True)
    assert (raw / "LibriSpeech" / "dev-clean" / "401" / "4010" / "401-4010.trans.txt").is_file()
    assert prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(raw), "--subset", "--workers", "2"]) == 0
    other = tmp_path / "data" / "librispeech"
    assert (other / "spm_model.vocab").read_bytes() == (dataset_dir / "spm_model.vocab").read_bytes()
    for subset in SUBSETS:
        assert (other / f"{subset}.csv").read_text() == (dataset_dir / f"{subset}.csv").read_text()
        for path in (dataset_dir / subset).iterdir():
            np.testing.assert_array_equal(np.load(other / subset / path.name), np.load(path))


@needs_speech
def test_the_references_length_filters(tmp_path):
    """Audio over 320,000 samples or a transcript over 256 characters is dropped; the limits themselves are kept."""
    speech = sample_data.prompt_audio(sample_data.asterisk_prompts()[0])
    words = "WORDS " * 60

    def utterance(text, samples):
        return sample_data.Utterance(text, np.resize(speech, samples))  # real speech, repeated to the length

    extra = [utterance("AT THE LIMIT", 320_000), utterance("ONE SAMPLE TOO MANY", 320_001),
             utterance(words[:256].strip().ljust(256, "S"), 16_000), utterance(words[:257].strip().ljust(257, "S"), 16_000)]
    assert [len(u.text) for u in extra[2:]] == [256, 257]
    sample_data.write_raw_dir(tmp_path / "raw", SMALL, extra={"train-clean-360": extra})
    assert _prepare(tmp_path / "raw", tmp_path / "data", "--subset") == 0
    dataset_dir = tmp_path / "data" / "librispeech"
    ids = input_pipeline.read_ids(dataset_dir, "train-clean-360")
    added = sample_data.utterance_ids("train-clean-360", 4, source=8)
    assert [u for u in ids if u in added] == [added[0], added[2]]  # 320,000 samples and 256 characters stay
    assert not [p for p in (dataset_dir / "train-clean-360").iterdir() if p.name.startswith((added[1], added[3]))]  # no files left
    report = json.loads((dataset_dir / "librispeech.json").read_text())["subsets"]["train-clean-360"]
    assert report["transcribed"] == 5 and report["kept"] == 3
    assert report["dropped"]["audio over 320,000 samples"] == 1 and report["dropped"]["transcript over 256 characters"] == 1
    assert len(np.load(dataset_dir / "train-clean-360" / f"{added[0]}_audio.npy")) == 320_000
    assert json.loads((dataset_dir / "manifest.json").read_text())["counts"]["train"] == 6 + 3 + 1


def test_counts_are_checked_unless_subset(prepared, tmp_path, capsys):
    _, _, root = prepared
    assert _prepare(root / "raw", tmp_path / "data") == 1
    err = capsys.readouterr().err
    assert "train-clean-100: 12 transcribed utterances, the release has 28,539" in err
    assert "train-other-500: 4 transcribed utterances, the release has 148,688" in err and "--subset" in err
    assert "training" not in capsys.readouterr().out  # checked before the tokenizer is trained
    assert not (tmp_path / "data" / "librispeech" / "manifest.json").exists()
    # The release's numbers pass; one utterance short is named.
    prepare.check_raw_counts(dict(prepare.RAW_COUNTS), subset_mode=False)
    prepare.check_counts(dict(REFERENCE_COUNTS), subset_mode=False)
    with pytest.raises(prepare.PreparationError, match="validation: 5,347 utterances kept, the reference has 5,348"):
        prepare.check_counts({**REFERENCE_COUNTS, "validation": 5_347}, subset_mode=False)
    with pytest.raises(prepare.PreparationError, match="dev-other: 2,863 transcribed utterances, the release has 2,864"):
        prepare.check_raw_counts({**prepare.RAW_COUNTS, "dev-other": 2_863}, subset_mode=False)
    assert sum(prepare.RAW_COUNTS[s] for s in input_pipeline.TRAIN_SUBSETS) == 281_241  # 17,401 dropped by the filters
    with pytest.raises(prepare.PreparationError, match="no utterances are left in test"):
        prepare.check_counts({"train": 3, "validation": 1, "test": 0}, subset_mode=True)
    assert _prepare(root / "raw", tmp_path / "data", "--vocab-size", "64") == 1
    assert "only for a --subset sample" in capsys.readouterr().err


@needs_speech
def test_damaged_and_missing_raw_data_are_named(tmp_path, capsys):
    raw = tmp_path / "raw"
    sample_data.write_raw_dir(raw, SMALL)
    intact = (raw / "dev-other.tar.gz").read_bytes()
    (raw / "dev-other.tar.gz").write_bytes(intact[: len(intact) // 2])
    assert _prepare(raw, tmp_path / "data", "--subset") == 1
    err = capsys.readouterr().err
    assert "dev-other.tar.gz is truncated or damaged" in err and "download dev-other.tar.gz again" in err
    assert not (tmp_path / "data" / "librispeech" / "manifest.json").exists()

    # A FLAC that is not one, inside an intact archive, is named by its path.
    (raw / "dev-other.tar.gz").write_bytes(intact)
    utterances = {"501-5010-0000": sample_data.Utterance("TEN OF CLUBS", np.zeros(100, np.int16))}
    sample_data.write_subset(raw, "test-clean", utterances)
    with tarfile.open(raw / "test-clean.tar.gz", "w:gz") as tar:
        for name, data in [("LibriSpeech/test-clean/601/6010/601-6010-0000.flac", b"fLaC but not really"),
                           ("LibriSpeech/test-clean/601/6010/601-6010.trans.txt", b"601-6010-0000 HELLO\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _prepare(raw, tmp_path / "data", "--subset") == 1
    err = capsys.readouterr().err
    assert "1 of 1 FLAC files of test-clean cannot be used" in err
    assert "LibriSpeech/test-clean/601/6010/601-6010-0000.flac: cannot be decoded as FLAC" in err

    # The subsets decoded before stay decoded; with the archive repaired the rerun finishes.
    sample_data.write_raw_dir(tmp_path / "fresh", SMALL)
    shutil.copy(tmp_path / "fresh" / "test-clean.tar.gz", raw)
    capsys.readouterr()
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    assert "train-clean-100: decoded by an earlier run, kept" in capsys.readouterr().out

    (raw / "dev-clean.tar.gz").unlink()
    assert _prepare(raw, tmp_path / "data", "--subset") == 1
    err = capsys.readouterr().err
    assert "neither dev-clean.tar.gz nor an unpacked LibriSpeech/dev-clean/" in err and "openslr.org/12" in err
    assert not (tmp_path / "data" / "librispeech" / "manifest.json").exists()  # removed before any work


@needs_speech
def test_an_interrupted_decoding_resumes_where_it_stopped(tmp_path, capsys):
    raw = tmp_path / "raw"
    sample_data.write_raw_dir(raw, SMALL)
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    dataset_dir = tmp_path / "data" / "librispeech"
    subset_dir = dataset_dir / "train-clean-100"
    # As if killed mid-subset: no finished record, one audio file not yet written, one half-written.
    (dataset_dir / ".prepare" / "train-clean-100.json").unlink()
    (subset_dir / "101-1010-0003_audio.npy").unlink()
    (subset_dir / "101-1010-0004_audio.npy.partial").write_bytes(b"\x93NUMPY")
    (dataset_dir / "manifest.json").unlink()
    kept = subset_dir / "101-1010-0000_audio.npy"
    stamp = kept.stat().st_mtime_ns
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    assert kept.stat().st_mtime_ns == stamp and (subset_dir / "101-1010-0003_audio.npy").is_file()
    assert not list(subset_dir.glob("*.partial"))
    assert check_manifest(dataset_dir, "prepare", REFERENCE_COUNTS).ready

    # Different raw data for a finished subset: its old files go, the tokenizer is retrained.
    sample_data.write_raw_dir(raw, {**SMALL, "train-clean-100": 5}, seed=3)
    capsys.readouterr()
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    assert "training the SentencePiece tokenizer" in capsys.readouterr().out
    assert len(list(subset_dir.iterdir())) == 2 * 5


def test_a_damaged_prepared_dir_is_named(prepared, tmp_path):
    dataset_dir, _, _ = prepared
    copy = tmp_path / "librispeech"
    shutil.copytree(dataset_dir, copy)
    status = check_manifest(tmp_path / "absent", prepare.preparation_command(str(tmp_path)), REFERENCE_COUNTS)
    assert status.missing and f"python -m workloads.librispeech.prepare --data-dir {tmp_path}" in status.reason
    with open(copy / "dev-other.csv", "r+b") as handle:
        handle.truncate(10)
    status = check_manifest(copy, "prepare", REFERENCE_COUNTS)
    assert not status.ready and "dev-other.csv has 10 bytes" in status.reason
    (copy / "manifest.json").unlink()
    assert "manifest.json is missing, so preparation never finished" in check_manifest(copy, "prepare", REFERENCE_COUNTS).reason
    # A file the csv lists but the folder lacks, or one cut short, is named when read.
    (copy / "test-clean" / "601-6010-0000_targets.npy").unlink()
    audio = copy / "test-clean" / "601-6010-0001_audio.npy"
    audio.write_bytes(audio.read_bytes()[:100])
    dataset = input_pipeline.LibriSpeechDataset(copy, "test")
    with pytest.raises(DataProblem, match="601-6010-0000_targets.npy is missing"):
        dataset[0]
    with pytest.raises(DataProblem, match="601-6010-0001_audio.npy is damaged"):
        dataset[1]
    shutil.rmtree(copy / "dev-clean")
    (copy / "dev-clean.csv").unlink()
    with pytest.raises(DataProblem, match="dev-clean.csv is missing, so the LibriSpeech data was never prepared"):
        input_pipeline.LibriSpeechDataset(copy, "validation")


def test_missing_speech_packages_give_the_install_command(monkeypatch):
    assert sample_data.INSTALL_HINT.startswith("sudo apt-get install pocketsphinx-testdata asterisk-core-sounds-en-wav")
    monkeypatch.setattr(sample_data, "ASTERISK_DIR", sample_data.ASTERISK_DIR / "absent")
    assert not sample_data.speech_available()
    sample_data.asterisk_prompts.cache_clear()
    try:
        with pytest.raises(sample_data.MissingSpeechError, match="apt-get install pocketsphinx-testdata"):
            sample_data.asterisk_prompts()
    finally:
        sample_data.asterisk_prompts.cache_clear()


def test_transcripts_are_written_as_librispeech_writes_them():
    cases = {
        "Please press 1 to mute, 2 to lock.": "PLEASE PRESS ONE TO MUTE TWO TO LOCK",
        "It's 5 o'clock": "IT'S FIVE O'CLOCK",
        "at [@]": "AT",
        "Call-Forward on No Answer.": "CALL FORWARD ON NO ANSWER",
        "Press * or #, 42 & more": "PRESS STAR OR POUND FORTY TWO AND MORE",
        "[ascending tones]": None,  # no speech
        "Press 162 now": None,  # a number this spelling does not cover
    }
    assert {text: sample_data.normalise_transcript(text) for text in cases} == cases


# --- the tokenizer ------------------------------------------------------------------------------------


def test_tokenizer_follows_the_reference_recipe(prepared, tmp_path):
    dataset_dir, written, _ = prepared
    spm = tokenizer.load_tokenizer(dataset_dir / "spm_model.vocab")
    # The sample is too small for 1,024 pieces; under --subset the size is an upper bound.
    assert 27 < spm.vocab_size < tokenizer.VOCAB_SIZE
    for subset in SUBSETS:
        for text in written[subset].values():
            ids = spm.encode(text)
            assert ids.dtype == np.int32 and ids[-1] == tokenizer.EOS_ID and tokenizer.BOS_ID not in ids
            assert tokenizer.UNK_ID not in ids and spm.decode(ids) == text
    # Training text: whole lines while the count, newlines included, stays within the cap.
    assert tokenizer.training_lines(["AB", "CDE", "F"], max_chars=7) == ["AB", "CDE"]
    assert tokenizer.training_lines(["AB", "CDE", "F"], max_chars=6) == ["AB"]
    # A hard limit is exact (as for the release's 1,024); a soft one gives what the text supports.
    lines = [p.text for p in sample_data.asterisk_prompts()]
    exact = tokenizer.train(lines, tmp_path / "exact.model", vocab_size=300)
    assert tokenizer.load_tokenizer(exact).vocab_size == 300
    with pytest.raises(ValueError, match="could not train a 5000-piece vocabulary"):
        tokenizer.train(lines, tmp_path / "big.model", vocab_size=5000)
    soft = tokenizer.train(lines, tmp_path / "soft.model", vocab_size=5000, soft_limit=True)
    assert 300 < tokenizer.load_tokenizer(soft).vocab_size < 5000
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        tokenizer.load_tokenizer(dataset_dir / "dev-clean.csv")


@needs_speech
def test_vocab_size_option_for_small_samples(tmp_path):
    sample_data.write_raw_dir(tmp_path / "raw", SMALL)
    assert _prepare(tmp_path / "raw", tmp_path / "data", "--subset", "--vocab-size", "40", "--audio-dtype", "int16") == 0
    dataset_dir = tmp_path / "data" / "librispeech"
    assert tokenizer.load_tokenizer(dataset_dir / "spm_model.vocab").vocab_size == 40
    summary = json.loads((dataset_dir / "librispeech.json").read_text())
    assert summary["tokenizer"]["vocab_size"] == 40 and summary["audio_dtype"] == "int16"
    assert np.load(dataset_dir / "dev-clean" / "401-4010-0000_audio.npy").dtype == np.int16
    batch = next(input_pipeline.build_input_iterator(dataset_dir, "train", [0, 0], 2, _world()))
    assert batch["inputs"][0].dtype == torch.float32 and batch["inputs"][0].abs().max() > 1000  # int16 samples, not rescaled


# --- batches ----------------------------------------------------------------------------------------------


def _items_by_targets(dataset):
    """Upstream's padded items, looked up by their padded target row (the sample's transcripts are distinct)."""
    items = [dataset.padded_item(i) for i in range(len(dataset))]
    by_targets = {item[1][0].tobytes(): i for i, item in enumerate(items)}
    assert len(by_targets) == len(items)
    return items, by_targets


def _rows(batches, by_targets):
    """Dataset rows of the batches' rows; None for a padding row (no target ids)."""
    return [by_targets.get(row.numpy().tobytes()) if row.any() else None for batch in batches for row in batch["targets"][0]]


def test_train_batches_keys_dtypes_shapes_and_paddings(prepared):
    dataset_dir, _, _ = prepared
    dataset = input_pipeline.LibriSpeechDataset(dataset_dir, "train")
    assert len(dataset) == 20 and dataset.ids[0] == "train-clean-100/101-1010-0000" and dataset.ids[-1] == "train-other-500/301-3010-0003"
    items, by_targets = _items_by_targets(dataset)
    stream = input_pipeline.build_input_iterator(dataset_dir, "train", [3, 0], 4, _world())
    epochs = [[next(stream) for _ in range(5)] for _ in range(2)]  # 20 utterances: 5 batches an epoch
    batch = epochs[0][0]
    assert set(batch) == {"inputs", "targets"}  # upstream's keys; no weights in training
    (audio, audio_paddings), (targets, target_paddings) = batch["inputs"], batch["targets"]
    assert [t.shape for t in (audio, audio_paddings, targets, target_paddings)] == [(4, 320_000), (4, 320_000), (4, 256), (4, 256)]
    assert all(t.dtype == torch.float32 for t in (audio, audio_paddings, targets, target_paddings))
    for row in range(4):
        # Each row is upstream's padded item: samples then zeros, paddings 0 then 1, targets then 0.
        (ref_audio, ref_audio_paddings), (ref_targets, ref_target_paddings) = items[by_targets[targets[row].numpy().tobytes()]]
        pairs = ((audio, ref_audio), (audio_paddings, ref_audio_paddings), (targets, ref_targets), (target_paddings, ref_target_paddings))
        for got, expected in pairs:
            np.testing.assert_array_equal(got[row].numpy(), expected)
        length = int((audio_paddings[row] == 0).sum())
        assert audio_paddings[row, length:].eq(1).all() and audio[row, length:].eq(0).all() and audio[row, :length].ne(0).any()
        tokens = int((target_paddings[row] == 0).sum())
        assert targets[row, tokens - 1] == tokenizer.EOS_ID and targets[row, tokens:].eq(0).all()
    # Every epoch holds each utterance once, in DistributedSampler's seeded order, reshuffled by set_epoch.
    orders = [_rows(epoch, by_targets) for epoch in epochs]
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=3)
    assert orders[0] == list(sampler) and sorted(orders[1]) == list(range(20)) and orders[0] != orders[1]


def test_eval_batches_are_padded_with_zero_weight_rows(prepared):
    dataset_dir, written, _ = prepared
    dataset = input_pipeline.LibriSpeechDataset(dataset_dir, "validation")
    assert [i.split("/")[0] for i in dataset.ids] == ["dev-clean"] * 4 + ["dev-other"] * 4
    items, by_targets = _items_by_targets(dataset)
    stream = input_pipeline.build_input_iterator(dataset_dir, "validation", [0, 0], 3, _world())
    batches = [next(stream) for _ in range(math.ceil(8 / 3))]
    assert all(set(b) == {"inputs", "targets", "weights"} and b["inputs"][0].shape == (3, 320_000) for b in batches)
    weights = torch.cat([b["weights"] for b in batches])
    assert weights.dtype == torch.float32 and weights.tolist() == [1.0] * 8 + [0.0]
    assert _rows(batches, by_targets)[:8] == list(range(8))  # csv order, dev-clean then dev-other
    last = batches[-1]
    # The padding row is an empty utterance: no samples, no target ids, all padding.
    assert last["inputs"][0][2].eq(0).all() and last["inputs"][1][2].eq(1).all()
    assert last["targets"][0][2].eq(0).all() and last["targets"][1][2].eq(1).all()
    assert _texts(dataset_dir, "validation", batches[0]["targets"])[1] == written["dev-clean"]["401-4010-0001"]
    assert _rows([next(stream)], by_targets) == [0, 1, 2]  # a new pass starts over
    once = list(input_pipeline.build_input_iterator(dataset_dir, "test", [0, 0], 3, _world(), repeat=False))
    assert len(once) == 2 and torch.cat([b["weights"] for b in once]).tolist() == [1.0] * 4 + [0.0] * 2


def test_ddp_ranks_read_their_own_rows(prepared):
    dataset_dir, _, _ = prepared
    validation = input_pipeline.LibriSpeechDataset(dataset_dir, "validation")
    _, by_targets = _items_by_targets(validation)
    seen = []
    for rank in range(3):
        stream = input_pipeline.build_input_iterator(dataset_dir, "validation", [0, 0], 6, _world(rank, 3))
        batches = [next(stream) for _ in range(2)]  # ceil(8 / 6) = 2 per rank, even for the rank with 2 rows
        assert all(b["inputs"][0].shape == (2, 320_000) for b in batches)
        weights = torch.cat([b["weights"] for b in batches])
        rows = [r for r, w in zip(_rows(batches, by_targets), weights.tolist()) if w > 0]
        assert rows == list(range(rank, 8, 3))  # upstream's DistributedEvalSampler rows
        seen += rows
    assert sorted(seen) == list(range(8))
    train = input_pipeline.LibriSpeechDataset(dataset_dir, "train")
    _, train_targets = _items_by_targets(train)
    for rank in range(2):
        batch = next(input_pipeline.build_input_iterator(dataset_dir, "train", [5, 0], 4, _world(rank, 2)))
        assert batch["inputs"][0].shape == (2, 320_000)
        sampler = torch.utils.data.DistributedSampler(train, num_replicas=2, rank=rank, shuffle=True, seed=5)
        assert _rows([batch], train_targets) == list(sampler)[:2]
    with pytest.raises(ValueError, match="does not divide evenly across 3 devices"):
        input_pipeline.build_input_iterator(dataset_dir, "train", [5, 0], 4, _world(0, 3))


def test_eval_train_follows_the_upstream_rule(prepared):
    dataset_dir, _, _ = prepared
    # Pinned: range(263,840) shuffled by random.Random(7), the first 5 of the 5,376 rows.
    full = input_pipeline.eval_train_indices([7, 9], 263_840, input_pipeline.NUM_EVAL_TRAIN_EXAMPLES)
    assert len(full) == 5_376 == math.ceil(5_348 / 256) * 256 and full[:5] == [54736, 128277, 164542, 43946, 40823]
    train = input_pipeline.LibriSpeechDataset(dataset_dir, "train")
    _, by_targets = _items_by_targets(train)
    expected = list(range(20))
    random.Random(5).shuffle(expected)
    stream = input_pipeline.build_input_iterator(dataset_dir, "eval_train", [5, 1], 8, _world())
    batches = [next(stream) for _ in range(3)]  # a subset holds fewer rows than 5,376: all 20, shuffled
    assert _rows(batches, by_targets)[:20] == expected and torch.cat([b["weights"] for b in batches]).sum() == 20
    stream = input_pipeline.build_input_iterator(dataset_dir, "eval_train", [5, 1], 4, _world(), num_eval_train_examples=6)
    assert _rows([next(stream), next(stream)], by_targets)[:6] == expected[:6]


# --- an upstream-prepared data dir ---------------------------------------------------------------------


def _upstream_copy(dataset_dir, target):
    """The layout upstream's datasets/librispeech_preprocess.py leaves: csvs from pandas, npy folders,
    the tokenizer; no manifest, no summary."""
    pandas = pytest.importorskip("pandas")
    target.mkdir()
    for subset in SUBSETS:
        shutil.copytree(dataset_dir / subset, target / subset)
        pandas.DataFrame(input_pipeline.read_ids(dataset_dir, subset), columns=["id"]).to_csv(target / f"{subset}.csv")
    shutil.copy(dataset_dir / "spm_model.vocab", target / "spm_model.vocab")
    return target


def test_an_upstream_prepared_dir_is_taken_as_it_is(prepared, tmp_path, capsys):
    dataset_dir, _, _ = prepared
    upstream = _upstream_copy(dataset_dir, tmp_path / "upstream")
    for subset in SUBSETS:  # pandas writes exactly the csvs the preparation writes
        assert (upstream / f"{subset}.csv").read_text() == (dataset_dir / f"{subset}.csv").read_text()
    # Elsewhere: linked into DATA_DIR/librispeech, with the summary and the manifest added.
    assert prepare.main(["--data-dir", str(tmp_path / "data"), "--from-upstream", str(upstream), "--subset"]) == 0
    adopted = tmp_path / "data" / "librispeech"
    assert (adopted / "dev-clean").is_symlink() and check_manifest(adopted, "prepare", REFERENCE_COUNTS).ready
    assert json.loads((adopted / "manifest.json").read_text())["counts"] == {"train": 20, "validation": 8, "test": 4}
    batch = next(input_pipeline.build_input_iterator(adopted, "test", [0, 0], 4, _world()))
    reference = next(input_pipeline.build_input_iterator(dataset_dir, "test", [0, 0], 4, _world()))
    for got, expected in zip((*batch["inputs"], *batch["targets"]), (*reference["inputs"], *reference["targets"])):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # In place (the default UPSTREAM_DIR is DATA_DIR/librispeech), with the tokenizer kept elsewhere.
    in_place = tmp_path / "data2" / "librispeech"
    shutil.copytree(upstream, in_place)
    os.replace(in_place / "spm_model.vocab", tmp_path / "spm_model.vocab")
    arguments = ["--data-dir", str(tmp_path / "data2"), "--from-upstream", "--subset", "--tokenizer", str(tmp_path / "spm_model.vocab")]
    assert prepare.main(arguments) == 0
    assert (in_place / "spm_model.vocab").is_file() and not (in_place / "dev-clean").is_symlink()
    # The release's counts are required without --subset; missing files are named.
    assert prepare.main(["--data-dir", str(tmp_path / "data2"), "--from-upstream"]) == 1
    assert "train: 20 utterances kept, the reference has 263,840" in capsys.readouterr().err
    (upstream / "dev-other" / "501-5010-0002_audio.npy").unlink()
    assert prepare.main(["--data-dir", str(tmp_path / "data3"), "--from-upstream", str(upstream), "--subset"]) == 1
    assert "dev-other: 1 listed files are missing, e.g. dev-other/501-5010-0002_audio.npy" in capsys.readouterr().err


def test_the_smoke_data_writer(tmp_path):
    if not sample_data.speech_available():
        pytest.skip(f"needs Debian's speech test data: {sample_data.INSTALL_HINT}")
    dataset_dir = sample_data.write_prepared_data_dir(tmp_path, counts=SMALL)
    assert dataset_dir == tmp_path / "librispeech"
    assert check_manifest(dataset_dir, "prepare", REFERENCE_COUNTS).ready
    assert subset_counts(dataset_dir) == {"train": 8, "validation": 2, "test": 1}
