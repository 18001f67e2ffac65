"""The API layer `pytest_algoperf.api`: what submissions and workloads program against.

It is the bottom layer (nothing in it imports the harness, the plugin or the
workloads), it keeps the former flat import paths, its enums equal upstream's,
and it restores torch names that AlgoPerf-era submissions still call.
"""

from __future__ import annotations

import ast
import enum
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterable

import pytest
import torch
from torch import nn

import pytest_algoperf.api
from pytest_algoperf.api import param_utils, spec
from pytest_algoperf.api.pytorch_utils import CustomDropout, SequentialWithDropout
from pytest_algoperf.api.random_utils import PRNGKey
from pytest_algoperf.api.torch_compat import install_torch_compat

API_FOLDER = Path(pytest_algoperf.api.__file__).parent
API_MODULES = (
    "spec", "pytorch_utils", "random_utils", "param_utils", "data_utils", "init_utils", "halton",
    "upstream_names", "torch_compat", "cross_package_enum",
)
FORBIDDEN_TOP_LEVEL = ("workloads", "scoring", "pytest", "_pytest")


def run_python(code: str, tmp_path: Path, pythonpath: Iterable[Path] = ()) -> Any:
    """Runs `code` in a fresh interpreter outside the project; returns its last printed line as JSON."""
    cwd = tmp_path / "empty_cwd"
    cwd.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "")}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"child interpreter failed (rc={result.returncode})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stdout.strip().splitlines()
    assert lines, f"child interpreter printed nothing\nstderr:\n{result.stderr}"
    return json.loads(lines[-1])


# --- layering ----------------------------------------------------------------------------------------


def _is_outside_the_api(module_name: str) -> bool:
    top = module_name.split(".")[0]
    if top in FORBIDDEN_TOP_LEVEL:
        return True
    return top == "pytest_algoperf" and module_name not in ("pytest_algoperf", "pytest_algoperf.api") and not module_name.startswith(
        "pytest_algoperf.api."
    )


def test_importing_the_api_imports_nothing_of_the_harness_plugin_or_workloads(tmp_path):
    """Every API module imports in a fresh process without pulling in workloads, scoring, the harness or pytest."""
    code = f"""
        import json, sys
        for name in {list(API_MODULES)!r}:
            __import__("pytest_algoperf.api." + name)
        print(json.dumps(sorted(sys.modules)))
    """
    loaded = run_python(code, tmp_path)
    assert {f"pytest_algoperf.api.{name}" for name in API_MODULES} <= set(loaded)
    assert [name for name in loaded if _is_outside_the_api(name)] == []


def _imported_modules(tree: ast.AST, module_name: str) -> Iterable[str]:
    """Absolute names of every module an `import` statement anywhere in the file (functions included) names."""
    package_parts = module_name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package_parts[: len(package_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)  # `from pytest_algoperf import runner`


def test_no_api_source_file_imports_the_layers_above():
    """Statically, no file under pytest_algoperf/api/ imports pytest_algoperf.<non-api>, workloads, scoring or pytest."""
    files = sorted(API_FOLDER.glob("*.py"))
    assert {path.stem for path in files} >= set(API_MODULES)
    offending = {}
    for path in files:
        module_name = f"pytest_algoperf.api.{path.stem}"  # for __init__.py, `from . import x` is then the api package
        names = [name for name in _imported_modules(ast.parse(path.read_text()), module_name) if _is_outside_the_api(name)]
        if names:
            offending[path.name] = names
    assert offending == {}


def test_the_static_check_would_catch_an_upward_import():
    """The checker flags an import of the plugin, of a workload, or a relative import that leaves the API."""
    source = "from pytest_algoperf import runner\nimport workloads.registry\nfrom .. import plugin\nimport pytest\n"
    names = list(_imported_modules(ast.parse(source), "pytest_algoperf.api.spec"))
    assert {"pytest_algoperf.runner", "workloads.registry", "pytest_algoperf.plugin", "pytest"} <= {
        name for name in names if _is_outside_the_api(name)
    }


# --- former import paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "former, current",
    [
        ("spec", "spec"), ("param_utils", "param_utils"), ("pytorch_utils", "pytorch_utils"),
        ("random_utils", "random_utils"), ("data_utils", "data_utils"), ("init_utils", "init_utils"),
        ("tuning", "halton"), ("compat", "upstream_names"),
    ],
)
def test_former_flat_import_paths_are_the_api_modules_themselves(former, current):
    """`pytest_algoperf.<former>` is the very module object `pytest_algoperf.api.<current>`."""
    assert importlib.import_module(f"pytest_algoperf.{former}") is importlib.import_module(f"pytest_algoperf.api.{current}")


def test_names_import_from_the_former_paths():
    """`from pytest_algoperf.spec import LossType` (and friends) gives the API's classes."""
    from pytest_algoperf.param_utils import ParameterType
    from pytest_algoperf.spec import ForwardPassMode, LossType
    from pytest_algoperf.tuning import generate_search

    assert (LossType, ForwardPassMode, ParameterType) == (spec.LossType, spec.ForwardPassMode, param_utils.ParameterType)
    assert generate_search is importlib.import_module("pytest_algoperf.api.halton").generate_search


# --- enums that equal upstream's ------------------------------------------------------------------------

# What a real installed `algoperf.spec` defines: plain enum.Enum classes with these names.
UPSTREAM_ENUM_MEMBERS = {
    "LossType": ["SOFTMAX_CROSS_ENTROPY", "SIGMOID_CROSS_ENTROPY", "MEAN_SQUARED_ERROR", "CTC_LOSS", "MEAN_ABSOLUTE_ERROR"],
    "ForwardPassMode": ["TRAIN", "EVAL"],
    "ParameterType": [
        "WEIGHT", "BIAS", "CONV_WEIGHT", "BATCH_NORM_SCALE", "BATCH_NORM_BIAS", "LAYER_NORM_SCALE", "LAYER_NORM_BIAS",
        "EMBEDDING", "ATTENTION_Q", "ATTENTION_K", "ATTENTION_V", "ATTENTION_OUT", "ATTENTION_QKV", "ATTENTION_KV",
        "ATTENTION_BIAS",
    ],
}
UPSTREAM = {name: enum.Enum(name, [(member, value) for value, member in enumerate(members)])
            for name, members in UPSTREAM_ENUM_MEMBERS.items()}
OURS = {"LossType": spec.LossType, "ForwardPassMode": spec.ForwardPassMode, "ParameterType": param_utils.ParameterType}
ALL_MEMBERS = [(name, member) for name, members in UPSTREAM_ENUM_MEMBERS.items() for member in members]


def test_our_enums_have_upstreams_members():
    """Each of our cross-package enums has exactly upstream's member names, in upstream's order."""
    assert {name: [member.name for member in OURS[name]] for name in OURS} == UPSTREAM_ENUM_MEMBERS


@pytest.mark.parametrize("class_name, member_name", ALL_MEMBERS)
def test_our_member_equals_upstreams_member_of_the_same_name(class_name, member_name):
    """`ours == theirs` and `theirs == ours`, with `!=` agreeing, for every member."""
    ours, theirs = OURS[class_name][member_name], UPSTREAM[class_name][member_name]
    assert ours == theirs and theirs == ours
    assert not (ours != theirs) and not (theirs != ours)


@pytest.mark.parametrize("class_name, member_name", ALL_MEMBERS)
def test_our_member_hashes_like_upstreams_and_works_as_a_dict_key_both_ways(class_name, member_name):
    """Upstream's member finds ours in a dict (and back), and `ours in [theirs]` holds."""
    ours, theirs = OURS[class_name][member_name], UPSTREAM[class_name][member_name]
    assert hash(ours) == hash(theirs)
    assert {theirs: 1}[ours] == 1 and {ours: 1}[theirs] == 1
    assert ours in [theirs] and theirs in [ours]


def test_a_different_member_or_a_same_named_member_of_another_class_is_not_equal():
    """Equality needs both the class name and the member name to match."""
    assert spec.ForwardPassMode.TRAIN != UPSTREAM["ForwardPassMode"].EVAL
    assert not spec.ForwardPassMode.TRAIN == UPSTREAM["ForwardPassMode"].EVAL
    assert UPSTREAM["ForwardPassMode"].EVAL != spec.ForwardPassMode.TRAIN
    other_class = enum.Enum("RunMode", ["TRAIN", "EVAL"])
    assert spec.ForwardPassMode.TRAIN != other_class.TRAIN and not spec.ForwardPassMode.TRAIN == other_class.TRAIN
    assert other_class.TRAIN != spec.ForwardPassMode.TRAIN
    assert {other_class.TRAIN: 1}.get(spec.ForwardPassMode.TRAIN) is None
    assert spec.LossType.CTC_LOSS != param_utils.ParameterType.WEIGHT


def test_an_enum_member_is_not_equal_to_its_value_or_name():
    """Members still differ from plain values: `ForwardPassMode.TRAIN != 0` and `!= 'TRAIN'`."""
    assert spec.ForwardPassMode.TRAIN != 0 and spec.ForwardPassMode.TRAIN != "TRAIN"
    assert not spec.ForwardPassMode.TRAIN == 0


@pytest.fixture
def mnist():
    """The MNIST workload with a built model and a random (4, 28, 28, 1) NHWC input batch."""
    from workloads.registry import get_workload

    workload = get_workload("mnist")
    model, _ = workload.init_model_fn(PRNGKey(0))
    torch.manual_seed(0)
    return workload, model, {"inputs": torch.randn(4, 28, 28, 1, device=next(model.parameters()).device)}


def test_mnist_model_fn_honours_upstreams_eval_mode(mnist):
    """Called with upstream's `ForwardPassMode.EVAL`, the workload evaluates: eval mode and no autograd graph."""
    workload, model, batch = mnist
    model.train()
    logits, _ = workload.model_fn(model, batch, None, UPSTREAM["ForwardPassMode"].EVAL, PRNGKey(1), update_batch_norm=False)
    assert logits.shape == (4, 10)
    assert not model.training
    assert logits.grad_fn is None and not logits.requires_grad


def test_mnist_model_fn_keeps_gradients_in_upstreams_train_mode(mnist):
    """Called with upstream's `ForwardPassMode.TRAIN`, the forward pass builds the graph a submission backpropagates."""
    workload, model, batch = mnist
    model.train()
    logits, _ = workload.model_fn(model, batch, None, UPSTREAM["ForwardPassMode"].TRAIN, PRNGKey(1), update_batch_norm=True)
    assert model.training
    assert logits.requires_grad and logits.grad_fn is not None


FAKE_UPSTREAM_SPEC = '''
"""Stands in for a real installed algoperf.spec: plain enums, as upstream defines them."""
import enum

class LossType(enum.Enum):
    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4

class ForwardPassMode(enum.Enum):
    TRAIN = 0
    EVAL = 1

class ParameterType(enum.Enum):
    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12
    ATTENTION_KV = 13
    ATTENTION_BIAS = 14

class TrainingCompleteError(Exception):
    pass

FAKE_UPSTREAM = True
'''

UPSTREAM_STYLE_SUBMISSION = '''
from algoperf import spec

def get_batch_size(workload_name):
    return 4

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng):
    current_param_container.train()
    logits, _ = workload.model_fn(current_param_container, batch, model_state, spec.ForwardPassMode.EVAL, rng, False)
    no_decay = {spec.ParameterType.BIAS: 0.0, spec.ParameterType.WEIGHT: 1.0}
    optimizer_state = {
        "loss_is_softmax": loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY,
        "eval_left_no_graph": logits.grad_fn is None and not current_param_container.training,
        "decay_by_type": sorted(no_decay[kind] for kind in current_params_types.values()),
    }
    return optimizer_state, current_param_container, model_state

def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return next(input_queue)
'''


def test_a_real_installed_algoperf_spec_works_with_our_workloads(tmp_path):
    """With a real `algoperf` installed (here a stand-in with plain enums), submissions get its `spec`, not ours,
    and its enums still work with our workloads: loss type, forward-pass mode and parameter types."""
    site = tmp_path / "site"
    (site / "algoperf").mkdir(parents=True)
    (site / "algoperf" / "__init__.py").write_text("")
    (site / "algoperf" / "spec.py").write_text(FAKE_UPSTREAM_SPEC)
    (tmp_path / "submission.py").write_text(UPSTREAM_STYLE_SUBMISSION)
    code = f"""
        import json
        import torch
        from pytest_algoperf.api.upstream_names import install_upstream_aliases
        install_upstream_aliases()
        import algoperf.spec
        from pytest_algoperf.api.random_utils import PRNGKey
        from pytest_algoperf.submission_loading import load_submission
        from workloads.registry import get_workload

        workload = get_workload("mnist")
        model, model_state = workload.init_model_fn(PRNGKey(0))
        submission = load_submission({str(tmp_path / "submission.py")!r})
        batch = {{"inputs": torch.randn(4, 28, 28, 1), "targets": torch.zeros(4, dtype=torch.long)}}
        state, _, _ = submission.update_params(workload, model, workload.model_params_types, model_state, None, batch,
                                                workload.loss_type, {{}}, [], 0, PRNGKey(1))
        print(json.dumps({{
            "fake_used": getattr(algoperf.spec, "FAKE_UPSTREAM", False),
            "submission_spec_is_fake": submission.module.spec is algoperf.spec,
            "loss_type_equal": workload.loss_type == algoperf.spec.LossType.SOFTMAX_CROSS_ENTROPY,
            "loss_type_equal_reflected": algoperf.spec.LossType.SOFTMAX_CROSS_ENTROPY == workload.loss_type,
            "loss_type_is_ours": type(workload.loss_type).__module__,
            **state,
        }}))
    """
    result = run_python(code, tmp_path, pythonpath=[site])
    assert result == {
        "fake_used": True,
        "submission_spec_is_fake": True,
        "loss_type_equal": True,
        "loss_type_equal_reflected": True,
        "loss_type_is_ours": "pytest_algoperf.api.spec",
        "loss_is_softmax": True,
        "eval_left_no_graph": True,
        "decay_by_type": [0.0, 0.0, 1.0, 1.0],
    }


# --- torch names of the AlgoPerf era -------------------------------------------------------------------


def test_install_torch_compat_adds_the_missing_names_once(tmp_path):
    """In a fresh process the first call restores both old torch names; a second call adds nothing."""
    code = """
        import json
        import torch.optim.optimizer as optimizer_module
        from torch.optim import Optimizer
        from pytest_algoperf.api.torch_compat import install_torch_compat
        before = [hasattr(Optimizer, "_cuda_graph_capture_health_check"), hasattr(optimizer_module, "_dispatch_sqrt")]
        first = install_torch_compat()
        second = install_torch_compat()
        print(json.dumps({"before": before, "first": first, "second": second}))
    """
    assert run_python(code, tmp_path) == {
        "before": [False, False],
        "first": ["torch.optim.Optimizer._cuda_graph_capture_health_check", "torch.optim.optimizer._dispatch_sqrt"],
        "second": [],
    }


def test_the_old_cuda_graph_health_check_is_torchs_accelerator_check():
    """`Optimizer._cuda_graph_capture_health_check` is the renamed method itself, and callable on an optimizer."""
    install_torch_compat()
    assert torch.optim.Optimizer._cuda_graph_capture_health_check is torch.optim.Optimizer._accelerator_graph_capture_health_check
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    assert optimizer._cuda_graph_capture_health_check() is None
    assert install_torch_compat() == []


def test_the_old_dispatch_sqrt_takes_numbers_and_tensors():
    """`torch.optim.optimizer._dispatch_sqrt` gives math.sqrt for numbers and `.sqrt()` for tensors."""
    install_torch_compat()
    from torch.optim.optimizer import _dispatch_sqrt

    assert _dispatch_sqrt(4.0) == 2.0 and isinstance(_dispatch_sqrt(4.0), float)
    values = torch.tensor([4.0, 9.0])
    assert torch.equal(_dispatch_sqrt(values), torch.tensor([2.0, 3.0]))


class Torch25StyleAdam(torch.optim.Optimizer):
    """Optimizer code as written against torch 2.5: the old health-check name and `_dispatch_sqrt`."""

    def __init__(self, params, lr=0.1, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        from torch.optim.optimizer import _dispatch_sqrt

        self._cuda_graph_capture_health_check()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"], state["m"], state["v"] = 0, torch.zeros_like(param), torch.zeros_like(param)
                state["step"] += 1
                state["m"].lerp_(param.grad, 1 - beta1)
                state["v"].mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
                bias_correction2_sqrt = _dispatch_sqrt(1 - beta2 ** state["step"])
                step_size = group["lr"] / (1 - beta1 ** state["step"])
                denom = (state["v"].sqrt() / bias_correction2_sqrt).add_(group["eps"])
                param.addcdiv_(state["m"], denom, value=-step_size)


def test_a_torch_2_5_era_optimizer_steps_a_model():
    """An optimizer calling the old names trains a tiny model: the loss goes down."""
    install_torch_compat()
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    inputs, targets = torch.randn(16, 3), torch.randn(16, 1)
    optimizer = Torch25StyleAdam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# --- dropout modules ---------------------------------------------------------------------------------------


def _nested_dropout_model() -> SequentialWithDropout:
    return SequentialWithDropout(nn.Identity(), SequentialWithDropout(nn.Identity(), CustomDropout()))


def test_sequential_with_dropout_takes_a_dropout_rate_itself():
    """Like upstream's, SequentialWithDropout marks itself as taking the rate, so it can be nested."""
    assert SequentialWithDropout._supports_custom_dropout is True


def test_a_nested_sequential_passes_the_rate_down_in_train_mode():
    """With p=1.0 in train mode the inner CustomDropout of a nested SequentialWithDropout zeroes its input."""
    model = _nested_dropout_model().train()
    assert torch.equal(model(torch.ones(2, 5), 1.0), torch.zeros(2, 5))


def test_nothing_is_dropped_in_eval_mode():
    """In eval mode the same model passes its input through, whatever the rate."""
    model = _nested_dropout_model().eval()
    inputs = torch.randn(2, 5)
    assert torch.equal(model(inputs, 1.0), inputs)
