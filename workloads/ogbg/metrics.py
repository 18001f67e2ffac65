"""OGBG's loss and eval metrics (reference §4.8): masked sigmoid cross-entropy, accuracy, mean average precision.

Every molecule has 128 binary tasks, most of them unmeasured; a label counts
only where its weight (mask) is true. Accuracy and loss are averaged over the
valid labels of the split; mean average precision is scikit-learn's
`average_precision_score` per task, averaged over the tasks that have at least
one valid positive and one valid negative label, as OGB's evaluator does.
(Upstream counts the zeros that stand in for unmeasured and padding labels as
negatives in that test; on the full splits every task passes either way, on a
tiny subset OGB's rule keeps tasks without real negatives out of the mean.)
"""

from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
import torch


def sigmoid_cross_entropy(labels: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-label loss (G, T), zero where the mask is false.

    Labels are smoothed towards label_smoothing / T (T = 128 tasks), upstream's
    formula; the loss is tf.nn.sigmoid_cross_entropy_with_logits' stable form
    max(x, 0) - x z + log(1 + exp(-|x|)).
    """
    if not logits.shape == labels.shape == mask.shape:
        raise ValueError(f"Shape mismatch between logits ({logits.shape}), targets ({labels.shape}) and weights ({mask.shape}).")
    if logits.dim() != 2:
        raise ValueError(f"Rank of logits ({logits.shape}) must be 2.")
    valid = mask.to(torch.bool)
    labels = torch.where(valid, labels, -1.0)  # masked labels may be anything; keep them out of the arithmetic
    num_tasks = labels.shape[-1]
    smoothed = (1.0 - label_smoothing) * labels + label_smoothing / num_tasks
    losses = torch.relu(logits) - logits * smoothed + torch.log1p(torch.exp(-logits.abs()))
    return torch.where(valid, losses, 0.0)


def mean_average_precision(probabilities: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> float:
    """Mean over tasks of scikit-learn's average precision on each task's valid labels; NaN if no task qualifies."""
    from sklearn.metrics import average_precision_score

    precisions = []
    for task in range(labels.shape[1]):
        valid = mask[:, task].astype(bool)
        task_labels = labels[valid, task]
        if (task_labels == 1).any() and (task_labels == 0).any():
            precisions.append(average_precision_score(task_labels, probabilities[valid, task]))
    return float(np.mean(precisions)) if precisions else math.nan


class EvalTotals:
    """Running sums of one eval pass; sums stay on the device until `compute`."""

    def __init__(self) -> None:
        self._loss = torch.zeros((), dtype=torch.float64)
        self._correct = torch.zeros((), dtype=torch.float64)
        self._count = torch.zeros((), dtype=torch.float64)
        self._outputs: List[tuple] = []

    def add(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, per_label_loss: torch.Tensor) -> None:
        valid = mask.to(torch.bool)
        device = logits.device
        self._loss = self._loss.to(device) + per_label_loss.masked_fill(~valid, 0.0).sum(dtype=torch.float64)
        self._correct = self._correct.to(device) + ((logits > 0) == (labels > 0.5)).logical_and(valid).sum(dtype=torch.float64)
        self._count = self._count.to(device) + valid.sum(dtype=torch.float64)
        self._outputs.append((logits.detach().float(), labels.detach(), valid))

    def compute(self) -> Dict[str, float]:
        """The split's metrics; under DDP over the molecules of every rank (each evaluated its own shard)."""
        from workloads import parallel

        sums = parallel.all_reduce_sum(torch.stack([self._loss, self._correct, self._count]))
        if self._outputs:
            logits, labels, mask = (torch.cat(parts).cpu().numpy() for parts in zip(*self._outputs))
        else:
            logits = labels = mask = np.zeros((0, 0))
        gathered = parallel.all_gather_objects((logits, labels, mask))
        if len(gathered) > 1:
            logits, labels, mask = (np.concatenate([part for part in parts if part.size] or [parts[0]]) for parts in zip(*gathered))
        from scipy.special import expit  # a sigmoid that does not overflow

        loss, correct, count = sums.tolist()
        return {
            "accuracy": correct / count if count else math.nan,
            "loss": loss / count if count else math.nan,
            "mean_average_precision": mean_average_precision(expit(logits), labels, mask) if labels.size else math.nan,
        }
