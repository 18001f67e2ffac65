"""AlgoPerf's LibriSpeech DeepSpeech workload and its variants (reference §4.7, §5).

The shared LibriSpeech data, loss and WER evaluation (workloads/librispeech/workload.py)
with DeepSpeech (model.py). Its batch norm synchronises its statistics across DDP ranks
itself, so no state sync is needed before eval; the model is not compiled, the loss is
(pytest_algoperf/compilation.py, as upstream). The norm_and_spec_aug variant evaluates in
batches of 128. Dropout (v0.6): one rate, 0.1 unless model_fn is given one, after the
subsampling and in every feed-forward block; a v0.5 run fixes dropout_rate (feed-forward)
and aux_dropout_rate (input) at init.
"""

from __future__ import annotations

from typing import Optional

import torch

from pytest_algoperf.api import spec
from workloads.librispeech.workload import LibriSpeechWorkload
from workloads.librispeech_deepspeech.model import (
    DROPOUT_RATE,
    VARIANT_MODEL_KWARGS,
    DeepspeechEncoderDecoder,
    deepspeech,
)


class LibriSpeechDeepSpeechWorkload(LibriSpeechWorkload):
    """DeepSpeech CTC on LibriSpeech; targets, budget (44,405 s; v0.5 55,506 s) and step hint: scoring/versions/*.json."""

    name = "librispeech_deepspeech"

    def build_model(self) -> DeepspeechEncoderDecoder:
        return deepspeech(use_specaug=self.use_specaug, **VARIANT_MODEL_KWARGS[self.name])

    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # chosen per model_fn call (v0.5 runs: fix_dropout_at_init)
        torch.random.manual_seed(int(rng[0]))
        return self._adopt_model(self.build_model()), None

    def _forward(self, model, inputs, input_paddings, dropout_rate: Optional[float]):
        if dropout_rate is not None or not self._dropout_fixed_at_init:
            return model(inputs, input_paddings, dropout_rate=self._dropout_rate_or_default(dropout_rate, DROPOUT_RATE))
        aux = self._init_aux_dropout_rate
        return model(
            inputs,
            input_paddings,
            dropout_rate=self._dropout_rate_or_default(None, DROPOUT_RATE),
            input_dropout_rate=DROPOUT_RATE if aux is None else aux,
        )


class LibriSpeechDeepSpeechTanhWorkload(LibriSpeechDeepSpeechWorkload):
    """tanh in place of ReLU."""

    name = "librispeech_deepspeech_tanh"


class LibriSpeechDeepSpeechNoResNetWorkload(LibriSpeechDeepSpeechWorkload):
    """No residual connections."""

    name = "librispeech_deepspeech_no_resnet"


class LibriSpeechDeepSpeechNormAndSpecAugWorkload(LibriSpeechDeepSpeechWorkload):
    """LayerNorm everywhere, no decoder LayerNorm, stronger SpecAugment (4 frequency, 15 time masks)."""

    name = "librispeech_deepspeech_norm_and_spec_aug"

    @property
    def eval_batch_size(self) -> int:
        return 128
