"""The LibriSpeech workloads as plugin items: real speech (asterisk's prompts, pocketsphinx's LibriVox
clips) written as the official OpenSLR archives, prepared by the real command, trained by the NAdamW
baseline and by an upstream-API submission for two steps, with an eval after each, on CPU."""

from __future__ import annotations

import pytest
from plugin_items import NADAMW, eval_rows, run_items, small_nadamw, upstream_submission

from workloads.librispeech import sample_data

# Every utterance is 320,000 samples of audio: one per training step, two per eval batch.
BATCH_SIZE, EVAL_BATCH_SIZE = 1, 2
UPSTREAM_CHECKS = [
    "assert loss_type == spec.LossType.CTC_LOSS",
    'audio, audio_paddings = batch["inputs"]',
    "assert audio.shape[1] == 320000 and audio_paddings.shape == audio.shape",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    if not sample_data.speech_available():
        pytest.skip(f"the sample speech comes from Debian packages: {sample_data.INSTALL_HINT}")
    from workloads.smoke_data import prepare_smoke_data

    data_dir = tmp_path_factory.mktemp("data")
    prepare_smoke_data("librispeech", data_dir)  # the real preparation command on the sample archives
    return data_dir


def test_missing_data_skips_the_item_with_the_preparation_command(pytester, tmp_path):
    result = run_items(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", "librispeech_deepspeech-study0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*python -m workloads.librispeech.prepare --data-dir*"])


def test_the_nadamw_baseline_trains_and_evaluates_the_conformer(pytester, data_dir, tmp_path):
    submission = small_nadamw(pytester.path / "small_nadamw", BATCH_SIZE, EVAL_BATCH_SIZE)
    result = run_items(pytester, submission, data_dir, tmp_path, "librispeech_conformer-study0")  # the base workload only
    result.assert_outcomes(passed=1)
    rows = eval_rows(tmp_path, "librispeech_conformer")
    assert [row["global_step"] for row in rows] == ["1", "2"]  # an eval after the first and the last step
    final = rows[-1]
    assert [float(final[f"{split}/num_examples"]) for split in ("validation", "test")] == [2, 1]
    for split in ("train", "validation", "test"):
        assert float(final[f"{split}/wer"]) >= 0.0 and float(final[f"{split}/ctc_loss"]) > 0.0


def test_an_upstream_api_submission_runs_a_deepspeech_variant(pytester, data_dir, tmp_path):
    submission = upstream_submission(pytester.path / "upstream_adam", BATCH_SIZE, EVAL_BATCH_SIZE, UPSTREAM_CHECKS)
    result = run_items(pytester, submission, data_dir, tmp_path, "librispeech_deepspeech_tanh")
    result.assert_outcomes(passed=1)
    assert {"train/wer", "validation/wer", "test/ctc_loss"} <= set(eval_rows(tmp_path, "librispeech_deepspeech_tanh")[-1])
