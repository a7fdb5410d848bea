"""Model sources in the stage config: where a SageMaker model's data and container come from.

`model:` (and each A/B or shadow variant's `model:`) is one of these, told apart by `source`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from infra.catalog import images as image_catalog
from infra.config.base import ACCOUNT_ID, KMS_KEY_ARN, Strict
from infra.config.registry import MODEL_PACKAGE_GROUP_NAME


class ContainerSettings(Strict):
    """Which Hugging Face inference container (DLC) serves the model."""

    transformers_version: str = Field(
        "4.51.3",
        description="Transformers version of the Hugging Face DLC; must be in infra/catalog/dlc_images.json "
        "(full version, e.g. 4.51.3).",
    )
    pytorch_version: str = Field(
        "2.6.0", description="PyTorch version of the DLC; must be in infra/catalog/dlc_images.json."
    )

    @model_validator(mode="after")
    def _known_image(self) -> ContainerSettings:
        image_catalog.find(self.transformers_version, self.pytorch_version)  # raises with choices
        return self


class BundledModel(Strict):
    """The model archive that `make package` builds from the project's own model folder."""

    source: Literal["bundled"] = Field(description="Model data comes from a local archive.")
    artifact: str = Field(
        "build/model.tar.gz",
        description="Path (relative to the repository root) of the model.tar.gz uploaded as a CDK "
        "file asset. `make synth` builds the default one when it is missing.",
    )
    network_isolation: bool = Field(
        True, description="Run the container with no network access (EnableNetworkIsolation)."
    )
    require_int8: bool = Field(
        False,
        description="Refuse to synthesize when the archive serves fp32 ONNX because int8 missed its tolerance "
        "on the CPU that packaged it (false: ship fp32 ONNX with make package's warning). `make package "
        "REQUIRE_INT8=1` stops at packaging instead.",
    )
    container: ContainerSettings = Field(default_factory=ContainerSettings)


class S3Model(Strict):
    """A model.tar.gz already in S3, e.g. written by a training job or a release pipeline."""

    source: Literal["s3"] = Field(description="Model data is an existing S3 object.")
    uri: str = Field(
        description="s3://bucket/key/model.tar.gz. The execution role may read this one object.",
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+\.tar\.gz$",
    )
    kms_key_arn: str | None = Field(
        None,
        description="ARN of the KMS key that encrypts the object, if it is SSE-KMS encrypted; the "
        "execution role may decrypt with it.",
        pattern=KMS_KEY_ARN,
    )
    network_isolation: bool = Field(
        True, description="Run the container with no network access (EnableNetworkIsolation)."
    )
    container: ContainerSettings = Field(default_factory=ContainerSettings)


class HubModel(Strict):
    """A Hugging Face Hub model id: the container downloads it at every start-up."""

    source: Literal["hub"] = Field(description="The container downloads the model from the Hub.")
    model_id: str = Field(
        description="Hub model id (HF_MODEL_ID), e.g. distilbert-base-uncased-finetuned-sst-2-english.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$",
    )
    task: Literal[
        "text-classification",
        "token-classification",
        "feature-extraction",
        "fill-mask",
        "question-answering",
        "zero-shot-classification",
    ] = Field(description="Pipeline task (HF_TASK).")
    network_isolation: bool = Field(
        False,
        description="Must stay false: a Hub model is downloaded at start-up, which isolation forbids.",
    )
    allow_download_in_production: bool = Field(
        False,
        description="A production stage refuses Hub downloads (start-up then depends on the Hub) unless this is true.",
    )
    container: ContainerSettings = Field(default_factory=ContainerSettings)

    @model_validator(mode="after")
    def _isolation_needs_local_weights(self) -> HubModel:
        if self.network_isolation:
            raise ValueError(
                "model.network_isolation = true with model.source = hub: the container must "
                "download the model at start-up, which network isolation blocks. Package the "
                "model (source: bundled or s3) or set network_isolation: false."
            )
        return self


class RegistryModel(Strict):
    """A model package version in the project's SageMaker Model Registry group (`registry:` on the owner
    stage). Synth never calls AWS: the version is `version`, or the group's entry in the resolved-models file
    that `python -m sagebert resolve-models` writes with credentials (the promotion pipeline runs it before
    synth: the latest Approved version)."""

    source: Literal["registry"] = Field(description="Model data and image come from a registered model package.")
    group: str = Field(
        pattern=MODEL_PACKAGE_GROUP_NAME,
        description="The model package group to deploy from (the owner stage's `registry.group`).",
    )
    version: int | None = Field(
        None,
        ge=1,
        description="Model package version to deploy. Absent: the version the resolved-models file names for "
        "the group (`python -m sagebert resolve-models`); without either, synth refuses.",
    )
    group_account: str | None = Field(
        None,
        pattern=ACCOUNT_ID,
        description="Account that owns the group, when it is not this stage's (its region is this stage's).",
    )
    model_data_prefix: str = Field(
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([A-Za-z0-9_.-]+/)+$",
        description="s3://bucket/prefix/ under which registered versions' archives live (the owner stage's "
        "artifact bucket and `registry.prefix`): the execution role may read only there.",
    )
    # Required: `register` uploads every archive encrypted with the owner's artifact key (the bucket's default), so
    # an execution role without kms:Decrypt on it could read none of them.
    kms_key_arn: str = Field(
        description="ARN of the KMS key that encrypts the registered archives: the owner stage's artifact key (its "
        "Storage stack output RegistryModelDataKeyArn); the execution role may decrypt with it. Required: `register` "
        "encrypts every archive with that key.",
        pattern=KMS_KEY_ARN,
    )
    network_isolation: bool = Field(
        True, description="Run the container with no network access (EnableNetworkIsolation)."
    )


# The sources whose container image the stage picks from the catalog (`container:`); a registry model's image is the
# one its model package names, chosen when it was registered.
ContainerModel = BundledModel | S3Model | HubModel
ModelSource = Annotated[BundledModel | S3Model | HubModel | RegistryModel, Field(discriminator="source")]
