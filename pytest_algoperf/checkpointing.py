"""Whether a submission's optimizer state survives a checkpoint round trip (reference §3.7)."""

from __future__ import annotations

import tempfile
from typing import Any, List, Tuple


def checkpoint_round_trip(optimizer_state: Any) -> Tuple[List[str], List[str]]:
    """(problems, notes): every stateful value must save with torch.save and load back.

    Upstream checkpoints `optimizer_state[k].state_dict()` for each key and
    skips values without one (a note, not a problem).
    """
    import torch

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
            # A file, not memory: states of big models run to gigabytes.
            with tempfile.TemporaryFile() as buffer:
                torch.save(value.state_dict(), buffer)
                buffer.seek(0)
                value.load_state_dict(torch.load(buffer, weights_only=False))
        except Exception as error:
            problems.append(
                f"optimizer_state[{key!r}] does not survive state_dict() -> torch.save -> load_state_dict(): "
                f"{type(error).__name__}: {error}"
            )
    return problems, notes
