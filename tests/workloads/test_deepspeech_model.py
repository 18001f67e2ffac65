"""DeepSpeech and its variants: counts, names and types, init, frames and paddings, packed LSTMs,
masked BatchNorm (by hand, and over two DDP ranks), what each variant changes, the real frontend."""

from __future__ import annotations

import collections
import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from pytest_algoperf.api.pytorch_utils import update_batch_norm_fn
from workloads.librispeech_deepspeech.model import (
    BATCH_NORM_EPSILON,
    MAX_INPUT_LENGTH,
    SPEC_AUGMENT_KWARGS,
    VARIANT_MODEL_KWARGS,
    BatchNorm,
    BatchRNN,
    Conv2dSubsampling,
    DeepspeechEncoderDecoder,
    FeedForwardModule,
    LayerNorm,
    deepspeech,
    initialize,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# Reference §4.1 / §5. Base: conv1 512 x 1 x 3 x 3 + 512 = 5,120; conv2 512 x 512 x 9 + 512 = 2,359,808;
# subsample.lin 10,240 x 512 + 512 = 5,243,392; 6 LSTM blocks of 2 directions x (4 x 256 x (512 + 256)
# + 2 x 1,024 biases) = 1,576,960 plus a BatchNorm's 1,024; 3 FFNs of 512 x 512 + 512 plus 1,024; the
# decoder LayerNorm 1,024; lin 512 x 1,024 + 1,024 = 525,312. LayerNorms have as many parameters as
# the BatchNorms they replace, so norm_and_spec_aug loses only the decoder LayerNorm.
NUM_PARAMS = {
    "librispeech_deepspeech": 18_393_600,
    "librispeech_deepspeech_tanh": 18_393_600,
    "librispeech_deepspeech_no_resnet": 18_393_600,
    "librispeech_deepspeech_norm_and_spec_aug": 18_392_576,
}

# Types by upstream's names under the first-match rules of reference §2.3:
#   subsample.conv<k>.kernel -> 'conv' -> CONV_WEIGHT; subsample.conv<k>.bias -> 'conv' + 'bias' -> BIAS
#   {lstms,ffns}.<i>.bn_normalization_layer.{weight,bias} -> 'bn' -> BATCH_NORM_SCALE / _BIAS
#   {lstms,ffns}.<i>.normalization_layer.{scale,bias}, ln.{scale,bias} -> 'norm' / 'ln' -> LAYER_NORM_*
#   lstms.<i>.lstm.weight_{ih,hh}_l0[_reverse] -> no keyword ('l0' is not 'ln') -> WEIGHT; their biases -> BIAS
#   subsample.lin, ffns.<i>.lin, lin -> 'lin' holds no 'ln' -> WEIGHT / BIAS
# Base: WEIGHT = 1 + 6 x 4 + 3 + 1 = 29; BIAS = 2 conv + 1 + 6 x 4 + 3 + 1 = 31; 9 BatchNorms; 1 LayerNorm.
BASE_TYPES = {
    ParameterType.WEIGHT: 29,
    ParameterType.BIAS: 31,
    ParameterType.CONV_WEIGHT: 2,
    ParameterType.BATCH_NORM_SCALE: 9,
    ParameterType.BATCH_NORM_BIAS: 9,
    ParameterType.LAYER_NORM_SCALE: 1,
    ParameterType.LAYER_NORM_BIAS: 1,
}
TYPE_CHANGES = {
    "librispeech_deepspeech": {},
    "librispeech_deepspeech_tanh": {},  # an activation has no parameters
    "librispeech_deepspeech_no_resnet": {},  # nor does a residual connection
    # 9 BatchNorms become LayerNorms and the decoder LayerNorm goes: 9 - 1 = 8 more LayerNorms.
    "librispeech_deepspeech_norm_and_spec_aug": {
        ParameterType.BATCH_NORM_SCALE: -9,
        ParameterType.BATCH_NORM_BIAS: -9,
        ParameterType.LAYER_NORM_SCALE: +8,
        ParameterType.LAYER_NORM_BIAS: +8,
    },
}
LSTM_PARAMETERS = [
    f"{kind}_{matrix}_l0{suffix}" for suffix in ("", "_reverse") for kind, matrix in
    (("weight", "ih"), ("weight", "hh"), ("bias", "ih"), ("bias", "hh"))
]

# A DeepSpeech small enough to run in milliseconds, fed by FramesFrontend's 8 "bins" per frame.
TINY = dict(vocab_size=12, encoder_dim=16, num_lstm_layers=2, num_ffn_layers=2, num_mel_bins=8)


class FramesFrontend(nn.Module):
    """Stand-in frontend: non-overlapping frames of `bins` samples are the features (zeroed where padded,
    as the real frontend zeroes padded samples); a frame is padding where its first sample is."""

    def __init__(self, bins: int = TINY["num_mel_bins"]) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, inputs, paddings):
        # (B, N), (B, N) -> (B, N // bins, bins), (B, N // bins)
        frames = inputs.shape[1] // self.bins
        features = (inputs * (1 - paddings))[:, : frames * self.bins].reshape(len(inputs), frames, self.bins)
        return features, paddings[:, : frames * self.bins : self.bins]


class Recorder(nn.Module):
    """Stand-in SpecAugment: passes features through, counting calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, features, paddings):
        self.calls += 1
        return features, paddings


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base() -> DeepspeechEncoderDecoder:
    """The full-size base model on the CPU with the real frontend and SpecAugment (read-only in tests)."""
    torch.manual_seed(0)
    return deepspeech()


def _meta_model(name: str) -> DeepspeechEncoderDecoder:
    with torch.device("meta"):
        return deepspeech(**VARIANT_MODEL_KWARGS[name])


def _tiny(seed: int = 0, **kwargs) -> DeepspeechEncoderDecoder:
    torch.manual_seed(seed)
    kwargs = {**TINY, "specaug": Recorder(), **kwargs}
    return deepspeech(FramesFrontend(), **kwargs)


def _paddings(lengths, total: int) -> torch.Tensor:
    """(B, total) float paddings: row b has lengths[b] real positions, then padding."""
    return (torch.arange(total)[None, :] >= torch.tensor(lengths)[:, None]).float()


def _xavier_bound(weight: torch.Tensor) -> float:
    receptive = weight[0][0].numel()
    return math.sqrt(6.0 / ((weight.shape[0] + weight.shape[1]) * receptive))


# --- counts, names, types --------------------------------------------------------------------------
def test_every_variant_has_a_model_entry():
    assert set(VARIANT_MODEL_KWARGS) == set(NUM_PARAMS) == set(TYPE_CHANGES)


@pytest.mark.parametrize("name", sorted(NUM_PARAMS))
def test_parameter_count_and_types_without_allocating(name):
    model = _meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS[name]
    expected = collections.Counter(BASE_TYPES)
    expected.update(TYPE_CHANGES[name])
    assert collections.Counter(pytorch_param_types(pytorch_param_shapes(model)).values()) == +expected


def test_base_model_has_upstreams_parameter_names_in_upstreams_order():
    model = _meta_model("librispeech_deepspeech")
    expected = ["subsample.conv1.kernel", "subsample.conv1.bias", "subsample.conv2.kernel", "subsample.conv2.bias",
                "subsample.lin.weight", "subsample.lin.bias"]
    for i in range(6):
        expected += [f"lstms.{i}.bn_normalization_layer.weight", f"lstms.{i}.bn_normalization_layer.bias"]
        expected += [f"lstms.{i}.lstm.{name}" for name in LSTM_PARAMETERS]
    for i in range(3):
        expected += [f"ffns.{i}.bn_normalization_layer.{p}" for p in ("weight", "bias")]
        expected += [f"ffns.{i}.lin.{p}" for p in ("weight", "bias")]
    expected += ["ln.scale", "ln.bias", "lin.weight", "lin.bias"]
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert list(shapes) == expected
    assert shapes["subsample.conv1.kernel"] == (512, 1, 3, 3)
    assert shapes["subsample.conv2.kernel"] == (512, 512, 3, 3)
    assert shapes["subsample.lin.weight"] == (512, 10_240)  # 512 channels x 20 bins (80 halved twice)
    assert shapes["lstms.5.lstm.weight_ih_l0_reverse"] == (1024, 512)  # 4 gates x 256
    assert shapes["lstms.5.lstm.weight_hh_l0"] == (1024, 256)
    assert shapes["ffns.2.lin.weight"] == (512, 512)
    assert (shapes["lin.weight"], shapes["lin.bias"]) == ((1024, 512), (1024,))
    buffers = dict(model.named_buffers())
    assert buffers["lstms.0.bn_normalization_layer.running_mean"].shape == (512,)
    assert buffers["ffns.2.bn_normalization_layer.running_var"].shape == (512,)


def test_norm_and_spec_aug_names_its_layer_norms_as_upstream():
    names = [name for name, _ in _meta_model("librispeech_deepspeech_norm_and_spec_aug").named_parameters()]
    assert "lstms.0.normalization_layer.scale" in names and "ffns.2.normalization_layer.bias" in names
    assert not any("bn_" in name or name.startswith("ln.") for name in names)
    assert len(names) == 80  # 82 of the base minus the decoder LayerNorm's two


# --- initialisation --------------------------------------------------------------------------------
def test_initialisation_follows_upstream(base):
    params = dict(base.named_parameters())
    assert not base.training  # upstream's init_model_fn leaves the model in eval mode
    # xavier-uniform (initialize) on every Linear; torch's defaults would be bounded by 1/sqrt(fan_in)
    # instead (0.0099 for subsample.lin, 0.044 for lin), so the spread tells them apart.
    linears = ["subsample.lin", "ffns.0.lin", "ffns.1.lin", "ffns.2.lin", "lin"]
    # the convs' kernels: xavier at construction, fans in_channels x 9 and out_channels x 9
    for name in [*linears, "subsample.conv1", "subsample.conv2"]:
        weight = params[f"{name}.weight" if name in linears else f"{name}.kernel"].detach()
        bound = _xavier_bound(weight)
        assert weight.abs().max() <= bound
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05), name
        assert not params[f"{name}.bias"].any(), name
    # LSTMs keep torch's U(-1/sqrt(hidden), 1/sqrt(hidden)), hidden 256, biases included
    for name in LSTM_PARAMETERS:
        values = params[f"lstms.3.lstm.{name}"].detach()
        assert values.abs().max() <= 1 / 16
        assert values.std().item() == pytest.approx(1 / 16 / math.sqrt(3), rel=0.05), name
    # norms start as the identity: scales stored as offsets from 1, all zero
    for name, value in params.items():
        if "norm" in name or name.startswith("ln."):
            assert not value.any(), name
    for name, value in base.named_buffers():
        if name.endswith("running_mean"):
            assert not value.any()
        elif name.endswith("running_var"):
            assert torch.equal(value, torch.ones_like(value))


def test_one_seed_one_model():
    first, second = _tiny(seed=7), _tiny(seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(_tiny(seed=8).lin.weight, first.lin.weight)


def test_materialising_without_a_forward_draws_as_upstreams_dummy_forward():
    """Upstream seeds, builds, draws a (2, 320000) batch, materialises the lazy layers by a forward and
    initialises; the shortcut must leave the same weights and the RNG at the same point. (Checked once
    for the full model against the full (2, 320000) forward with the real frontend; here tiny.)"""
    ours = _tiny(seed=3)
    after_ours = torch.rand(4)
    torch.manual_seed(3)
    reference = DeepspeechEncoderDecoder(FramesFrontend(), Recorder(), **TINY).eval()
    wave = torch.randn((2, MAX_INPUT_LENGTH))
    with torch.no_grad():
        reference(wave[:, :64], torch.zeros(2, 64))
    initialize(reference)
    after_reference = torch.rand(4)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key
    assert torch.equal(after_ours, after_reference)


def test_initialize_refuses_unmaterialised_lazy_layers():
    model = DeepspeechEncoderDecoder(FramesFrontend(), Recorder(), **TINY)
    with pytest.raises(RuntimeError, match="materialize_lazy_layers"):
        initialize(model)


# --- frames and paddings ---------------------------------------------------------------------------
def test_subsampling_halves_frames_and_bins_with_same_padding():
    conv = Conv2dSubsampling(1, 4)
    paddings = _paddings([13, 9], 13)
    out, out_paddings = conv(torch.randn(2, 1, 13, 7), paddings)
    assert out.shape == (2, 4, 7, 4)  # ceil(13 / 2), ceil(7 / 2)
    assert torch.equal(out_paddings, paddings[:, ::2])  # frame t of the output is centred on frame 2t
    assert not out[1, :, 5:].any()  # frames 10 and 12 of row 1 are padding: zeroed after the activation
    # "SAME" with an odd length pads one frame on each side; with an even one, one frame after only.
    x = torch.randn(1, 1, 4, 4)
    kernel = conv.kernel[:1]
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))
    expected = torch.relu(torch.nn.functional.conv2d(padded, kernel, conv.bias[:1], stride=2))
    assert torch.allclose(conv(x, torch.zeros(1, 4))[0][:, :1], expected)


def test_forward_gives_the_subsampled_frames_and_their_paddings():
    model = _tiny()
    audio = torch.randn(2, 13 * 8)  # 13 frames of 8 bins
    paddings = torch.zeros_like(audio)
    paddings[1, 9 * 8:] = 1  # row 1: 9 real frames
    with torch.no_grad():
        logits, out_paddings = model(audio, paddings)
    assert logits.shape == (2, 4, 12)  # 13 -> 7 -> 4 frames
    # frames 0..8 real -> halved: 0, 2, .., 8 real of 0..12 (5 of 7) -> halved again: 0, 2, 4 real of 0..6
    assert out_paddings.tolist() == [[0, 0, 0, 0], [0, 0, 0, 1]]
    assert model.subsample.lin.in_features == 16 * 2  # 8 bins -> 4 -> 2, x 16 channels


def test_specaugment_runs_only_in_training_and_when_enabled():
    audio, paddings = torch.randn(2, 40), torch.zeros(2, 40)
    model = _tiny()
    model(audio, paddings)
    assert model.specaug.calls == 0  # eval mode
    model.train()(audio, paddings)
    assert model.specaug.calls == 1
    disabled = _tiny(use_specaug=False).train()
    disabled(audio, paddings)
    assert disabled.specaug.calls == 0


def test_the_variants_configure_specaugment_as_upstream():
    from workloads.librispeech.spec_augment import SpecAugment

    counts = {"librispeech_deepspeech": (2, 10), "librispeech_deepspeech_norm_and_spec_aug": (4, 15)}
    for name, (freq, time) in counts.items():
        specaug = _meta_model(name).specaug
        assert isinstance(specaug, SpecAugment)
        assert (specaug.freq_mask_count, specaug.time_mask_count) == (freq, time)
        for key, value in SPEC_AUGMENT_KWARGS.items():
            assert getattr(specaug, key) == value
    assert SPEC_AUGMENT_KWARGS["freq_mask_max_bins"] == 27 and SPEC_AUGMENT_KWARGS["time_mask_max_ratio"] == 0.05


def test_dropout_rates_reach_their_layers_only_in_training():
    model = _tiny(use_specaug=False)
    seen = {}
    model.subsample.register_forward_hook(lambda m, i, o: seen.__setitem__("subsample", o[0]))
    for k, ffn in enumerate(model.ffns):
        ffn.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(f"ffn{k}", o))
    audio, paddings = torch.randn(2, 40), torch.zeros(2, 40)

    def zeroed(*args, **kwargs):
        with torch.no_grad():
            model(audio, paddings, *args, **kwargs)
        return {name: not value.any() for name, value in seen.items()}

    assert not any(zeroed(1.0).values())  # eval mode: no dropout at all
    model.train()
    assert all(zeroed(1.0).values())  # input_dropout_rate None: the same rate after the subsampling
    assert zeroed(0.0, input_dropout_rate=1.0) == {"subsample": True, "ffn0": False, "ffn1": False}
    assert zeroed(1.0, input_dropout_rate=0.0) == {"subsample": False, "ffn0": True, "ffn1": True}


# --- packed LSTMs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("layernorm", [True, False], ids=["layernorm", "batchnorm"])
def test_packed_lstm_ignores_padded_frames(layernorm):
    """Every utterance's real frames come out as if it were run alone, whatever the padded frames hold;
    the padded frames come out zero. (A LayerNorm passes padded frames on to the LSTM, so only the
    packing keeps the reverse direction from starting at the end of the padding.)"""
    torch.manual_seed(0)
    block = BatchRNN(16, layernorm_everywhere=layernorm).eval()
    lengths = [9, 5, 2]
    paddings = _paddings(lengths, 9)
    x = torch.randn(3, 9, 16)
    noisy = torch.where(paddings[:, :, None] == 1, 100 * torch.randn_like(x), x)
    with torch.no_grad():
        out, out_noisy = block(x, paddings), block(noisy, paddings)
        for row, length in enumerate(lengths):
            alone = block(x[row : row + 1, :length], torch.zeros(1, length))
            assert torch.allclose(out[row, :length], alone[0], atol=1e-6), row
            assert not out[row, length:].any()
    assert torch.equal(out, out_noisy)


def test_an_utterance_without_real_frames_does_not_stop_the_batch():
    block = BatchRNN(16, layernorm_everywhere=True).eval()
    with torch.no_grad():
        out = block(torch.randn(2, 4, 16), _paddings([4, 0], 4))
    assert out.shape == (2, 4, 16) and torch.isfinite(out).all()


# --- masked BatchNorm ------------------------------------------------------------------------------
def test_masked_batch_norm_statistics_over_real_frames_by_hand():
    bn = BatchNorm(2).train()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -0.5]))  # scales 1.5 and 0.5
        bn.bias.copy_(torch.tensor([0.25, 0.0]))
    # Real frames: row 0 all three, row 1 its first; the two padded frames hold values that would wreck
    # the statistics if they counted.
    x = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 4.0]], [[6.0, 4.0], [100.0, -50.0], [1e6, 1e6]]])
    paddings = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    out = bn(x, paddings)
    # feature 0: 1, 2, 3, 6 -> mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5
    # feature 1: 0, 0, 4, 4 -> mean 2, variance 4
    mean, var = torch.tensor([3.0, 2.0]), torch.tensor([3.5, 4.0])
    expected = (x - mean) / torch.sqrt(var + BATCH_NORM_EPSILON) * torch.tensor([1.5, 0.5]) + torch.tensor([0.25, 0.0])
    expected[1, 1:] = 0.0  # padded frames come out zero
    assert torch.allclose(out, expected)
    # running averages move by 0.001 from (0, 1)
    assert torch.allclose(bn.running_mean, 0.001 * mean)
    assert torch.allclose(bn.running_var, 0.999 + 0.001 * var)
    # eval normalises with the running averages
    bn.eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    eval_out = bn(x, paddings)
    expected = (x - torch.tensor([1.0, -1.0])) / torch.sqrt(torch.tensor([4.0, 0.25]) + BATCH_NORM_EPSILON)
    expected = expected * torch.tensor([1.5, 0.5]) + torch.tensor([0.25, 0.0])
    expected[1, 1:] = 0.0
    assert torch.allclose(eval_out, expected)
    assert torch.equal(bn.running_mean, torch.tensor([1.0, -1.0]))  # eval leaves them alone


def test_update_batch_norm_false_freezes_the_running_averages():
    model = _tiny(use_specaug=False).train()
    audio, paddings = torch.randn(2, 40), torch.zeros(2, 40)
    stats = lambda: [b.clone() for name, b in model.named_buffers() if "running" in name]  # noqa: E731
    model.apply(lambda m: update_batch_norm_fn(m, update_batch_norm=False))
    before = stats()
    model(audio, paddings)
    assert all(torch.equal(a, b) for a, b in zip(before, stats()))
    model.apply(lambda m: update_batch_norm_fn(m, update_batch_norm=True))
    model(audio, paddings)
    assert not any(torch.equal(a, b) for a, b in zip(before, stats()))


DDP_RANK_SCRIPT = """
import os
import sys
import torch
import torch.distributed as dist
from workloads.librispeech_deepspeech.model import BatchNorm

rank, rendezvous, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", init_method="file://" + rendezvous, rank=rank, world_size=2)
case = torch.load(folder + "/case.pt")
bn = BatchNorm(case["inputs"].shape[-1]).train()
bn.load_state_dict(case["state"])
start, stop = case["rows"][rank]
x = case["inputs"][start:stop].clone().requires_grad_()
out = bn(x, case["paddings"][start:stop])
(out * case["loss_weights"][start:stop]).sum().backward()
torch.save({"out": out.detach(), "grad": x.grad, "mean": bn.running_mean, "var": bn.running_var},
           folder + "/rank%d.pt" % rank)
dist.destroy_process_group()
# Skip interpreter finalisation: gloo's worker threads outlive destroy_process_group, and one that
# releases a tensor during finalisation aborts the process now and then (exit code -6).
sys.stdout.flush()
os._exit(0)
"""


def test_batch_norm_statistics_and_gradients_are_synced_over_ddp_ranks(tmp_path):
    """Two gloo ranks, each with its own rows and a different number of real frames, normalise with the
    statistics of all real frames of both, and get the gradient of the summed loss of both, exactly as one
    process holding the whole batch."""
    torch.manual_seed(0)
    inputs = torch.randn(5, 6, 3) * 3 + 1
    paddings = _paddings([6, 2, 4, 1, 5], 6)
    loss_weights = torch.randn(5, 6, 3)
    reference = BatchNorm(3).train()
    with torch.no_grad():
        reference.weight.copy_(torch.tensor([0.1, -0.2, 0.3]))
        reference.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    rows = [(0, 2), (2, 5)]  # [start, stop) of each rank's rows
    torch.save({"inputs": inputs, "paddings": paddings, "loss_weights": loss_weights, "rows": rows,
                "state": copy.deepcopy(reference.state_dict())}, tmp_path / "case.pt")
    whole = inputs.clone().requires_grad_()
    expected = reference(whole, paddings)
    (expected * loss_weights).sum().backward()

    script = tmp_path / "rank.py"
    script.write_text(DDP_RANK_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT), CUDA_VISIBLE_DEVICES="")
    for name in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    ranks = [
        subprocess.Popen([sys.executable, str(script), str(rank), str(tmp_path / "rendezvous"), str(tmp_path)],
                         cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)
    ]
    for rank, process in enumerate(ranks):
        try:
            output, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for other in ranks:
                other.kill()
            pytest.fail(f"rank {rank} did not finish within 120 s")
        assert process.returncode == 0, output[-4000:]
    for rank, (start, stop) in enumerate(rows):
        row = slice(start, stop)
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.allclose(result["out"], expected[row].detach(), atol=1e-6)
        assert torch.allclose(result["grad"], whole.grad[row], atol=1e-6)
        assert torch.allclose(result["mean"], reference.running_mean)
        assert torch.allclose(result["var"], reference.running_var)


# --- what the variants change ----------------------------------------------------------------------
def test_tanh_variant_uses_tanh_in_the_subsampling_and_the_ffns():
    model = _tiny(**VARIANT_MODEL_KWARGS["librispeech_deepspeech_tanh"])
    assert model.subsample.conv1.use_tanh and model.subsample.conv2.use_tanh
    assert all(ffn.use_tanh for ffn in model.ffns)
    assert not _tiny().subsample.conv1.use_tanh
    torch.manual_seed(0)
    x, paddings = torch.randn(2, 5, 16), _paddings([5, 3], 5)
    ffn = FeedForwardModule(16, layernorm_everywhere=True, use_tanh=True).eval()
    with torch.no_grad():
        ffn.lin(x)  # materialise
        expected = torch.tanh(ffn.lin(ffn.normalization_layer(x))) * (1 - paddings)[:, :, None]
        assert torch.allclose(ffn(x, paddings, 0.0), expected)
        relu_conv = Conv2dSubsampling(1, 4)
        tanh_conv = Conv2dSubsampling(1, 4, use_tanh=True)
        tanh_conv.kernel.copy_(relu_conv.kernel)
        image = torch.randn(1, 1, 6, 6)
        relu_out, tanh_out = relu_conv(image, torch.zeros(1, 6))[0], tanh_conv(image, torch.zeros(1, 6))[0]
    assert tanh_out.min() < 0  # tanh's range, not ReLU's
    assert torch.allclose(torch.relu(torch.atanh(tanh_out)), relu_out, atol=1e-5)  # the same pre-activations


@pytest.mark.parametrize("name", ["librispeech_deepspeech", "librispeech_deepspeech_no_resnet"])
def test_residual_connections_only_where_enabled(name):
    model = _tiny(**VARIANT_MODEL_KWARGS[name])
    chain = [model.subsample, *model.lstms, *model.ffns, model.ln]
    seen = []
    for module in chain:
        module.register_forward_hook(lambda m, i, o: seen.append((i[0], o[0] if isinstance(o, tuple) else o)))
    with torch.no_grad():
        model(torch.randn(2, 48), _paddings([48, 30], 48))
    residual = name == "librispeech_deepspeech"
    for (block_in, block_out), (next_in, _) in zip(seen[1:], seen[2:]):
        assert torch.allclose(next_in, block_in + block_out if residual else block_out)


def test_norm_and_spec_aug_uses_layer_norm_everywhere_and_no_decoder_layer_norm():
    model = _tiny(**VARIANT_MODEL_KWARGS["librispeech_deepspeech_norm_and_spec_aug"])
    assert not any(isinstance(m, BatchNorm) for m in model.modules())
    assert all(isinstance(block.normalization_layer, LayerNorm) for block in [*model.lstms, *model.ffns])
    assert model.ln is None
    last_ffn, seen = [], []
    model.ffns[-1].register_forward_hook(lambda m, i, o: last_ffn.append(i[0] + o))
    model.lin.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        model(torch.randn(2, 48), _paddings([48, 30], 48))
    assert torch.equal(seen[0], last_ffn[0])  # the last residual sum goes straight to the output layer
    base = _tiny()
    assert isinstance(base.ln, LayerNorm)
    assert sum(isinstance(m, BatchNorm) for m in base.modules()) == TINY["num_lstm_layers"] + TINY["num_ffn_layers"]


# --- the real frontend -----------------------------------------------------------------------------
def test_full_model_on_short_audio_with_the_real_frontend(base):
    num_samples = 401 + 160 * 30  # 31 frames of 25 ms every 10 ms
    torch.manual_seed(1)
    audio = torch.randint(-3000, 3000, (2, num_samples)).float()  # int16-range samples, as stored
    paddings = torch.zeros_like(audio)
    paddings[1, 2601:] = 1
    with torch.no_grad():
        logits, out_paddings = base(audio, paddings)
        # different content in the padding: the real frames' logits must not move
        noisy = torch.where(paddings == 1, torch.randn_like(audio) * 3000, audio)
        logits_noisy, _ = base(noisy, paddings)
    assert base.preprocessor.num_frames(num_samples) == 31
    assert logits.shape == (2, 8, 1024)  # 31 -> 16 -> 8
    # row 1: frames 0..16 hold a real sample (frame 17 starts at sample 2720) -> 0, 2, .., 16 of 16 -> 0..4 of 8
    assert out_paddings.tolist() == [[0.0] * 8, [0.0] * 5 + [1.0] * 3]
    assert torch.isfinite(logits).all()
    assert torch.allclose(logits_noisy[0], logits[0]) and torch.allclose(logits_noisy[1, :5], logits[1, :5])


def test_a_training_step_reaches_every_parameter(base):
    model = copy.deepcopy(base).train()  # the shared model keeps its running averages
    torch.manual_seed(2)
    audio = torch.randint(-3000, 3000, (2, 401 + 160 * 20)).float()
    paddings = torch.zeros_like(audio)
    paddings[0, 2000:] = 1
    logits, out_paddings = model(audio, paddings, dropout_rate=0.1)
    (logits * (1 - out_paddings)[:, :, None]).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []
    moved = dict(model.named_buffers())["lstms.0.bn_normalization_layer.running_mean"]
    assert moved.any()  # training updated the running averages
