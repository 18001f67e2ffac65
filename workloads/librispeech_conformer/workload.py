"""AlgoPerf's LibriSpeech Conformer workload and its variants (reference §4.6, §5).

The shared LibriSpeech data, loss and WER evaluation (workloads/librispeech/workload.py)
with the Conformer (model.py). As upstream: `init_model_fn` seeds torch, turns off
cudnn.benchmark and runs attention with the math SDPA kernel only (upstream's fix for
out-of-memory errors), the model is not compiled, and under DDP the model's state is
averaged across ranks before every eval (its batch norm is not synchronised in training).
Dropout (v0.6): one rate for the input and every residual branch, 0.1 unless model_fn is
given one; a v0.5 run fixes dropout_rate (residuals) and aux_dropout_rate (input) at init,
with no conv-residual dropout.
"""

from __future__ import annotations

from typing import Optional

import torch

from pytest_algoperf.api import spec
from workloads import parallel
from workloads.librispeech.workload import LibriSpeechWorkload
from workloads.librispeech_conformer.model import (
    DROPOUT_RATE,
    V05_CONV_RESIDUAL_DROPOUT_RATE,
    VARIANT_MODEL_KWARGS,
    ConformerEncoderDecoder,
    conformer,
)


class LibriSpeechConformerWorkload(LibriSpeechWorkload):
    """Conformer CTC on LibriSpeech; targets, budget (58,015 s; v0.5 61,068 s) and step hint: scoring/versions/*.json."""

    name = "librispeech_conformer"

    @property
    def requires_sync_before_eval(self) -> bool:
        return parallel.current_world().use_ddp

    def build_model(self) -> ConformerEncoderDecoder:
        return conformer(use_specaug=self.use_specaug, **VARIANT_MODEL_KWARGS[self.name])

    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # chosen per model_fn call (v0.5 runs: fix_dropout_at_init)
        torch.random.manual_seed(int(rng[0]))
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.enable_flash_sdp(False)
        torch.backends.cuda.enable_mem_efficient_sdp(False)
        torch.backends.cuda.enable_math_sdp(True)
        return self._adopt_model(self.build_model()), None

    def _forward(self, model, inputs, input_paddings, dropout_rate: Optional[float]):
        if dropout_rate is not None or not self._dropout_fixed_at_init:
            return model(inputs, input_paddings, dropout_rate=self._dropout_rate_or_default(dropout_rate, DROPOUT_RATE))
        # v0.5: residual dropout from dropout_rate, input dropout from aux_dropout_rate (0.1 each when unset).
        residual = self._init_dropout_rate
        aux = self._init_aux_dropout_rate
        return model(
            inputs,
            input_paddings,
            dropout_rate=DROPOUT_RATE if residual is None else residual,
            input_dropout_rate=DROPOUT_RATE if aux is None else aux,
            conv_residual_dropout_rate=V05_CONV_RESIDUAL_DROPOUT_RATE if residual is None else residual,
        )


class LibriSpeechConformerAttentionTemperatureWorkload(LibriSpeechConformerWorkload):
    """Attention outputs scaled by 1.6."""

    name = "librispeech_conformer_attention_temperature"


class LibriSpeechConformerLayerNormWorkload(LibriSpeechConformerWorkload):
    """No LayerNorm at the end of each Conformer block."""

    name = "librispeech_conformer_layernorm"


class LibriSpeechConformerGeluWorkload(LibriSpeechConformerWorkload):
    """GELU in place of swish."""

    name = "librispeech_conformer_gelu"
