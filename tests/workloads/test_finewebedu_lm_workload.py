"""finewebedu_lm as a workload: the A100 version's numbers, the non-strict target, loss_fn, model_fn,
init_model_fn's quirk, and evaluation on prepared real text against a hand computation.

The model-level checks (names, count, init, RoPE, QK-norm, GLU) are in test_finewebedu_lm_model.py;
here a narrow configuration of the same model keeps the evals fast (the full model's forward pass on
one 1,024-token sequence is about 0.5 TFLOP).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pytest_algoperf.api import spec
from pytest_algoperf.api.param_utils import ParameterType
from pytest_algoperf.results import workload_properties
from workloads.finewebedu_lm import input_pipeline
from workloads.finewebedu_lm.model import ModelConfig
from workloads.finewebedu_lm.workload import LmWorkload

NARROW = ModelConfig(model_dim=64, num_heads=2, num_layers=2, expanded_model_dim=128, multiple_of=32)


def narrow_workload() -> LmWorkload:
    workload = LmWorkload(benchmark_version="a100")
    workload.model_config = NARROW
    return workload


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from workloads.smoke_data import prepare_smoke_data

    data_dir = tmp_path_factory.mktemp("data")
    prepare_smoke_data("finewebedu_lm", data_dir)  # Debian's licence texts through the real prepare command
    return data_dir


def test_the_a100_numbers_and_the_reference_sizes():
    workload = LmWorkload(benchmark_version="a100")
    assert (workload.target_metric_name, workload.validation_target_value, workload.test_target_value) == ("ppl", 22.2995, None)
    assert (workload.max_allowed_runtime_sec, workload.eval_period_time_sec, workload.step_hint) == (31967, 2571, 72000)
    assert not workload.higher_is_better and workload.loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_eval_train_examples,
            workload.num_test_examples, workload.eval_batch_size) == (8_749_870, 100_000, 10_000, 0, 256)
    with pytest.raises(ValueError, match="no numbers for benchmark version 'v0.6'.*a100"):
        LmWorkload(benchmark_version="v0.6")


def test_the_target_is_reached_at_or_below_it_and_the_test_target_always():
    workload = LmWorkload(benchmark_version="a100")
    assert workload.has_reached_validation_target({"validation/ppl": 22.2995})  # non-strict, as upstream
    assert not workload.has_reached_validation_target({"validation/ppl": 22.2996})
    assert workload.has_reached_test_target({"test/ppl": 1.0})


def test_meta_data_logs_upstreams_fields():
    properties = workload_properties(LmWorkload(benchmark_version="a100"))
    assert {key: properties[f"workload.{key}"] for key in ("activation", "glu", "pre_ln", "attention_temp", "warmup_factor")} == {
        "activation": "silu", "glu": True, "pre_ln": True, "attention_temp": 1.0, "warmup_factor": 0.1}
    assert properties["workload.num_validation_examples"] == 100_000


def test_loss_fn_masks_tokens_and_smooths_labels_over_all_classes():
    workload = LmWorkload(benchmark_version="a100")
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]])  # (B=1, L=2, V=3)
    labels = torch.tensor([[0, 2]])
    log_p = torch.log_softmax(logits, dim=-1)
    plain = workload.loss_fn(labels, logits)
    assert plain["per_example"].shape == (1, 2) and plain["n_valid_examples"].dtype == torch.float32
    assert plain["n_valid_examples"].item() == 2.0
    assert plain["summed"].item() == pytest.approx(-(log_p[0, 0, 0] + log_p[0, 1, 2]).item(), rel=1e-6)
    masked = workload.loss_fn(labels, logits, torch.tensor([[1.0, 0.0]]))
    assert (masked["summed"].item(), masked["n_valid_examples"].item()) == (pytest.approx(-log_p[0, 0, 0].item(), rel=1e-6), 1.0)
    # Label smoothing 0.3: target (1 - 0.3) one-hot + 0.3 / V on every class (V = 3).
    smoothed = workload.loss_fn(labels, logits, label_smoothing=0.3)["per_example"][0, 0].item()
    assert smoothed == pytest.approx(-(0.7 * log_p[0, 0, 0] + 0.1 * log_p[0, 0].sum()).item(), rel=1e-6)


def test_model_fn_takes_ids_or_one_hot_and_switches_modes():
    workload = narrow_workload()
    model, state = workload.init_model_fn([0, 0])
    assert state is None
    ids = torch.randint(0, NARROW.vocab_size, (2, 8))
    logits, _ = workload.model_fn(model, {"inputs": ids.int()}, None, spec.ForwardPassMode.TRAIN, None, True)
    assert logits.shape == (2, 8, NARROW.vocab_size) and logits.requires_grad and model.training
    one_hot = F.one_hot(ids, NARROW.vocab_size).float()
    eval_logits, _ = workload.model_fn(model, {"inputs": one_hot}, None, spec.ForwardPassMode.EVAL, None, False)
    assert not model.training and not eval_logits.requires_grad
    assert torch.allclose(eval_logits, logits.detach(), atol=1e-5)


def test_bf16_precision_autocasts_model_fn():
    workload = narrow_workload()
    model, _ = workload.init_model_fn([0, 0])
    batch = {"inputs": torch.randint(0, NARROW.vocab_size, (1, 8), dtype=torch.int32)}
    reference, _ = workload.model_fn(model, batch, None, spec.ForwardPassMode.EVAL, None, False)
    workload.use_precision("bf16")
    autocast, _ = workload.model_fn(model, batch, None, spec.ForwardPassMode.EVAL, None, False)
    assert reference.dtype == torch.float32 and autocast.dtype == torch.bfloat16
    assert next(model.parameters()).dtype == torch.float32  # parameters stay float32
    assert torch.allclose(autocast.float(), reference, atol=0.1) and not torch.equal(autocast.float(), reference)


def test_init_is_seeded_and_a_second_init_redraws_only_the_weights():
    first, _ = narrow_workload().init_model_fn([7, 0])
    again, _ = narrow_workload().init_model_fn([7, 0])
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    workload = narrow_workload()
    model, _ = workload.init_model_fn([7, 0])
    with torch.no_grad():
        model.layers[0].attn.attn_scale.fill_(5.0)
        model.out_norm.weight.fill_(2.0)
    before = model.layers[0].mlp.fc1.weight.clone()
    same, _ = workload.init_model_fn([7, 0])  # upstream's quirk: same object, weights redrawn, scales kept
    assert same is model and not torch.equal(model.layers[0].mlp.fc1.weight, before)
    assert model.layers[0].attn.attn_scale.item() == 5.0 and torch.all(model.out_norm.weight == 2.0)


def test_parameter_types_for_the_rules():
    workload = narrow_workload()
    workload.init_model_fn([0, 0])
    types = workload.model_params_types
    assert types["layers.0.attn.w_qkv.weight"] == ParameterType.ATTENTION_QKV
    assert types["layers.1.attn.w_out.weight"] == ParameterType.ATTENTION_OUT
    assert types["embed_tokens.weight"] == ParameterType.EMBEDDING
    assert types["layers.0.mlp_norm.weight"] == ParameterType.LAYER_NORM_SCALE
    assert not any(workload.is_output_params(name) for name in types)  # the tied head is never listed, as upstream


def test_training_batches_carry_upstreams_keys_and_dtypes(prepared):
    workload = narrow_workload()
    workload.use_prepared_data(str(prepared))
    batch = next(workload._build_input_queue([3, 4], "train", str(prepared), 1))
    assert batch["inputs"].dtype == torch.int32 and batch["targets"].dtype == torch.int64 and batch["weights"] is None
    assert batch["inputs"].shape == batch["targets"].shape == (1, 1024)
    assert torch.equal(batch["inputs"][:, 1:].long(), batch["targets"][:, :-1])  # next-token shift


def test_eval_is_the_token_mean_loss_and_its_exponential(prepared):
    workload = narrow_workload()
    workload.use_prepared_data(str(prepared))
    model, _ = workload.init_model_fn([0, 0])
    result = workload.eval_model(2, model, None, [1, 2], str(prepared), None, 0)
    windows = input_pipeline.open_prepared(prepared / "finewebedu_lm")
    expected = {}
    for split, prefix, count in (("eval_train", "train", workload.num_eval_train_examples),
                                 ("validation", "validation", workload.num_validation_examples)):
        rows = torch.from_numpy(np.asarray(windows.windows(split)[:count], dtype=np.int64))
        with torch.no_grad():
            logits = model(rows[:, :-1])
        token_losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1), reduction="none")
        expected[prefix] = token_losses.double().mean().item()
        # ppl is exp of the mean token loss, not the mean of per-sequence perplexities.
        assert result[f"{prefix}/ppl"] == pytest.approx(math.exp(result[f"{prefix}/loss"]), rel=1e-12)
    assert result["train/loss"] == pytest.approx(expected["train"], rel=1e-5)
    assert result["validation/loss"] == pytest.approx(expected["validation"], rel=1e-5)
    assert result["validation/num_examples"] == workload.num_validation_examples >= 1
    assert (result["test/loss"], result["test/ppl"], result["test/num_examples"]) == (0.0, 1.0, 0)
