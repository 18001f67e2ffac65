"""What the two LibriSpeech workloads share: data, CTC loss, greedy decoding and the WER evaluation.

librispeech_conformer and librispeech_deepspeech (reference §4.6, §4.7) train different
acoustic models on the same prepared data (workloads/librispeech/: one preparation
command, one SentencePiece tokenizer) and are scored alike:

  model_fn   ((logits (B, T, 1024), logit_paddings (B, T)), None): the models take the raw
             16 kHz audio and its paddings and run the frontend (and, in training,
             SpecAugment) themselves. EVAL runs under no_grad; TRAIN with
             update_batch_norm=False freezes the models' batch-norm running statistics.
  loss_fn    CTC (blank 0) on log-softmax, input lengths from the logit paddings and target
             lengths from the target paddings, per utterance and unnormalised, times the
             mask; n_valid = max(#(mask and target length > 0), 1), as upstream.
  eval       greedy CTC decoding (argmax per frame, padded frames dropped, repeats
             collapsed, blanks removed), detokenised with the data dir's SentencePiece
             model; `wer` = sum of word-level edit distances / sum of reference words, both
             counted as upstream counts them (its texts carry a tf.Tensor wrapper: two extra
             words per reference, see WER_AS_UPSTREAM), and `ctc_loss` = summed CTC loss /
             number of utterances, over the split, summed over ranks.

Deliberate difference: eval batches are full per-device batches whose padding rows are
empty utterances of weight 0 (workloads/librispeech/input_pipeline.py). They add nothing
to the loss or the word counts; the utterance count of each batch is taken without
upstream's per-batch max(n, 1), which would count an all-padding batch as one utterance
(upstream never has one). On upstream's batches both give the same numbers.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Dict, Iterator, Optional, Tuple

import torch

from pytest_algoperf.api import pytorch_utils
from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api import spec
from workloads import parallel
from workloads.base import BenchmarkWorkload
from workloads.librispeech import input_pipeline, metrics
from workloads.librispeech.tokenizer import Tokenizer, load_tokenizer


class LibriSpeechWorkload(BenchmarkWorkload):
    """The shared part of the Conformer and DeepSpeech workloads; subclasses build the model."""

    # Count words as upstream's compute_wer does (workloads/librispeech/metrics.py): its str() of a
    # tf.string tensor adds two words to every reference, and the targets were set with that count.
    WER_AS_UPSTREAM = True

    REFERENCE_COUNTS = dict(input_pipeline.REFERENCE_COUNTS)
    # Every utterance is 320,000 samples of audio (padded), about 25 GMACs in the subsampling convs
    # alone: one per smoke step keeps the CPU gate short.
    SMOKE_BATCH_SIZE = 1

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eval_num_workers = 0  # DataLoader workers for eval batches (see BenchmarkWorkload._dataloader_workers)
        self.use_specaug = True
        self._tokenizer: Optional[Tokenizer] = None
        self.ctc_loss = torch.nn.CTCLoss(blank=metrics.BLANK_ID, reduction="none")

    # --- constants ----------------------------------------------------------------------------
    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.CTC_LOSS

    @property
    def eval_batch_size(self) -> int:
        return input_pipeline.EVAL_BATCH_SIZE

    @property
    def dataset_name(self) -> str:
        return input_pipeline.DATASET_NAME  # both models read the same prepared data

    def preparation_command(self, data_dir: str) -> str:
        return f"python -m workloads.librispeech.prepare --data-dir {data_dir} --raw-dir RAW"

    @property
    def requires_sync_before_eval(self) -> bool:
        """Whether the model's state is averaged across DDP ranks before each eval (the Conformer's)."""
        return False

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("lin.weight", "lin.bias")

    # --- data ----------------------------------------------------------------------------------
    def tokenizer(self, data_dir: str) -> Tokenizer:
        """The SentencePiece model of the prepared data (loaded once)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(input_pipeline.tokenizer_path(self.dataset_dir(data_dir)))
        return self._tokenizer

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: Optional[bool] = None,
        repeat_final_dataset: Optional[bool] = None,
        num_batches: Optional[int] = None,
    ) -> Iterator[Dict[str, spec.Tensor]]:
        """Train: endless shuffled batches. Eval splits: padded batches with `weights`, one pass, or endlessly
        repeated with repeat_final_dataset (as the evals read them, like upstream's cycled loaders)."""
        del cache, num_batches
        world = parallel.current_world()
        parallel.check_same_seed_on_every_rank(data_rng, world=world)
        return input_pipeline.build_input_iterator(
            self.dataset_dir(data_dir),
            split,
            data_rng,
            global_batch_size,
            world,
            num_eval_train_examples=self.num_eval_train_examples,
            num_workers=self._dataloader_workers(split, world),
            repeat=bool(repeat_final_dataset),
        )

    # --- model ---------------------------------------------------------------------------------
    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: Dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ) -> Tuple[Tuple[spec.Tensor, spec.Tensor], spec.ModelAuxiliaryState]:
        del model_state, rng
        model = params
        if mode == spec.ForwardPassMode.EVAL:
            model.eval()
        else:
            model.train()
            model.apply(functools.partial(pytorch_utils.update_batch_norm_fn, update_batch_norm=update_batch_norm))
        inputs, input_paddings = augmented_and_preprocessed_input_batch["inputs"]
        context = torch.no_grad if mode == spec.ForwardPassMode.EVAL else contextlib.nullcontext
        with context():
            logits, logit_paddings = self._forward(model, inputs, input_paddings, dropout_rate)
        return (logits, logit_paddings), None

    def _forward(self, model, inputs, input_paddings, dropout_rate: Optional[float]):
        """The model on a batch with the call's dropout (each model names its rates)."""
        raise NotImplementedError

    def loss_fn(
        self,
        label_batch: Tuple[spec.Tensor, spec.Tensor],
        logits_batch: Tuple[spec.Tensor, spec.Tensor],
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        """CTC per utterance (B,), times the mask; label smoothing does not apply to CTC (ignored, as upstream)."""
        del label_smoothing
        per_example, valid = self._ctc_per_example(label_batch, logits_batch, mask_batch)
        n_valid = torch.clamp(valid.sum().to(per_example.dtype), min=1.0)
        return {"summed": per_example.sum(), "n_valid_examples": n_valid, "per_example": per_example}

    def _ctc_per_example(self, label_batch, logits_batch, mask_batch) -> Tuple[torch.Tensor, torch.Tensor]:
        """(per-utterance CTC loss times the mask, (B,) bool: utterances that count)."""
        targets, target_paddings = label_batch
        logits, logit_paddings = logits_batch
        log_probs = torch.log_softmax(logits, dim=-1)
        input_lengths = (1 - logit_paddings).sum(dim=1).long()
        target_lengths = (1 - target_paddings).sum(dim=1).long()
        per_example = self.ctc_loss(log_probs.permute(1, 0, 2), targets.long(), input_lengths, target_lengths)
        valid = target_lengths > 0
        if mask_batch is not None:
            per_example = per_example * mask_batch
            valid = torch.logical_and(mask_batch > 0, valid)
        return per_example, valid

    # --- evaluation ----------------------------------------------------------------------------
    def _eval_batch_sums(self, params: spec.ParameterContainer, batch: Dict, data_dir: str) -> torch.Tensor:
        """[summed CTC loss, utterances, word errors, reference words] of one batch, in float64."""
        (logits, logit_paddings), _ = self.model_fn(
            params, batch, None, spec.ForwardPassMode.EVAL, None, update_batch_norm=False
        )
        targets, target_paddings = batch["targets"]
        weights = batch.get("weights")
        decoded, decoded_paddings = metrics.greedy_decode(logits, logit_paddings)
        errors, words = metrics.batch_word_errors(
            decoded, decoded_paddings, targets, target_paddings, self.tokenizer(data_dir), weights,
            upstream_tf_strings=self.WER_AS_UPSTREAM,
        )
        per_example, valid = self._ctc_per_example((targets, target_paddings), (logits, logit_paddings), weights)
        return torch.tensor(
            [float(per_example.sum()), float(valid.sum()), errors, words], dtype=torch.float64, device=logits.device
        )

    def _eval_model_on_split(
        self,
        split: str,
        num_examples: int,
        global_batch_size: int,
        params: spec.ParameterContainer,
        model_state: spec.ModelAuxiliaryState,
        rng: spec.RandomState,
        data_dir: str,
        global_step: int = 0,
    ) -> Dict[str, float]:
        del model_state, global_step
        data_rng, _ = prng.split(rng, 2)
        if self.requires_sync_before_eval:
            parallel.sync_model_state_for_eval(params)
        batch_sums = functools.partial(self._eval_batch_sums, params, data_dir=data_dir)
        loss, utterances, errors, words = self._summed_over_split(
            split, num_examples, global_batch_size, data_rng, data_dir, batch_sums, 4
        )
        return {"ctc_loss": loss / max(utterances, 1.0), "wer": errors / max(words, 1.0)}
