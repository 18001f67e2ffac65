"""Whether a submission's optimizer state survives a checkpoint round trip (reference §3.7)."""

from __future__ import annotations

import io
import pickle
from typing import Any, List, Tuple


def _round_trip(state: Any) -> Any:
    """Pickles `state` as torch.save does (tensors by reference, everything else by value) and loads it back.

    What breaks a checkpoint is the non-tensor part (a lambda, a generator, a local class); the tensors'
    bytes always serialise. Keeping them by reference makes the check cost microseconds instead of
    writing and reading the gigabytes of state of a model like Criteo's.
    """
    import torch

    tensors: List[Any] = []

    class TensorsByReference(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, torch.Tensor):
                tensors.append(obj)
                return ("tensor", len(tensors) - 1)
            return None

    class TensorsFromReference(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return tensors[pid[1]]

    buffer = io.BytesIO()
    TensorsByReference(buffer, protocol=2).dump(state)  # torch.save's default protocol
    buffer.seek(0)
    return TensorsFromReference(buffer).load()


def checkpoint_round_trip(optimizer_state: Any) -> Tuple[List[str], List[str]]:
    """(problems, notes): every stateful value must pickle as torch.save does and load back.

    Upstream checkpoints `optimizer_state[k].state_dict()` for each key and
    skips values without one (a note, not a problem).
    """
    problems: List[str] = []
    notes: List[str] = []
    if not isinstance(optimizer_state, dict):
        notes.append(f"optimizer_state is a {type(optimizer_state).__name__}; upstream checkpoints only dict entries")
        return problems, notes
    for key, value in optimizer_state.items():
        if not hasattr(value, "state_dict"):
            notes.append(f"optimizer_state[{key!r}] has no state_dict() and would not be checkpointed")
            continue
        try:
            value.load_state_dict(_round_trip(value.state_dict()))
        except Exception as error:
            problems.append(
                f"optimizer_state[{key!r}] does not survive state_dict() -> torch.save -> load_state_dict(): "
                f"{type(error).__name__}: {error}"
            )
    return problems, notes
