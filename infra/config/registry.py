"""`registry:` in a stage file: the project's SageMaker Model Registry group (a model package group) and who
may read it. One stage owns the group (creates it; `python -m sagebert register --stage <it>` registers
there); stages that deploy from it name it in `model: {source: registry, group: ...}`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from infra.config.base import ACCOUNT_ID, KEY_PREFIX, Strict

# CreateModelPackageGroup's ModelPackageGroupName
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateModelPackageGroup.html).
MODEL_PACKAGE_GROUP_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


class RegistrySettings(Strict):
    """The project's model package group: registered model versions wait there for approval; the approved
    version is what stages with `model.source: registry` deploy."""

    group: str = Field(
        "sagebert-models",
        pattern=MODEL_PACKAGE_GROUP_NAME,
        description="Name of the model package group (one per project).",
    )
    owner: bool = Field(
        False,
        description="This stage creates the group (exactly one stage of a project: the one whose account "
        "registers models). Other stages only deploy from it.",
    )
    prefix: str = Field(
        "registry/",
        pattern=KEY_PREFIX,
        description="Key prefix in the owner stage's artifact bucket under which `register` uploads each "
        "version's model.tar.gz and metrics.",
    )
    share_with_accounts: list[Annotated[str, StringConstraints(pattern=ACCOUNT_ID)]] = Field(
        default_factory=list,
        description="Accounts (12 digits) whose stages deploy from this group, and the promotion pipeline's tooling "
        "account when it resolves versions: the group's resource policy lets them describe and list its model "
        "packages, and the bucket and key let their model execution roles read the archives under `prefix`. Owner "
        "stage only; leave empty when every stage is in one account.",
    )

    @model_validator(mode="after")
    def _sharing_needs_ownership(self) -> RegistrySettings:
        if self.share_with_accounts and not self.owner:
            raise ValueError(
                "registry.share_with_accounts is set on a stage that does not own the group: the resource "
                "policy lives on the owner stage's group. Move it there, or set registry.owner: true here."
            )
        return self
