"""finewebedu_lm data: GPT-2's BPE offline, real English text in FineWeb-Edu's parquet layout -> the prepared token streams.

The text is Debian's licence texts (/usr/share/common-licenses, workloads/finewebedu_lm/sample_data.py);
expected values are computed here from the parquet files and an encoding built in the test.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet")
tiktoken = pytest.importorskip("tiktoken")

from workloads.data_manifest import MANIFEST_NAME, check_manifest  # noqa: E402
from workloads.finewebedu_lm import prepare, sample_data  # noqa: E402
from workloads.finewebedu_lm import tokenizer as gpt2  # noqa: E402
from workloads.finewebedu_lm.input_pipeline import DATASET_NAME, DOCUMENT_FILES, TOKEN_FILES  # noqa: E402

EOS = 50256
ROWS_PER_UNIT = 4  # with row groups of 3 rows: two or three work units per shard

needs_ranks = pytest.mark.skipif(gpt2.ranks_path() is None, reason=f"needs GPT-2's ranks at {gpt2.installed_ranks_path()}; "
                                 "run bash scripts/setup_env.sh")
pytestmark = needs_ranks


@pytest.fixture(scope="module")
def reference_encoding():
    """GPT-2 built here from the ranks file and tiktoken's own gpt2 pattern, independent of tokenizer.py."""
    import tiktoken.load
    from tiktoken_ext.openai_public import r50k_pat_str

    ranks = tiktoken.load.load_tiktoken_bpe(str(gpt2.ranks_path()))
    return tiktoken.Encoding(name="gpt2-test", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": EOS})


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """The 14 licence texts over two shards, in row groups of 3."""
    root = tmp_path_factory.mktemp("fineweb_raw")
    sample_data.write_raw_dir(root, shards=2, row_group_rows=3)
    return root


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
    """The sample prepared in work units of 4 rows, the streams assembled 1,000 tokens at a time (other runs
    compared with it use one block and the default units)."""
    data = tmp_path_factory.mktemp("fineweb_data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prepare, "GATHER_BLOCK_TOKENS", 1000)
        prepare.prepare(raw, data, subset=True, workers=1, rows_per_unit=ROWS_PER_UNIT)
    return data / DATASET_NAME


def _shard_texts(raw):
    """Every document's text in shard (file-name) order, read with pandas."""
    import pandas as pd

    shards = sorted((raw / "sample" / "10BT").glob("*.parquet"), key=lambda path: path.name)
    return [text for shard in shards for text in pd.read_parquet(shard, columns=["text"])["text"]]


def _expected_stream(texts, encoding):
    pieces = [encoding.encode_ordinary(text) + [EOS] for text in texts if text]
    return np.array([token for piece in pieces for token in piece], dtype=np.uint16)


def _run(*arguments) -> int:
    return prepare.main([str(argument) for argument in arguments])


# --- the tokenizer -------------------------------------------------------------------------------


def test_gpt2_encoding_is_built_offline_from_the_installed_ranks(reference_encoding):
    encoding = gpt2.load_encoding()
    assert gpt2.ranks_digest(gpt2.ranks_path()) == gpt2.RANKS_SHA256  # openai-whisper's gpt2.tiktoken
    assert (encoding.n_vocab, encoding.eot_token) == (50_257, EOS)
    assert encoding.encode_ordinary("Hello world") == [15496, 995]
    text = sample_data.license_texts()[0][1]
    assert encoding.encode_ordinary(text) == reference_encoding.encode_ordinary(text)
    assert encoding.decode(encoding.encode_ordinary(text)) == text


def test_eos_ends_every_non_empty_document_and_empty_ones_give_nothing():
    tokens, lengths = gpt2.encode_documents(["Hello world", "", "Hello", None])
    assert tokens.dtype == np.uint16 and lengths.tolist() == [3, 0, 2, 0]
    assert tokens.tolist() == [15496, 995, EOS, 15496, EOS]
    assert gpt2.encode_batch(["Hello world", "", "Hello"], num_threads=2) == [[15496, 995, EOS], [], [15496, EOS]]
    # As the Hugging Face tokenizer does, the EOS string inside a text is the EOS id, not BPE pieces.
    assert gpt2.encode_document("a<|endoftext|>b").tolist() == [64, EOS, 65, EOS]


def test_a_missing_ranks_file_says_where_it_was_looked_for_and_how_to_get_it(raw, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(gpt2.RANKS_ENV, str(tmp_path / "nowhere.tiktoken"))
    with pytest.raises(gpt2.MissingTokenizerError, match="nowhere.tiktoken") as raised:
        gpt2.load_encoding()
    assert "bash scripts/setup_env.sh" in str(raised.value)
    assert "pip download --no-deps --no-binary :all: openai-whisper" in str(raised.value)
    assert "whisper/assets/gpt2.tiktoken" in str(raised.value)

    # Nothing named, nothing installed, no network: the error names the installed path.
    monkeypatch.delenv(gpt2.RANKS_ENV)
    monkeypatch.setattr(gpt2.sys, "prefix", str(tmp_path / "venv"))

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    gpt2._encoding_from.cache_clear()
    with pytest.raises(gpt2.MissingTokenizerError) as raised:
        gpt2.load_encoding()
    message = str(raised.value)
    assert str(tmp_path / "venv" / "share" / "pytest-algoperf" / "gpt2.tiktoken") in message and "no network" in message
    assert "bash scripts/setup_env.sh" in message and "whisper/assets/gpt2.tiktoken" in message

    # The preparation reports it before any work.
    assert _run("--data-dir", tmp_path / "data", "--raw-dir", raw, "--tokenizer", tmp_path / "x.tiktoken") == 1
    assert f"the GPT-2 BPE ranks file {tmp_path / 'x.tiktoken'} (given) does not exist" in capsys.readouterr().err
    assert not (tmp_path / "data" / DATASET_NAME).exists()


def test_a_file_that_is_not_gpt2s_ranks_is_refused(tmp_path):
    (tmp_path / "small.tiktoken").write_text("IQ== 0\nIg== 1\n")
    with pytest.raises(gpt2.MissingTokenizerError, match="holds 2 BPE ranks, GPT-2 has 50,256"):
        gpt2.load_encoding(tmp_path / "small.tiktoken")


# --- the sample shards ---------------------------------------------------------------------------


def test_sample_shards_have_fineweb_edus_layout_and_columns(raw, reference_encoding):
    shards = sorted(path.name for path in (raw / "sample" / "10BT").iterdir())
    assert shards == ["000_00000.parquet", "001_00000.parquet"]
    table = pq.read_table(raw / "sample" / "10BT" / shards[0])
    assert table.column_names == list(prepare.RAW_COLUMNS)
    types = {field.name: str(field.type) for field in table.schema}
    assert types == {"text": "string", "id": "string", "dump": "string", "url": "string", "file_path": "string",
                     "language": "string", "language_score": "double", "token_count": "int64", "score": "double",
                     "int_score": "int64"}
    assert pq.ParquetFile(raw / "sample" / "10BT" / shards[0]).metadata.num_row_groups == 3  # 7 rows in groups of 3
    rows = table.to_pylist()
    assert all(row["language"] == "en" and row["int_score"] == 3 and row["id"].startswith("<urn:uuid:") for row in rows)
    assert [row["token_count"] for row in rows] == [len(reference_encoding.encode_ordinary(row["text"])) for row in rows]
    names = [name for name, _ in sample_data.license_texts()]
    assert len({text for _, text in sample_data.license_texts()}) == len(names)
    assert "GPL" not in names and "GPL-3" in names  # the GPL -> GPL-3 symlink is skipped
    assert len(_shard_texts(raw)) == len(names)


# --- preparation from the raw shards --------------------------------------------------------------


def test_documents_are_split_90_10_after_a_seed_0_permutation(raw, prepared):
    count = len(_shard_texts(raw))
    permutation = np.random.default_rng(0).permutation(count)
    cut = int(np.floor(0.9 * count))
    assert np.load(prepared / DOCUMENT_FILES["train"]).tolist() == permutation[:cut].tolist()
    assert np.load(prepared / DOCUMENT_FILES["validation"]).tolist() == permutation[cut:].tolist()
    summary = json.loads((prepared / "finewebedu_lm.json").read_text())
    assert summary["split"]["inferred"] and [shard["documents"] for shard in summary["shards"]] == [7, 7]


def test_streams_are_the_documents_encodings_in_permuted_order(raw, prepared, reference_encoding):
    texts = _shard_texts(raw)
    permutation = np.random.default_rng(0).permutation(len(texts))
    cut = len(texts) * 9 // 10
    for split, documents in (("train", permutation[:cut]), ("validation", permutation[cut:])):
        stream = np.load(prepared / TOKEN_FILES[split], mmap_mode="r")
        assert isinstance(stream, np.memmap) and stream.dtype == np.uint16 and stream.ndim == 1
        np.testing.assert_array_equal(stream, _expected_stream([texts[i] for i in documents], reference_encoding))
        assert int((stream == EOS).sum()) == len(documents)


def test_manifest_counts_windows_tokens_and_documents(raw, prepared):
    manifest = json.loads((prepared / MANIFEST_NAME).read_text())
    texts = _shard_texts(raw)
    tokens = {split: len(np.load(prepared / name, mmap_mode="r")) for split, name in TOKEN_FILES.items()}
    assert manifest["subset"] is True
    assert manifest["counts"] == {
        "train": tokens["train"] // 1025, "validation": tokens["validation"] // 1025,
        "train_tokens": tokens["train"], "validation_tokens": tokens["validation"],
        "train_documents": len(texts) * 9 // 10, "validation_documents": len(texts) - len(texts) * 9 // 10,
    }
    assert set(manifest["files"]) == {*TOKEN_FILES.values(), *DOCUMENT_FILES.values(), "finewebedu_lm.json"}
    counts = {"train": manifest["counts"]["train"], "validation": manifest["counts"]["validation"]}
    assert check_manifest(prepared, "prepare it", counts).ready
    assert not (prepared / prepare.STATE_DIR).exists()  # the work folder goes once the manifest is there


def test_the_manifest_is_written_last_and_removed_while_a_rerun_works(raw, tmp_path, monkeypatch):
    finalised = []
    real_replace = os.replace

    def recording_replace(source, target):
        finalised.append(os.path.basename(target))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)
    prepare.prepare(raw, tmp_path, subset=True, workers=1, rows_per_unit=ROWS_PER_UNIT)
    assert finalised[-1] == MANIFEST_NAME and finalised.count(MANIFEST_NAME) == 1
    assert set(TOKEN_FILES.values()) <= set(finalised[:-1])

    def interrupted(*job):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "tokenize_unit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(raw, tmp_path, subset=True, workers=1, rows_per_unit=ROWS_PER_UNIT)
    status = check_manifest(tmp_path / DATASET_NAME, "prepare it")
    assert not status.ready and "manifest.json is missing" in status.reason


def test_a_rerun_reuses_the_work_units_an_earlier_run_finished(raw, prepared, tmp_path, monkeypatch):
    real_tokenize = prepare.tokenize_unit
    done = []

    def failing_on_the_third(*job):
        if len(done) == 2:
            raise RuntimeError("interrupted")
        done.append(job[3])
        return real_tokenize(*job)

    monkeypatch.setattr(prepare, "tokenize_unit", failing_on_the_third)
    with pytest.raises(RuntimeError, match="interrupted"):
        prepare.prepare(raw, tmp_path, subset=True, workers=1, rows_per_unit=ROWS_PER_UNIT)
    work = tmp_path / DATASET_NAME / prepare.STATE_DIR
    assert sorted(path.name for path in work.glob("*.json")) == sorted(f"{key}.json" for key in done)

    rerun = []
    monkeypatch.setattr(prepare, "tokenize_unit", lambda *job: rerun.append(job[3]) or real_tokenize(*job))
    prepare.prepare(raw, tmp_path, subset=True, workers=1, rows_per_unit=ROWS_PER_UNIT, keep_work=True)
    units = prepare.plan_units(prepare.find_shards(raw), ROWS_PER_UNIT)
    assert len(units) == 4 and sorted(rerun) == sorted(unit["key"] for unit in units if unit["key"] not in done)
    for name in (*TOKEN_FILES.values(), *DOCUMENT_FILES.values()):
        assert (tmp_path / DATASET_NAME / name).read_bytes() == (prepared / name).read_bytes()

    # A changed shard invalidates its own units only.
    shard = raw / "sample" / "10BT" / "001_00000.parquet"
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1_000_000_000))
    rerun.clear()
    prepare.prepare(raw, tmp_path, subset=True, workers=1, rows_per_unit=ROWS_PER_UNIT)
    assert sorted(rerun) == sorted(unit["key"] for unit in units if unit["key"].startswith("001_00000."))


def test_worker_processes_give_the_same_streams(raw, prepared, tmp_path):
    prepare.prepare(raw, tmp_path, subset=True, workers=2, rows_per_unit=ROWS_PER_UNIT)
    for name in TOKEN_FILES.values():
        assert (tmp_path / DATASET_NAME / name).read_bytes() == (prepared / name).read_bytes()


def test_the_folder_of_shards_itself_is_accepted_and_shards_are_read_in_name_order(raw, prepared, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for shard in (raw / "sample" / "10BT").iterdir():
        (shards / shard.name).symlink_to(shard)
    assert _run("--data-dir", tmp_path / "data", "--raw-dir", shards, "--subset", "--workers", 1) == 0
    for name in TOKEN_FILES.values():
        assert (tmp_path / "data" / DATASET_NAME / name).read_bytes() == (prepared / name).read_bytes()


def test_missing_or_wrong_raw_files_are_named(raw, tmp_path, capsys):
    assert _run("--data-dir", tmp_path / "data", "--raw-dir", tmp_path / "empty") == 1
    error = capsys.readouterr().err
    assert "sample/10BT" in error and sample_data.SHARD_FOLDER.as_posix() in error
    assert 'huggingface-cli download HuggingFaceFW/fineweb-edu --repo-type dataset --include "sample/10BT/*"' in error

    folder = tmp_path / "no_text" / "sample" / "10BT"
    folder.mkdir(parents=True)
    import pyarrow as pa

    pq.write_table(pa.table({"content": ["Hello world"]}), folder / "000_00000.parquet")
    assert _run("--data-dir", tmp_path / "data", "--raw-dir", tmp_path / "no_text", "--subset") == 1
    error = capsys.readouterr().err
    assert "000_00000.parquet has no `text` column (its columns: content)" in error

    (folder / "000_00000.parquet").write_bytes(b"not parquet at all")
    assert _run("--data-dir", tmp_path / "data", "--raw-dir", tmp_path / "no_text", "--subset") == 1
    assert "000_00000.parquet is not a readable parquet file" in capsys.readouterr().err


def test_a_split_shorter_than_one_sequence_and_a_full_set_too_small_are_refused(raw, tmp_path, capsys):
    # 20 short documents: 18 train and 2 validation, far fewer than 1,025 tokens each side.
    sample_data.write_raw_dir(tmp_path / "tiny", rows=[{"text": f"Document number {n}."} for n in range(20)])
    assert _run("--data-dir", tmp_path / "data", "--raw-dir", tmp_path / "tiny", "--subset", "--workers", 1) == 1
    error = capsys.readouterr().err
    assert re.search(r"train has \d+ tokens, fewer than one sequence of 1025; validation has \d+ tokens, fewer", error)
    assert not (tmp_path / "data" / DATASET_NAME / MANIFEST_NAME).exists()

    assert _run("--data-dir", tmp_path / "data", "--raw-dir", raw, "--workers", 1) == 1  # no --subset
    error = capsys.readouterr().err
    assert re.search(r"train has \d+ sequences of 1025 tokens, the evals read 10,240; validation has \d+ sequences of 1025 tokens, "
                     r"the evals read 100,096", error) and "--subset" in error


def test_empty_documents_count_in_the_permutation_but_add_no_tokens(tmp_path):
    texts = sample_data.license_texts()
    rows = [{"text": text} for _, text in texts[:6]] + [{"text": ""}] + [{"text": text} for _, text in texts[6:]]
    sample_data.write_raw_dir(tmp_path / "raw", rows=rows)
    prepare.prepare(tmp_path / "raw", tmp_path, subset=True)
    permutation = np.random.default_rng(0).permutation(len(rows))
    cut = len(rows) * 9 // 10
    streams = {split: np.load(tmp_path / DATASET_NAME / name) for split, name in TOKEN_FILES.items()}
    assert int((streams["train"] == EOS).sum()) + int((streams["validation"] == EOS).sum()) == len(rows) - 1
    assert np.load(tmp_path / DATASET_NAME / DOCUMENT_FILES["validation"]).tolist() == permutation[cut:].tolist()


# --- an upstream-prepared data dir ----------------------------------------------------------------


def _save_upstream(folder, splits):
    datasets = pytest.importorskip("datasets")
    for name, rows in splits.items():
        datasets.Dataset.from_dict({"input_ids": rows}).save_to_disk(str(folder / name))


def test_from_upstream_flattens_input_ids_in_row_order(tmp_path, capsys):
    rng = np.random.default_rng(1)
    train = [rng.integers(0, 50_257, size).tolist() for size in (2049, 2049, 700, 0, 1500)]  # pre-cut rows and documents
    val = [rng.integers(0, 50_257, size).tolist() for size in (1025, 1030)]
    train[0][:2] = [0, 50_256]
    _save_upstream(tmp_path / "upstream", {"train": train, "val": val})
    assert _run("--data-dir", tmp_path / "data", "--from-upstream", tmp_path / "upstream", "--subset") == 0
    dataset_dir = tmp_path / "data" / DATASET_NAME
    for split, rows in (("train", train), ("validation", val)):
        stream = np.load(dataset_dir / TOKEN_FILES[split], mmap_mode="r")
        assert stream.dtype == np.uint16 and stream.tolist() == [token for row in rows for token in row]
    manifest = json.loads((dataset_dir / MANIFEST_NAME).read_text())
    train_tokens = sum(map(len, train))
    assert manifest["subset"] and manifest["counts"] == {"train": train_tokens // 1025, "validation": 2, "train_tokens": train_tokens,
                                                         "validation_tokens": 2055, "train_rows": 5, "validation_rows": 2}
    assert check_manifest(dataset_dir, "prepare it", {"train": 6, "validation": 2}).ready


def test_from_upstream_names_missing_folders_foreign_ids_and_a_set_too_small(tmp_path, capsys):
    _save_upstream(tmp_path / "half", {"train": [[1] * 2000]})
    assert _run("--data-dir", tmp_path / "data", "--from-upstream", tmp_path / "half", "--subset") == 1
    assert f"{tmp_path / 'half' / 'val'} missing" in capsys.readouterr().err

    _save_upstream(tmp_path / "foreign", {"train": [[1] * 2000], "val": [[5, 50_257] * 600]})
    assert _run("--data-dir", tmp_path / "data", "--from-upstream", tmp_path / "foreign", "--subset") == 1
    assert "input_ids holds 5..50257, outside GPT-2's 0..50256" in capsys.readouterr().err

    _save_upstream(tmp_path / "small", {"train": [[1] * 2100], "val": [[2] * 2100]})
    assert _run("--data-dir", tmp_path / "data", "--from-upstream", tmp_path / "small") == 1
    error = capsys.readouterr().err
    assert "validation has 2 sequences of 1025 tokens, the evals read 100,096" in error
    assert not (tmp_path / "data" / DATASET_NAME / MANIFEST_NAME).exists()


# --- the one-call sample data dir -----------------------------------------------------------------


def test_the_prepared_sample_dir_is_made_once_and_then_reused(tmp_path, monkeypatch):
    dataset_dir = sample_data.write_prepared_data_dir(tmp_path)
    manifest = json.loads((dataset_dir / MANIFEST_NAME).read_text())
    assert dataset_dir == tmp_path / DATASET_NAME and manifest["subset"]
    assert manifest["counts"]["train"] >= 40 and manifest["counts"]["validation"] >= 1
    monkeypatch.setattr(prepare, "main", lambda argv: pytest.fail("a finished sample dir is prepared again"))
    assert sample_data.write_prepared_data_dir(tmp_path) == dataset_dir
