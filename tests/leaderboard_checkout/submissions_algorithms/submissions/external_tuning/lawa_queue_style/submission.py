"""LAWA on AdamW, in the v0.5 API: `data_selection` hands over the queue and `update_params` draws the batch."""

import torch

from algorithmic_efficiency import spec
from algorithmic_efficiency.pytorch_utils import pytorch_setup

from .averaging import WeightQueue

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()


def get_batch_size(workload_name):
    batch_sizes = {"criteo1tb": 262_144, "fastmri": 32, "ogbg": 512, "wmt": 128, "mnist": 16}
    return batch_sizes[workload_name]  # a KeyError here is a bug of the submission, not a fallback


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    del model_state, rng
    optimizer = torch.optim.AdamW(model_params.parameters(), lr=hyperparameters.learning_rate,
                                  betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
                                  weight_decay=hyperparameters.weight_decay)
    return {"optimizer": optimizer, "queue": WeightQueue(hyperparameters.lawa_queue_length)}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng):
    del current_params_types, loss_type, eval_results
    batch = next(batch)  # data_selection returned the input queue itself
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    logits, new_model_state = workload.model_fn(current_param_container, batch, model_state,
                                                spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True)
    loss_dict = workload.loss_fn(batch["targets"], logits, batch.get("weights"),
                                 label_smoothing=hyperparameters.label_smoothing)
    (loss_dict["summed"] / loss_dict["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    if global_step % hyperparameters.lawa_interval == 0:
        optimizer_state["queue"].push(current_param_container)
    return optimizer_state, current_param_container, new_model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return input_queue
