"""Compute profiles: where an endpoint runs, and the rules SageMaker enforces for each.

One profile per endpoint (`endpoint.compute`). A profile decides the image flavour (CPU, GPU or Neuron),
the instance families it accepts, the handler mode (`SAGEBERT_RUNTIME`) and which endpoint-config
properties exist. Everything here is plain data and checks: the config schema calls the checks at
synth, so a combination SageMaker would reject fails before anything is deployed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from infra.catalog.images import Flavour

Compute = Literal["cpu", "gpu", "inferentia", "serverless", "async", "elastic-inference"]

INSTANCE_TYPE = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>[a-z0-9]+)$")

# vCPUs per instance size for the general-purpose, compute and memory families (ml.t2.medium: 2).
VCPUS = {
    "medium": 2,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "9xlarge": 36,
    "12xlarge": 48,
    "16xlarge": 64,
    "18xlarge": 72,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
}

# Families SageMaker hosts, by profile. "d" families, g4dn, g5, g6, g6e, p4d and p5 carry local NVMe
# storage: SageMaker encrypts it in hardware and rejects KmsKeyId and VolumeSizeInGB for them.
# https://docs.aws.amazon.com/sagemaker/latest/dg/host-instance-storage.html
CPU_EBS_FAMILIES = ("c5", "c6i", "c7i", "m5", "m6i", "m7i", "r5", "r6i", "r7i", "t2")
CPU_NVME_FAMILIES = ("c5d", "m5d", "r5d")
# "G4 and newer": the T4 (g4dn), A10G (g5), L4 (g6), L40S (g6e), A100 (p4d) and H100 (p5).
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p4d", "p5")
# Inferentia2 only: the Hugging Face Neuron image (neuronx) does not run on Inferentia1 (inf1).
INFERENTIA_FAMILIES = ("inf2",)
NVME_FAMILIES = frozenset(CPU_NVME_FAMILIES + GPU_FAMILIES)

# Sizes per family that SageMaker hosting offers for the accelerated families (the CPU families take
# every size in VCPUS that exists for them; SageMaker refuses one that does not, at deploy time).
ACCELERATED_SIZES = {
    "g4dn": ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"),
    "g5": ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
    "g6": ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
    "g6e": ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"),
    "p4d": ("24xlarge",),
    "p5": ("48xlarge",),
    "inf2": ("xlarge", "8xlarge", "24xlarge", "48xlarge"),
}

# Serverless inference: at most 200 concurrent invocations (memory: 1 to 6 GB in 1 GB steps, endpoint_config).
# https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html
SERVERLESS_MAX_CONCURRENCY = 200

# Elastic Inference: closed to new customers on 2023-04-15 and at end of life since April 2024; it only
# ever worked with the PyTorch 1.5 and TensorFlow 2.3 EI containers, never with the Hugging Face ones.
# https://docs.aws.amazon.com/sagemaker/latest/dg/ei.html
# AWS's migration advice is Inferentia or G4; the replacement keeps the accelerator's class.
EI_REPLACEMENT = {"medium": "ml.g4dn.xlarge", "large": "ml.g4dn.xlarge", "xlarge": "ml.g4dn.2xlarge"}
EI_INFERENTIA_REPLACEMENT = "ml.inf2.xlarge"
HOURS_PER_MONTH = 730

# Throughput the CPU profile was measured at, per physical core (2026-12-01, AMD EPYC with AVX-512 VNNI,
# the faithful int8 archive): `make bench-api` gave 206 requests/s (8 clients x 60 s, one short text per
# request, through the real model server on 2 cores), and `make bench`'s one pinned core gave 0.583 of
# the two cores' throughput, so 120 requests/s per core. An AWS vCPU is a hyperthread (ml.c6i.large's 2
# vCPUs are one core), so capacity is counted per core, with its hyperthread sibling as nothing extra: a
# lower bound. The autoscaling target is derived from it (see target_invocations_per_minute).
MEASURED_CPU_REQUESTS_PER_S_PER_CORE = 120.0
# Texts per second one model-server worker answers on one pinned core when requests carry many short texts (the
# batch path's MultiRecord requests): `make bench`'s 402.3 texts/s over 2 cores (2 clients x 64 texts per request) x
# the pinned core's share 0.583 (infra/catalog/measured_throughput.json, realtime_batched_texts_per_s and
# one_core_share; a test keeps them equal). Transform requests are sized from it (infra/config/batch.py).
MEASURED_CPU_BATCHED_TEXTS_PER_S_PER_CORE = 234.5
# Scale out at half the measured capacity: room for longer texts and for the minutes new instances
# take to start.
AUTOSCALING_HEADROOM = 0.5


@dataclass(frozen=True)
class Profile:
    """What one compute profile means for the image, instances, handler and endpoint config."""

    name: Compute
    flavour: Flavour
    families: tuple[str, ...]
    runtime: str  # SAGEBERT_RUNTIME in the container: the handler mode
    default_instance_type: str
    instances: bool  # instance-backed (False: serverless)
    realtime: bool  # answers InvokeEndpoint (False: async answers InvokeEndpointAsync)


PROFILES: dict[str, Profile] = {
    "cpu": Profile("cpu", "cpu", CPU_EBS_FAMILIES + CPU_NVME_FAMILIES, "onnx-int8", "ml.c6i.large", True, True),
    "gpu": Profile("gpu", "gpu", GPU_FAMILIES, "torch", "ml.g4dn.xlarge", True, True),
    "inferentia": Profile("inferentia", "neuronx", INFERENTIA_FAMILIES, "neuron", "ml.inf2.xlarge", True, True),
    "serverless": Profile("serverless", "cpu", (), "onnx-int8", "", False, True),
    "async": Profile("async", "cpu", CPU_EBS_FAMILIES + CPU_NVME_FAMILIES, "onnx-int8", "ml.c6i.large", True, False),
}


def profile(compute: str) -> Profile:
    """The profile for a compute choice other than elastic-inference (which is refused before this)."""
    return PROFILES[compute]


def family(instance_type: str) -> str:
    match = INSTANCE_TYPE.match(instance_type)
    return match["family"] if match else ""


def has_nvme(instance_type: str) -> bool:
    """Local NVMe storage: no KmsKeyId, no VolumeSizeInGB on the endpoint config."""
    return family(instance_type) in NVME_FAMILIES


def vcpus(instance_type: str) -> int:
    match = INSTANCE_TYPE.match(instance_type)
    if not match or match["size"] not in VCPUS:
        raise ValueError(f"{instance_type!r}: unknown instance size")
    return VCPUS[match["size"]]


# "Each vCPU is a thread of a CPU core, except for T2 instances and instances powered by AWS Graviton"
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cpu-options-supported-instances-values.html
ONE_THREAD_PER_CORE_FAMILIES = frozenset({"t2"})


def cores(instance_type: str) -> int:
    """Physical cores: an AWS vCPU is a hyperthread, two per core (ml.c6i.large: 2 vCPUs, 1 core), except T2."""
    threads = 1 if family(instance_type) in ONE_THREAD_PER_CORE_FAMILIES else 2
    return max(1, vcpus(instance_type) // threads)


def check_instance(key: str, instance_type: str, compute: str) -> None:
    """Raise ValueError naming the key unless instance_type is a type of this profile's families."""
    allowed = PROFILES[compute].families
    match = INSTANCE_TYPE.match(instance_type)
    sizes = ACCELERATED_SIZES.get(match["family"], tuple(VCPUS)) if match else ()
    if match and match["family"] in allowed and match["size"] in sizes:
        return
    hint = ""
    if match and match["family"] == "inf1":
        hint = (
            " Inferentia1 (inf1) needs the Neuron SDK 1 images, which the Hugging Face containers do not ship; "
            "use inf2."
        )
    elif match:
        owner = next((p.name for p in PROFILES.values() if match["family"] in p.families), None)
        if owner is not None and owner != compute:
            hint = f" {instance_type} is a {owner} instance type: set endpoint.compute: {owner}."
    example = PROFILES[compute].default_instance_type
    article = "an" if compute[0] in "aeiou" else "a"
    raise ValueError(
        f"{key} = {instance_type!r} is not {article} {compute} instance type; use ml.<family>.<size> with family "
        f"one of {', '.join(allowed)} (e.g. {example}).{hint}"
    )


def target_invocations_per_minute(instance_type: str) -> int:
    """Target tracking value for SageMakerVariantInvocationsPerInstance (invocations per instance per
    minute): the measured CPU throughput per core x the instance's cores x 60 s x the headroom."""
    return math.floor(MEASURED_CPU_REQUESTS_PER_S_PER_CORE * cores(instance_type) * 60 * AUTOSCALING_HEADROOM)


def target_invocations_per_copy(cpu_cores: float, instance_type: str) -> int:
    """Target tracking value for SageMakerInferenceComponentInvocationsPerCopy (invocations per copy per minute):
    the measured CPU throughput per core x the physical cores a copy's cpu_cores vCPUs make (two hyperthreads a
    core, except T2) x 60 s x the headroom; at least 1."""
    threads = 1 if family(instance_type) in ONE_THREAD_PER_CORE_FAMILIES else 2
    per_minute = MEASURED_CPU_REQUESTS_PER_S_PER_CORE * (cpu_cores / threads) * 60 * AUTOSCALING_HEADROOM
    return max(1, math.floor(per_minute))


# Memory (MiB) per vCPU of the CPU families: compute (c) 2 GiB, general purpose (m) 4 GiB, memory (r) 8 GiB;
# T2: medium 4 GiB over 2 vCPUs, larger sizes 4 GiB per vCPU. https://aws.amazon.com/sagemaker/pricing/
MEMORY_MB_PER_VCPU = {"c": 2048, "m": 4096, "r": 8192}


def memory_mb(instance_type: str) -> int:
    """Memory of a CPU instance type (MiB), e.g. ml.c6i.large: 4096."""
    kind = family(instance_type)
    if kind == "t2":
        return 4096 if instance_type.endswith(".medium") else vcpus(instance_type) * 4096
    if kind[0] not in MEMORY_MB_PER_VCPU:
        raise ValueError(f"{instance_type!r}: memory is catalogued for CPU instance types only")
    return vcpus(instance_type) * MEMORY_MB_PER_VCPU[kind[0]]


def server_workers(instance_type: str, threads_per_worker: int) -> int:
    """Model-server workers for a CPU instance with `threads_per_worker` ONNX Runtime threads each
    (SAGEMAKER_MODEL_SERVER_WORKERS): together they use every vCPU and never more."""
    return max(1, vcpus(instance_type) // threads_per_worker)


def ei_replacement(accelerator_type: str | None) -> tuple[str, str]:
    """(G4 replacement, Inferentia replacement) instance types for an Elastic Inference accelerator."""
    size = (accelerator_type or "ml.eia2.medium").rsplit(".", 1)[-1]
    return EI_REPLACEMENT.get(size, "ml.g4dn.xlarge"), EI_INFERENTIA_REPLACEMENT
