"""Orthogonalising a gradient matrix with a quintic Newton-Schulz iteration, as Muon does."""

import torch

# Coefficients of the quintic iteration from the Muon write-up (Jordan et al., 2024).
COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    a, b, c = COEFFICIENTS
    x = matrix / (matrix.norm() + eps)
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


def split_params_muon_adam(model: torch.nn.Module):
    """2-D hidden weights go to Muon; embeddings, biases, norms and everything else to AdamW."""
    muon, adam = [], []
    for name, param in model.named_parameters():
        (muon if param.ndim == 2 and "embed" not in name else adam).append(param)
    return muon, adam
