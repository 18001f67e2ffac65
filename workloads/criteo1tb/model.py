"""DLRM-small and its residual variant, the reference's Criteo models (reference §4.2, §5).

Parameter names are upstream's (`embedding_chunk_{0..3}`, `bot_mlp.*`, `top_mlp.*`,
`embed_ln.*`), so AlgoPerf's name-based parameter types come out the same; note that
the embedding chunks carry no 'weight' in their names and are therefore typed WEIGHT,
as upstream. Modules are built and initialised in upstream's order, so random numbers
are drawn in the same sequence for a given torch seed.

Input: (B, 39) float32 = 13 dense features, then 26 hashed category ids stored as
float32. Output: (B, 1) click logits.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pytest_algoperf.api.pytorch_utils import CustomDropout, SequentialWithDropout

DROPOUT_RATE = 0.0  # the reference's default dropout for criteo1tb
NUM_EMBEDDING_CHUNKS = 4  # upstream splits the table into 4 parameters
LAYER_NORM_EPS = 1e-6


def _init_embedding_chunks(module: nn.Module, vocab_size: int, embed_dim: int, scale: float) -> None:
    """`embedding_chunk_{i}`: (vocab_size / 4, embed_dim) each, uniform [0, 1) times `scale`."""
    if vocab_size % NUM_EMBEDDING_CHUNKS:
        raise ValueError(f"vocab_size {vocab_size} does not split into {NUM_EMBEDDING_CHUNKS} chunks")
    for index in range(NUM_EMBEDDING_CHUNKS):
        chunk = torch.empty(vocab_size // NUM_EMBEDDING_CHUNKS, embed_dim).uniform_(0, 1).mul_(scale)
        module.register_parameter(f"embedding_chunk_{index}", nn.Parameter(chunk))


def _reference_embedding_scale(vocab_size: int, multiplier: Optional[float]) -> float:
    if multiplier is not None:
        return multiplier
    # 1 / sqrt(vocab) in float32, as upstream computes it from an int32 tensor.
    return float(1.0 / torch.sqrt(torch.tensor(vocab_size, dtype=torch.float32, device="cpu")))


def _lookup(module: nn.Module, sparse: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, 26) float ids -> (B, 26, embed_dim): int32 cast, modulo the vocabulary, a lookup in the chunked table.

    Upstream concatenates the 4 chunks into one table and looks ids up in it. Looking each id up in its
    own chunk gives the same rows (and the same gradients) without copying the 2 GB table every call.
    """
    ids = (sparse.to(torch.int32) % vocab_size).long()
    chunks = [getattr(module, f"embedding_chunk_{index}") for index in range(NUM_EMBEDDING_CHUNKS)]
    rows_per_chunk = chunks[0].shape[0]
    chunk_of_id, row_in_chunk = ids // rows_per_chunk, ids % rows_per_chunk
    embedded = chunks[0].new_zeros(*ids.shape, chunks[0].shape[1])
    for index, chunk in enumerate(chunks):
        in_chunk = chunk_of_id == index
        embedded = embedded.index_put((in_chunk,), F.embedding(row_in_chunk[in_chunk], chunk))
    return embedded


def _init_bottom_linear(layer: nn.Linear) -> None:
    # Glorot-uniform weights, N(0, sqrt(1/out)) biases.
    limit = math.sqrt(6.0 / (layer.in_features + layer.out_features))
    nn.init.uniform_(layer.weight, -limit, limit)
    nn.init.normal_(layer.bias, 0.0, math.sqrt(1.0 / layer.out_features))


def _init_top_linear(layer: nn.Linear) -> None:
    # Glorot-normal weights, N(0, sqrt(1/out)) biases.
    nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / (layer.in_features + layer.out_features)))
    nn.init.normal_(layer.bias, 0.0, math.sqrt(1.0 / layer.out_features))


class DotInteract(nn.Module):
    """Pairwise dot products of the bottom-MLP output and the 26 embeddings (upper triangle with diagonal)."""

    def __init__(self, num_sparse_features: int) -> None:
        super().__init__()
        rows, cols = torch.triu_indices(num_sparse_features + 1, num_sparse_features + 1)
        # Buffers (not in the state dict) so the indices follow the model to its device.
        self.register_buffer("triu_rows", rows, persistent=False)
        self.register_buffer("triu_cols", cols, persistent=False)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        # dense (B, D), sparse (B, 26, D) -> (B, 27, D) -> Gram (B, 27, 27) -> 378 products
        combined = torch.cat([dense.unsqueeze(1), sparse], dim=1)
        gram = torch.bmm(combined, combined.transpose(1, 2))
        return torch.cat([dense, gram[:, self.triu_rows, self.triu_cols]], dim=1)  # (B, D + 378)


class DlrmSmall(nn.Module):
    """Bottom MLP on the dense features, embeddings of the categories, dot interactions, top MLP."""

    def __init__(
        self,
        vocab_size: int,
        num_dense_features: int = 13,
        num_sparse_features: int = 26,
        mlp_bottom_dims: Sequence[int] = (512, 256, 128),
        mlp_top_dims: Sequence[int] = (1024, 1024, 512, 256, 1),
        embed_dim: int = 128,
        use_layer_norm: bool = False,
        embedding_init_multiplier: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.num_dense_features = num_dense_features
        self.num_sparse_features = num_sparse_features
        self.embed_dim = embed_dim
        _init_embedding_chunks(self, vocab_size, embed_dim, _reference_embedding_scale(vocab_size, embedding_init_multiplier))

        bottom: list = []
        fan_in = num_dense_features
        for width in mlp_bottom_dims:
            bottom += [nn.Linear(fan_in, width), nn.ReLU(inplace=True)]
            if use_layer_norm:
                bottom.append(nn.LayerNorm(width, eps=LAYER_NORM_EPS))
            fan_in = width
        self.bot_mlp = nn.Sequential(*bottom)
        for layer in self.bot_mlp.modules():
            if isinstance(layer, nn.Linear):
                _init_bottom_linear(layer)

        self.dot_interact = DotInteract(num_sparse_features)

        # Top input: the bottom output plus the upper triangle of a 27 x 27 Gram matrix (128 + 378 = 506).
        num_interactions = (num_sparse_features + 1) * (num_sparse_features + 2) // 2
        top: list = []
        fan_in = mlp_bottom_dims[-1] + num_interactions
        for index, width in enumerate(mlp_top_dims):
            top.append(nn.Linear(fan_in, width))
            if index < len(mlp_top_dims) - 1:
                top.append(nn.ReLU(inplace=True))
                if use_layer_norm:
                    top.append(nn.LayerNorm(width, eps=LAYER_NORM_EPS))
            if index == len(mlp_top_dims) - 2:
                top.append(CustomDropout())  # before the output layer; rate chosen per call
            fan_in = width
        self.top_mlp = SequentialWithDropout(*top)
        self.embed_ln = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS) if use_layer_norm else None
        for layer in self.top_mlp.modules():
            if isinstance(layer, nn.Linear):
                _init_top_linear(layer)

    def forward(self, x: torch.Tensor, dropout_rate: float = DROPOUT_RATE) -> torch.Tensor:
        dense, sparse = torch.split(x, [self.num_dense_features, self.num_sparse_features], dim=1)  # (B, 13), (B, 26)
        bottom = self.bot_mlp(dense)  # (B, 128)
        embedded = _lookup(self, sparse, self.vocab_size)  # (B, 26, 128)
        if self.embed_ln is not None:
            embedded = self.embed_ln(embedded)
        return self.top_mlp(self.dot_interact(bottom, embedded), dropout_rate)  # (B, 506) -> (B, 1)


class DenseBlock(nn.Module):
    """`module(x)`, plus `x` itself for a residual block; forwards a dropout rate when given one."""

    _supports_custom_dropout = True

    def __init__(self, module: nn.Module, residual: bool = False) -> None:
        super().__init__()
        self.module = module  # the name `module` is upstream's: it appears in every parameter name
        self.residual = residual

    def forward(self, x: torch.Tensor, dropout_rate: Optional[float] = None) -> torch.Tensor:
        out = self.module(x) if dropout_rate is None else self.module(x, dropout_rate)
        return out + x if self.residual else out


class DLRMResNet(nn.Module):
    """The criteo1tb_resnet model: residual MLPs on [bottom output, all 26 embeddings], no dot interaction."""

    def __init__(
        self,
        vocab_size: int,
        num_dense_features: int = 13,
        num_sparse_features: int = 26,
        mlp_bottom_dims: Sequence[int] = (256, 256, 256),
        mlp_top_dims: Sequence[int] = (256, 256, 256, 256, 1),
        embed_dim: int = 128,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.num_dense_features = num_dense_features
        self.num_sparse_features = num_sparse_features
        self.embed_dim = embed_dim
        # Upstream's residual model ignores the layer-norm and embedding-multiplier settings.
        _init_embedding_chunks(self, vocab_size, embed_dim, _reference_embedding_scale(vocab_size, None))

        blocks: list = []
        fan_in = num_dense_features
        for index, width in enumerate(mlp_bottom_dims):
            # Every bottom block after the first is residual (its input already has `width` features).
            blocks.append(DenseBlock(nn.Sequential(nn.Linear(fan_in, width), nn.ReLU(inplace=True)), residual=index > 0))
            fan_in = width
        self.bot_mlp = nn.Sequential(*blocks)
        for layer in self.bot_mlp.modules():
            if isinstance(layer, nn.Linear):
                _init_bottom_linear(layer)

        blocks = []
        fan_in = mlp_bottom_dims[-1] + num_sparse_features * embed_dim  # 256 + 26 * 128 = 3,584
        last = len(mlp_top_dims) - 1
        for index, width in enumerate(mlp_top_dims):
            layers: list = [nn.Linear(fan_in, width)]
            if index < last:
                layers.append(nn.ReLU(inplace=True))
            if index == last - 1:
                layers.append(CustomDropout())
            # The first block changes the width and the last is the output layer; the others are residual.
            blocks.append(DenseBlock(SequentialWithDropout(*layers), residual=0 < index < last))
            fan_in = width
        self.top_mlp = SequentialWithDropout(*blocks)
        for layer in self.top_mlp.modules():
            if isinstance(layer, nn.Linear):
                _init_top_linear(layer)

    def forward(self, x: torch.Tensor, dropout_rate: float = DROPOUT_RATE) -> torch.Tensor:
        dense, sparse = torch.split(x, [self.num_dense_features, self.num_sparse_features], dim=1)
        bottom = self.bot_mlp(dense)  # (B, 256)
        embedded = _lookup(self, sparse, self.vocab_size).reshape(x.shape[0], -1)  # (B, 26 * 128)
        return self.top_mlp(torch.cat([bottom, embedded], dim=1), dropout_rate)  # (B, 3584) -> (B, 1)
