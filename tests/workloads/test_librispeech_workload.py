"""The LibriSpeech workloads: numbers per benchmark version, shared data, the CTC loss, model_fn's
dropout and batch-norm rules, and the WER / CTC evaluation on real prepared speech."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pytest_algoperf.api import random_utils as prng  # noqa: E402
from pytest_algoperf.api.spec import ForwardPassMode, LossType  # noqa: E402
from workloads.librispeech import input_pipeline, metrics, sample_data  # noqa: E402
from workloads.librispeech.tokenizer import load_tokenizer  # noqa: E402
from workloads.registry import get_workload, list_workloads, workload_entry  # noqa: E402

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "scoring" / "versions"
TARGETS = {  # (validation, test) WER, reference §5
    "librispeech_conformer": (0.085884, 0.052981),
    "librispeech_conformer_attention_temperature": (0.109977, 0.068065),
    "librispeech_conformer_layernorm": (0.09731, 0.05996),
    "librispeech_conformer_gelu": (0.094114, 0.056629),
    "librispeech_deepspeech": (0.119936, 0.074143),
    "librispeech_deepspeech_tanh": (0.150883, 0.098613),
    "librispeech_deepspeech_no_resnet": (0.131564, 0.079297),
    "librispeech_deepspeech_norm_and_spec_aug": (0.14342, 0.090976),
}
BUDGETS = {  # (max_allowed_runtime_sec, step_hint)
    ("librispeech_conformer", "v0.6"): (58_015, 76_000),
    ("librispeech_conformer", "v0.5"): (61_068, 80_000),
    ("librispeech_deepspeech", "v0.6"): (44_405, 38_400),
    ("librispeech_deepspeech", "v0.5"): (55_506, 48_000),
}
NUM_PARAMS = {"librispeech_conformer_layernorm": 32_317_696, "librispeech_deepspeech_norm_and_spec_aug": 18_392_576}


def _base(name: str) -> str:
    return "librispeech_conformer" if "conformer" in name else "librispeech_deepspeech"


def test_every_variant_is_registered():
    assert list_workloads("librispeech*") == sorted(TARGETS)


@pytest.mark.parametrize("version", ["v0.5", "v0.6"])
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_targets_and_budgets_are_the_version_files(name, version):
    workload = get_workload(name, version)
    workloads = json.loads((VERSIONS_DIR / f"{version}.json").read_text())["workloads"]
    entry = {**workloads[_base(name)], **workloads[name]}
    assert workload.target_metric_name == entry["metric"] == "wer" and not workload.higher_is_better
    assert (workload.validation_target_value, workload.test_target_value) == TARGETS[name]
    assert (workload.max_allowed_runtime_sec, workload.step_hint) == BUDGETS[_base(name), version]
    assert workload.eval_period_time_sec == 1440
    # Upstream's check is strict: a WER equal to the target has not reached it.
    assert not workload.has_reached_validation_target({"validation/wer": TARGETS[name][0]})


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_constants_and_the_shared_data(name):
    workload = get_workload(name)
    entry = workload_entry(name)
    assert (entry.base, entry.family, entry.development) == (_base(name), "librispeech", False)
    assert workload.loss_type == LossType.CTC_LOSS
    assert workload.dataset_name == "librispeech"
    assert workload.preparation_command("/d") == "python -m workloads.librispeech.prepare --data-dir /d --raw-dir RAW"
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (263_840, 5_348, 2_472)
    eval_batch = 128 if name.endswith("norm_and_spec_aug") else 256
    assert workload.eval_batch_size == eval_batch
    assert workload.num_eval_train_examples == math.ceil(5_348 / eval_batch) * eval_batch  # 5,376 for both sizes
    assert workload.is_output_params("lin.weight") and workload.is_output_params("lin.bias")
    assert not workload.is_output_params("subsample.lin.weight")
    assert workload.requires_sync_before_eval is False  # one process: nothing to average
    assert workload.data_status("/nowhere").missing


@pytest.mark.parametrize("name", ["librispeech_conformer_layernorm", "librispeech_deepspeech_norm_and_spec_aug"])
def test_init_builds_the_variants_model(name):
    workload = get_workload(name)
    model, state = workload.init_model_fn(prng.PRNGKey(0))
    assert state is None and sum(p.numel() for p in model.parameters()) == NUM_PARAMS[name]
    if "conformer" in name:  # upstream's settings against out-of-memory errors
        assert not torch.backends.cudnn.benchmark and torch.backends.cuda.math_sdp_enabled()
        assert not torch.backends.cuda.flash_sdp_enabled()


# --- loss -------------------------------------------------------------------------------------------


def test_loss_is_ctc_per_utterance_masked_with_the_references_n_valid():
    workload = get_workload("librispeech_deepspeech")
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 5)
    logit_paddings = torch.tensor([[0.0] * 6, [0.0] * 4 + [1.0] * 2, [0.0] * 6])
    targets = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target_paddings = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])  # row 2: no target
    out = workload.loss_fn((targets, target_paddings), (logits, logit_paddings))
    log_probs = torch.log_softmax(logits, -1).permute(1, 0, 2)
    expected = torch.nn.functional.ctc_loss(
        log_probs, targets.long(), torch.tensor([6, 4, 6]), torch.tensor([2, 1, 0]), blank=0, reduction="none"
    )
    torch.testing.assert_close(out["per_example"], expected)
    assert out["summed"].item() == pytest.approx(float(expected.sum()), rel=1e-6)
    assert out["n_valid_examples"].item() == 2  # utterances with a target
    masked = workload.loss_fn((targets, target_paddings), (logits, logit_paddings), torch.tensor([1.0, 0.0, 1.0]))
    assert masked["per_example"][1].item() == 0.0 and masked["n_valid_examples"].item() == 1
    nothing = workload.loss_fn((targets, target_paddings), (logits, logit_paddings), torch.zeros(3))
    assert nothing["n_valid_examples"].item() == 1  # max(n, 1), as upstream


# --- model_fn ---------------------------------------------------------------------------------------


class RecordingModel(torch.nn.Module):
    """Stands in for a speech model: records the rates model_fn passes; logits favour the blank."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.bias = torch.nn.Parameter(torch.zeros(1024))

    def forward(self, inputs, input_paddings, **rates):
        self.calls.append((rates, self.training))
        frames = inputs.shape[1] // 1000
        logits = torch.zeros(len(inputs), frames, 1024) + self.bias
        logits[..., 0] += 5.0
        return logits, input_paddings[:, ::1000][:, :frames]


@pytest.mark.parametrize("base", ["librispeech_conformer", "librispeech_deepspeech"])
def test_dropout_is_per_call_in_v06_and_fixed_at_init_in_v05(base):
    batch = {"inputs": (torch.zeros(1, 4000), torch.zeros(1, 4000))}
    workload, model = get_workload(base), RecordingModel()
    (logits, paddings), state = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True, dropout_rate=0.3)
    workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False)
    assert state is None and logits.shape == (1, 4, 1024) and paddings.shape == (1, 4)
    assert model.calls == [({"dropout_rate": 0.3}, True), ({"dropout_rate": 0.1}, False)]

    v05, model = get_workload(base, "v0.5"), RecordingModel()
    v05.fix_dropout_at_init(0.2, None)
    v05.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
    expected = {"dropout_rate": 0.2, "input_dropout_rate": 0.1}  # aux (input) dropout 0.1 when unset
    if base == "librispeech_conformer":
        expected["conv_residual_dropout_rate"] = 0.2
    assert model.calls == [(expected, True)]


# --- evaluation on real prepared speech ------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    if not sample_data.speech_available():
        pytest.skip(f"the sample speech comes from Debian packages: {sample_data.INSTALL_HINT}")
    root = tmp_path_factory.mktemp("librispeech")
    counts = {"train-clean-100": 2, "train-clean-360": 1, "train-other-500": 1, "dev-clean": 2, "dev-other": 1, "test-clean": 1}
    sample_data.write_prepared_data_dir(root, counts, seconds=6.0)
    return str(root)


def test_eval_counts_words_and_utterances_as_upstream_and_skips_padding_rows(data_dir):
    """A model that always predicts the blank: every hypothesis is empty, so the word errors are the
    references' words (in upstream's tf.Tensor form), and the CTC loss is the mean over utterances."""
    workload = get_workload("librispeech_deepspeech")
    workload.use_prepared_data(data_dir)
    assert workload.num_validation_examples == 3
    model = RecordingModel()
    metrics_out = workload._eval_model_on_split("validation", 3, 2, model, None, prng.PRNGKey(0), data_dir)  # 1 padding row

    dataset = input_pipeline.LibriSpeechDataset(workload.dataset_dir(data_dir), "validation")
    tokenizer = load_tokenizer(input_pipeline.tokenizer_path(workload.dataset_dir(data_dir)))
    errors = words = 0
    losses = []
    for index in range(len(dataset)):
        audio, targets = dataset[index]
        reference = tokenizer.decode(targets)
        row_errors, row_words = metrics.upstream_word_counts("", reference)
        errors, words = errors + row_errors, words + row_words
        assert row_words == len(reference.split()) + 2  # the tf.Tensor wrapper's two extra words
        batch = input_pipeline.collate([(audio, targets)])
        (logits, paddings), _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False)
        losses.append(workload.loss_fn(batch["targets"], (logits, paddings))["summed"].item())
    assert metrics_out["wer"] == pytest.approx(errors / words)
    assert metrics_out["ctc_loss"] == pytest.approx(sum(losses) / 3, rel=1e-5)
