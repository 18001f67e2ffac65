"""WMT dropout under both APIs: v0.6 passes one rate to model_fn; v0.5 fixed two at init.

Upstream's v0.5 runner built the Transformer with `dropout_rate` (embeddings,
residual branches, feed-forward) and `aux_dropout_rate` as the dropout on the
attention probabilities of every attention (encoder and decoder self-attention,
cross-attention), each 0.1 when the hyperparameters gave none.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.spec import ForwardPassMode
from workloads.registry import get_workload
from workloads.wmt.model import Transformer, TransformerConfig

TINY = TransformerConfig(vocab_size=256, d_model=32, num_heads=4, d_hidden=64, num_layers=2, max_length=32)
# Two padded rows, so masks and padding are exercised too.
BATCH = {"inputs": torch.tensor([[5, 6, 7, 8, 2, 0], [9, 10, 11, 2, 0, 0]]),
         "targets": torch.tensor([[12, 13, 14, 2, 0], [15, 16, 2, 0, 0]])}
# Per encoder layer one self-attention; per decoder layer a self- and a cross-attention.
ATTENTION_CALLS = 3 * TINY.num_layers


def tiny_model():
    workload = get_workload("wmt")
    workload.model_config = TINY
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    return workload, model


def train_logits(workload, model, seed=1234, **kwargs):
    model.train()  # model_fn leaves train mode to the submission, as upstream's does
    torch.manual_seed(seed)
    with torch.no_grad():
        return workload.model_fn(model, BATCH, None, ForwardPassMode.TRAIN, None, True, **kwargs)[0]


def eval_logits(workload, model):
    return workload.model_fn(model, BATCH, None, ForwardPassMode.EVAL, None, False)[0]


@pytest.fixture
def rates(monkeypatch):
    """Records the dropout_p of every attention call and the p of every other dropout."""
    seen = {"attention": [], "other": []}
    attention, dropout = F.scaled_dot_product_attention, F.dropout

    def spy_attention(*args, **kwargs):
        seen["attention"].append(kwargs.get("dropout_p", args[4] if len(args) > 4 else 0.0))
        return attention(*args, **kwargs)

    def spy_dropout(x, p=0.5, training=True, inplace=False):
        seen["other"].append(p)
        return dropout(x, p, training, inplace)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy_attention)
    monkeypatch.setattr(torch.nn.functional, "dropout", spy_dropout)

    def take():
        taken = {key: sorted(set(values)) for key, values in seen.items()}
        counts = len(seen["attention"])
        for values in seen.values():
            values.clear()
        return taken, counts

    return take


# --- v0.6: one rate, unchanged outputs ---------------------------------------------------------


def test_v06_logits_are_the_ones_of_the_single_rate_model():
    # Recorded from the model before attention dropout got its own rate: eval logits, and
    # train-mode logits for a fixed torch seed with dropout_rate 0.3 passed to model_fn.
    workload, model = tiny_model()
    logits = eval_logits(workload, model)
    assert logits.sum().item() == pytest.approx(-156.5291290283203, rel=1e-4)
    assert logits.abs().sum().item() == pytest.approx(2086.51953125, rel=1e-5)
    torch.testing.assert_close(logits[0, :2, :4], torch.tensor(
        [[2.146173, 1.720464, -0.396562, -0.588623], [-0.093733, 1.568639, -1.185218, -0.686882]]), rtol=1e-4, atol=1e-5)
    logits = train_logits(workload, model, dropout_rate=0.3)
    assert logits.sum().item() == pytest.approx(-39.78765106201172, rel=1e-4)
    assert logits.abs().sum().item() == pytest.approx(2172.737548828125, rel=1e-5)
    torch.testing.assert_close(logits[1, :2, :4], torch.tensor(
        [[-0.286390, 0.383015, 0.985064, 1.072920], [-1.007525, 0.301238, 0.216395, 0.644270]]), rtol=1e-4, atol=1e-5)


def test_no_attention_rate_means_the_general_rate_and_adds_no_parameters():
    torch.manual_seed(0)
    model = Transformer(TINY).train()
    src, tgt = BATCH["inputs"], BATCH["targets"]
    with torch.no_grad():
        torch.manual_seed(7)
        implicit = model(src, tgt, dropout_rate=0.2)
        torch.manual_seed(7)
        explicit = model(src, tgt, dropout_rate=0.2, attention_dropout_rate=0.2)
    assert torch.equal(implicit, explicit)
    # Dropout is functional: only the Linear, LayerNorm and embedding parameters exist.
    assert not any(isinstance(module, torch.nn.Dropout) for module in model.modules())


def test_v06_model_fn_uses_its_dropout_rate_in_attention_too(rates):
    workload, model = tiny_model()
    train_logits(workload, model, dropout_rate=0.3)
    assert rates() == ({"attention": [0.3], "other": [0.3]}, ATTENTION_CALLS)
    train_logits(workload, model)  # neither a rate nor a v0.5 init: the 0.1 default everywhere, as before
    assert rates() == ({"attention": [0.1], "other": [0.1]}, ATTENTION_CALLS)


# --- v0.5: rates fixed at init, the aux rate in attention -------------------------------------


def test_v05_aux_rate_is_the_attention_dropout():
    workload, model = tiny_model()
    workload.fix_dropout_at_init(0.0, 0.0)
    without = train_logits(workload, model)
    torch.testing.assert_close(without, eval_logits(workload, model), rtol=1e-5, atol=1e-6)
    workload.fix_dropout_at_init(0.0, 0.5)
    with_attention_dropout = train_logits(workload, model)
    assert not torch.allclose(with_attention_dropout, without)
    # The difference comes from attention alone: the general rate is 0 in both runs.


@pytest.mark.parametrize("fixed, expected", [
    ((0.0, None), (0.1, 0.0)),  # no aux rate: upstream's v0.5 attention default 0.1
    ((0.25, 0.5), (0.5, 0.25)),
    ((None, 0.0), (0.0, 0.1)),  # no general rate: the 0.1 default, attention as given
    ((None, None), (0.1, 0.1)),
])
def test_v05_rates_reach_attention_and_the_other_dropouts(rates, fixed, expected):
    workload, model = tiny_model()
    workload.fix_dropout_at_init(*fixed)
    train_logits(workload, model)
    attention, other = expected
    assert rates() == ({"attention": [attention], "other": [other]}, ATTENTION_CALLS)
    eval_logits(workload, model)  # eval never drops, whatever was fixed
    assert rates()[0]["attention"] == [0.0]


def test_an_explicit_rate_overrides_the_one_fixed_at_init(rates):
    workload, model = tiny_model()
    workload.fix_dropout_at_init(0.0, None)
    train_logits(workload, model, dropout_rate=0.3)
    assert rates() == ({"attention": [0.3], "other": [0.3]}, ATTENTION_CALLS)
