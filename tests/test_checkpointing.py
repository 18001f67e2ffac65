"""The smoke gate's checkpoint check: optimizer state must pickle as torch.save does and load back."""

from __future__ import annotations

import torch

from pytest_algoperf.checkpointing import checkpoint_round_trip


def _trained_state():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    return {"optimizer": optimizer, "scheduler": scheduler, "step": 1}


def test_a_real_optimizer_state_survives_and_keeps_its_values():
    state = _trained_state()
    before = {k: v.clone() for k, v in state["optimizer"].state_dict()["state"][0].items()}
    problems, notes = checkpoint_round_trip(state)
    assert problems == []
    assert notes == ["optimizer_state['step'] has no state_dict() and would not be checkpointed"]
    after = state["optimizer"].state_dict()["state"][0]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert state["scheduler"].get_last_lr() == [0.05]


def test_state_that_cannot_be_saved_is_named():
    class Unsaveable:
        def state_dict(self):
            return {"schedule": lambda step: 0.1}

        def load_state_dict(self, state):
            pass

    problems, _ = checkpoint_round_trip({"extra": Unsaveable()})
    assert len(problems) == 1 and problems[0].startswith("optimizer_state['extra'] does not survive")
