"""Mixup of the ViT workload: hand-worked mixing with the row before, upstream's Beta(0.2, 0.2) draw, soft targets in the loss."""

from __future__ import annotations

import pytest
import torch

from workloads.imagenet.mixup import MIXUP_ALPHA, draw_mixup_weight, mix, mixup


def _batch():
    # three 1x1x2 "images" and their classes among 3
    inputs = torch.tensor([[0.0, 1.0], [10.0, 11.0], [20.0, 21.0]]).view(3, 1, 1, 2)
    return {"inputs": inputs, "targets": torch.tensor([2, 0, 1])}


def test_mixes_each_row_with_the_one_before():
    mixed = mix(_batch(), torch.tensor(0.25), num_classes=3)
    # row i = 0.25 row i + 0.75 row i - 1, row 0 pairing with the last row (torch.roll by 1)
    expected_inputs = torch.tensor([[15.0, 16.0], [2.5, 3.5], [12.5, 13.5]]).view(3, 1, 1, 2)
    torch.testing.assert_close(mixed["inputs"], expected_inputs)
    # one-hot [e2, e0, e1] mixed the same way
    expected_targets = torch.tensor([[0.0, 0.75, 0.25], [0.25, 0.0, 0.75], [0.75, 0.25, 0.0]])
    torch.testing.assert_close(mixed["targets"], expected_targets)
    assert mixed["targets"].dtype == torch.float32


def test_thousand_class_soft_targets_and_other_keys_pass_through():
    batch = {"inputs": torch.randn(4, 3, 8, 8), "targets": torch.tensor([0, 999, 5, 5]), "tag": torch.arange(4)}
    mixed = mixup(batch, generator=torch.Generator().manual_seed(0))
    assert mixed["targets"].shape == (4, 1000)
    torch.testing.assert_close(mixed["targets"].sum(dim=1), torch.ones(4))
    assert mixed["tag"] is batch["tag"] and mixed["inputs"].shape == (4, 3, 8, 8)
    assert batch["targets"].shape == (4,)  # the input batch is left alone
    with pytest.raises(ValueError, match="integer class ids"):
        mix({"inputs": torch.zeros(2, 1), "targets": torch.zeros(2, 3)}, torch.tensor(0.5))


def test_weight_is_upstreams_beta_draw():
    assert MIXUP_ALPHA == 0.2
    # upstream: torch.distributions.Beta(0.2, 0.2).sample() from torch's global RNG
    torch.manual_seed(5)
    drawn = [draw_mixup_weight() for _ in range(20)]
    torch.manual_seed(5)
    assert drawn == [torch.distributions.Beta(0.2, 0.2).sample() for _ in range(20)]
    # an explicit generator draws the same values from its own stream
    generator = torch.Generator().manual_seed(5)
    assert [draw_mixup_weight(generator=generator) for _ in range(20)] == drawn


def test_weight_distribution():
    generator = torch.Generator().manual_seed(0)
    weights = torch.stack([draw_mixup_weight(generator=generator) for _ in range(4000)]).double()
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.1786 for a = 0.2; most mass near 0 and 1
    assert weights.mean().item() == pytest.approx(0.5, abs=0.02)
    assert weights.var().item() == pytest.approx(1 / (4 * 1.4), abs=0.01)
    assert ((weights < 0.1) | (weights > 0.9)).double().mean().item() > 0.5
    assert weights.min() >= 0 and weights.max() <= 1


def test_resnet_loss_takes_the_soft_targets():
    # The reference's ViT workload inherits the ResNet loss: F.cross_entropy with class probabilities.
    from workloads.imagenet_resnet.workload import ImagenetResNetWorkload

    loss_fn = ImagenetResNetWorkload().loss_fn
    logits = torch.zeros(2, 3)
    logits[0, 1] = 2.0
    targets = mix(_batch(), torch.tensor(0.25), num_classes=3)["targets"][:2]
    log_z = torch.log(torch.tensor(2.0).exp() + 2)  # logsumexp of row 0
    # row 0: -(0.75 (2 - log_z) + 0.25 (0 - log_z)); row 1 (uniform logits): log 3
    expected = torch.stack([log_z - 1.5, torch.log(torch.tensor(3.0))])
    out = loss_fn(targets, logits)
    torch.testing.assert_close(out["per_example"], expected)
    # label smoothing 0.3 mixes the targets with uniform: 0.7 t + 0.1
    smoothed = loss_fn(targets, logits, label_smoothing=0.3)["per_example"]
    soft = 0.7 * targets + 0.1
    torch.testing.assert_close(smoothed, -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1))
    assert out["n_valid_examples"].item() == 2
