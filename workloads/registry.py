"""Every workload the benchmark knows, and how to build one by name."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
from typing import Dict, List, Tuple

from workloads.base import DEFAULT_BENCHMARK_VERSION, BenchmarkWorkload


@dataclasses.dataclass(frozen=True)
class WorkloadEntry:
    name: str
    module: str  # importable module holding the class
    class_name: str
    base: str  # the base workload a variant belongs to (itself for a base workload)
    family: str  # dataset family, e.g. 'imagenet' for imagenet_resnet and imagenet_vit
    development: bool = False  # development workloads are never part of the benchmark score

    @property
    def is_variant(self) -> bool:
        return self.base != self.name


_ENTRIES: Tuple[WorkloadEntry, ...] = (
    WorkloadEntry("mnist", "workloads.mnist.workload", "MnistWorkload", base="mnist", family="mnist", development=True),
    WorkloadEntry("cifar", "workloads.cifar.workload", "CifarWorkload", base="cifar", family="cifar", development=True),
    # -- fastmri entries --
    WorkloadEntry("fastmri", "workloads.fastmri.workload", "FastMRIWorkload", base="fastmri", family="fastmri"),
    WorkloadEntry("fastmri_model_size", "workloads.fastmri.workload", "FastMRIModelSizeWorkload", base="fastmri", family="fastmri"),
    WorkloadEntry("fastmri_tanh", "workloads.fastmri.workload", "FastMRITanhWorkload", base="fastmri", family="fastmri"),
    WorkloadEntry("fastmri_layernorm", "workloads.fastmri.workload", "FastMRILayerNormWorkload", base="fastmri", family="fastmri"),
    # -- imagenet_resnet entries --
    WorkloadEntry("imagenet_resnet", "workloads.imagenet_resnet.workload", "ImagenetResNetWorkload", base="imagenet_resnet", family="imagenet"),
    WorkloadEntry("imagenet_resnet_silu", "workloads.imagenet_resnet.workload", "ImagenetResNetSiLUWorkload", base="imagenet_resnet", family="imagenet"),
    WorkloadEntry("imagenet_resnet_gelu", "workloads.imagenet_resnet.workload", "ImagenetResNetGELUWorkload", base="imagenet_resnet", family="imagenet"),
    WorkloadEntry("imagenet_resnet_large_bn_init", "workloads.imagenet_resnet.workload", "ImagenetResNetLargeBNScaleWorkload", base="imagenet_resnet", family="imagenet"),
    # -- imagenet_vit entries --
    WorkloadEntry("imagenet_vit", "workloads.imagenet_vit.workload", "ImagenetVitWorkload", base="imagenet_vit", family="imagenet"),
    WorkloadEntry("imagenet_vit_glu", "workloads.imagenet_vit.workload", "ImagenetVitGluWorkload", base="imagenet_vit", family="imagenet"),
    WorkloadEntry("imagenet_vit_post_ln", "workloads.imagenet_vit.workload", "ImagenetVitPostLNWorkload", base="imagenet_vit", family="imagenet"),
    WorkloadEntry("imagenet_vit_map", "workloads.imagenet_vit.workload", "ImagenetVitMapWorkload", base="imagenet_vit", family="imagenet"),
    # -- librispeech_conformer entries --
    WorkloadEntry("librispeech_conformer", "workloads.librispeech_conformer.workload", "LibriSpeechConformerWorkload", base="librispeech_conformer", family="librispeech"),
    WorkloadEntry("librispeech_conformer_attention_temperature", "workloads.librispeech_conformer.workload", "LibriSpeechConformerAttentionTemperatureWorkload", base="librispeech_conformer", family="librispeech"),
    WorkloadEntry("librispeech_conformer_layernorm", "workloads.librispeech_conformer.workload", "LibriSpeechConformerLayerNormWorkload", base="librispeech_conformer", family="librispeech"),
    WorkloadEntry("librispeech_conformer_gelu", "workloads.librispeech_conformer.workload", "LibriSpeechConformerGeluWorkload", base="librispeech_conformer", family="librispeech"),
    # -- librispeech_deepspeech entries --
    WorkloadEntry("librispeech_deepspeech", "workloads.librispeech_deepspeech.workload", "LibriSpeechDeepSpeechWorkload", base="librispeech_deepspeech", family="librispeech"),
    WorkloadEntry("librispeech_deepspeech_tanh", "workloads.librispeech_deepspeech.workload", "LibriSpeechDeepSpeechTanhWorkload", base="librispeech_deepspeech", family="librispeech"),
    WorkloadEntry("librispeech_deepspeech_no_resnet", "workloads.librispeech_deepspeech.workload", "LibriSpeechDeepSpeechNoResNetWorkload", base="librispeech_deepspeech", family="librispeech"),
    WorkloadEntry("librispeech_deepspeech_norm_and_spec_aug", "workloads.librispeech_deepspeech.workload", "LibriSpeechDeepSpeechNormAndSpecAugWorkload", base="librispeech_deepspeech", family="librispeech"),
    # -- finewebedu_lm (benchmark version a100 only) --
    WorkloadEntry("finewebedu_lm", "workloads.finewebedu_lm.workload", "LmWorkload", base="finewebedu_lm", family="finewebedu_lm"),
    # -- ogbg entries --
    WorkloadEntry("ogbg", "workloads.ogbg.workload", "OgbgWorkload", base="ogbg", family="ogbg"),
    WorkloadEntry("ogbg_gelu", "workloads.ogbg.workload", "OgbgGeluWorkload", base="ogbg", family="ogbg"),
    WorkloadEntry("ogbg_silu", "workloads.ogbg.workload", "OgbgSiluWorkload", base="ogbg", family="ogbg"),
    WorkloadEntry("ogbg_model_size", "workloads.ogbg.workload", "OgbgModelSizeWorkload", base="ogbg", family="ogbg"),
    # -- wmt entries --
    WorkloadEntry("wmt", "workloads.wmt.workload", "WmtWorkload", base="wmt", family="wmt"),
    WorkloadEntry("wmt_post_ln", "workloads.wmt.workload", "WmtWorkloadPostLN", base="wmt", family="wmt"),
    WorkloadEntry("wmt_attention_temp", "workloads.wmt.workload", "WmtWorkloadAttentionTemp", base="wmt", family="wmt"),
    WorkloadEntry("wmt_glu_tanh", "workloads.wmt.workload", "WmtWorkloadGLUTanH", base="wmt", family="wmt"),
    # -- criteo1tb entries --
    WorkloadEntry("criteo1tb", "workloads.criteo1tb.workload", "Criteo1TbWorkload", base="criteo1tb", family="criteo1tb"),
    WorkloadEntry("criteo1tb_layernorm", "workloads.criteo1tb.workload", "Criteo1TbLayerNormWorkload", base="criteo1tb", family="criteo1tb"),
    WorkloadEntry("criteo1tb_embed_init", "workloads.criteo1tb.workload", "Criteo1TbEmbedInitWorkload", base="criteo1tb", family="criteo1tb"),
    WorkloadEntry("criteo1tb_resnet", "workloads.criteo1tb.workload", "Criteo1TbResNetWorkload", base="criteo1tb", family="criteo1tb"),
    WorkloadEntry("criteo1tb_test", "workloads.criteo1tb.workload", "Criteo1TbTestWorkload", base="criteo1tb", family="criteo1tb", development=True),
)

WORKLOADS: Dict[str, WorkloadEntry] = {entry.name: entry for entry in _ENTRIES}

# The scored base workloads of every benchmark version (reference §0; finewebedu_lm from the a100
# version on); used to map variants to their base.
BASE_WORKLOADS = (
    "criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit",
    "librispeech_conformer", "librispeech_deepspeech", "finewebedu_lm", "ogbg", "wmt",
)


class UnknownWorkloadError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def list_workloads(pattern: str = "*") -> List[str]:
    """Registered workload names matching a shell-style pattern, sorted."""
    return sorted(name for name in WORKLOADS if fnmatch.fnmatch(name, pattern))


def workload_entry(name: str) -> WorkloadEntry:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UnknownWorkloadError(
            f"Unknown workload {name!r}. Known workloads: {', '.join(list_workloads())}."
        ) from None


def benchmark_version_for(name: str, preferred: str) -> str:
    """`preferred` when it has numbers for the workload, else the first shipped version that does
    (smoke and step-time sessions build finewebedu_lm under v0.6 with a100's numbers)."""
    from scoring.versions import available_versions, load_version

    for version in [preferred] + available_versions():
        if name in load_version(version).workloads:
            return version
    raise UnknownWorkloadError(f"No benchmark version has numbers for workload {name!r}.")


def workloads_of_other_versions(benchmark_version: str) -> Dict[str, List[str]]:
    """Registered non-development workloads the version lacks, each with the versions that have them."""
    from scoring.versions import available_versions, load_version

    known = load_version(benchmark_version).workloads
    missing: Dict[str, List[str]] = {}
    for name, entry in WORKLOADS.items():
        if name not in known and not entry.development:
            missing[name] = [version for version in available_versions() if name in load_version(version).workloads]
    return missing


def get_workload(name: str, benchmark_version: str = DEFAULT_BENCHMARK_VERSION) -> BenchmarkWorkload:
    """A ready workload instance (variants included) for `name`."""
    entry = workload_entry(name)
    workload_class = getattr(importlib.import_module(entry.module), entry.class_name)
    return workload_class(benchmark_version=benchmark_version)


def get_base_workload_name(name: str) -> str:
    """Upstream's rule: the first base name contained in `name` (so variants fall back to their base)."""
    if name in WORKLOADS:
        return WORKLOADS[name].base
    for base in BASE_WORKLOADS:
        if base in name:
            return base
    return name
