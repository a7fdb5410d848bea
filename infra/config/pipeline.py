"""Typed settings of the promotion pipeline: config/pipeline.yaml, validated at synth.

`pipeline` is a reserved name in config/: the file holds the pipeline's settings, not a stage. It
names the stages the pipeline promotes, in order; each must have its own config/<name>.yaml, and with
the pipeline enabled each of those must pin `account` and `region` (CDK Pipelines deploys every stage
to an explicit environment). A bad file fails synth with one message naming the file, each bad key,
its value and what is allowed, as the stage files do (infra/config/stage.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from infra.config.base import ACCOUNT_ID, EMAIL, Strict
from infra.config.errors import ConfigError, field_doc, walk
from infra.config.model import RegistryModel
from infra.config.stage import PIPELINE_FILE, STAGE_NAME, StageConfig

# GitHub's owner and repository names: letters, digits, '-', '_' and '.'.
REPOSITORY = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"
# A git branch name of safe characters, not starting with '-' (git check-ref-format's other rules, which
# need look-arounds pydantic's regex engine lacks, are checked in PipelineConfig._branch).
BRANCH = r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}$"
# CodeStar Connections (the service's old name) and CodeConnections ARNs are both accepted by CodePipeline.
CONNECTION_ARN = (
    r"^arn:aws[-a-z]*:(codestar-connections|codeconnections):[a-z]{2}(-[a-z]+)+-\d:\d{12}:connection/[0-9a-f-]{36}$"
)
REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"


class PipelineConfig(Strict):
    """The promotion pipeline (CDK Pipelines): source, the tooling account it lives in, the stages it promotes."""

    enabled: bool = Field(
        False,
        description="Synthesize the pipeline stack SageBert-Pipeline. Needs account and region in every promoted "
        "stage's file; false: no pipeline, the stages still synthesize and deploy by hand.",
    )
    repository: str = Field(
        pattern=REPOSITORY,
        description="GitHub repository the pipeline builds, owner/name (e.g. example-org/sagebert).",
    )
    branch: str = Field("main", pattern=BRANCH, description="Branch whose pushes start the pipeline.")
    connection_arn: str = Field(
        pattern=CONNECTION_ARN,
        description="ARN of the CodeStar (CodeConnections) connection to GitHub, created and authorized once in "
        "the console: arn:aws:codestar-connections:<region>:<account>:connection/<id> (or codeconnections).",
    )
    account: str = Field(
        pattern=ACCOUNT_ID, description="Tooling account (12 digits) the pipeline itself is deployed to."
    )
    region: str = Field(pattern=REGION, description="Region of the pipeline itself, e.g. eu-west-1.")
    stages: list[str] = Field(
        ["dev", "staging", "prod"],
        min_length=1,
        description="Stages promoted, in order; each needs config/<name>.yaml with account and region.",
    )
    approval_before: list[str] = Field(
        ["prod"],
        description="Stages that wait for a manual approval in the pipeline before they deploy; each must be in "
        "stages.",
    )
    notification_email: str | None = Field(
        None,
        pattern=EMAIL,
        description="Email subscribed to the pipeline's notifications (approval needed, execution failed); it must "
        "confirm the subscription. Null: no topic.",
    )

    @field_validator("branch")
    @classmethod
    def _branch(cls, branch: str) -> str:
        if ".." in branch or "//" in branch or branch.endswith(("/", ".", ".lock")):
            raise ValueError(
                f"branch = {branch!r} is not a git branch name (no '..' or '//', no trailing '/', '.' or "
                "'.lock'); e.g. main or release/v2."
            )
        return branch

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, stages: list[str]) -> list[str]:
        for index, name in enumerate(stages):
            if name == Path(PIPELINE_FILE).stem:
                raise ValueError(
                    f"stages[{index}] = {name!r}: `pipeline` is reserved for config/{PIPELINE_FILE} (these "
                    "settings) and is never a stage; name the stage files' stems, e.g. [dev, staging, prod]."
                )
            if not STAGE_NAME.match(name):
                raise ValueError(
                    f"stages[{index}] = {name!r} is not a stage name; it must match {STAGE_NAME.pattern} (the stem "
                    "of a file in config/, e.g. dev for config/dev.yaml)."
                )
        if len(set(stages)) != len(stages):
            raise ValueError(f"stages = {stages!r} lists a stage twice; a stage is deployed once per promotion.")
        return stages

    @model_validator(mode="after")
    def _approvals_name_stages(self) -> PipelineConfig:
        for index, name in enumerate(self.approval_before):
            if name not in self.stages:
                raise ValueError(
                    f"approval_before[{index}] = {name!r} is not a promoted stage; allowed: {', '.join(self.stages)}."
                )
        if len(set(self.approval_before)) != len(self.approval_before):
            raise ValueError(f"approval_before = {self.approval_before!r} lists a stage twice; list each once.")
        return self


def load_pipeline_config(config_dir: Path, stages: dict[str, StageConfig]) -> PipelineConfig | None:
    """config_dir/pipeline.yaml checked against the stage files (None when there is no such file).

    `stages` are the stage configs load_all read from the same folder. Every listed stage must exist;
    with `enabled: true`, each must also pin account and region.
    """
    path = config_dir / PIPELINE_FILE
    if not path.is_file():
        _registry_promotion_checks(config_dir, stages, None)
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}.")
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(error) for error in err.errors()]
        raise ConfigError(f"{path}: invalid configuration:\n" + "\n".join(f"  - {x}" for x in lines)) from None
    problems: list[str] = []
    for index, name in enumerate(config.stages):
        if name not in stages:
            problems.append(
                f"stages[{index}] = {name!r} has no stage file {config_dir / (name + '.yaml')}; stages in "
                f"{config_dir}: {', '.join(sorted(stages)) or 'none'}."
            )
        elif config.enabled:
            missing = [key for key in ("account", "region") if getattr(stages[name], key) is None]
            if missing:
                problems.append(
                    f"stages[{index}] = {name!r}: {config_dir / (name + '.yaml')} has no {' and no '.join(missing)}; "
                    "CDK Pipelines deploys each stage to an explicit environment. Set account: '<12 digits>' and "
                    "region: <region> in that file, or set enabled: false here."
                )
    if problems:
        raise ConfigError(f"{path}: invalid configuration:\n" + "\n".join(f"  - {x}" for x in problems))
    _registry_promotion_checks(config_dir, stages, config)
    return config


def _registry_promotion_checks(
    config_dir: Path, stages: dict[str, StageConfig], pipeline: PipelineConfig | None
) -> None:
    """A production stage deploys a named registry version: one pinned in its file, or the latest Approved one that
    the enabled pipeline resolves (and may read) before it synthesizes. A by-hand deploy of "whatever
    build/resolved-models.json says" would put an unreviewed choice on production."""
    promoted = set(pipeline.stages) if pipeline is not None and pipeline.enabled else set()
    owners = [c for c in stages.values() if c.registry is not None and c.registry.owner]
    for name, config in stages.items():
        for key, model in config.model_sources():
            if not isinstance(model, RegistryModel) or model.version is not None:
                continue
            where = f"{config_dir / (name + '.yaml')}: {key}"
            if config.production and name not in promoted:
                raise ConfigError(
                    f"{where}.source = registry with no {key}.version and production: true, and no enabled promotion "
                    f"pipeline deploys stage {name}: production would run whatever the last local resolve-models "
                    f"found. Pin {key}.version (the approved version to run), or promote {name} with the pipeline "
                    f"({PIPELINE_FILE}: enabled: true, {name} in stages), which resolves the latest Approved version."
                )
            if pipeline is None or name not in promoted:
                continue
            account = model.group_account or config.account
            owner = next((o for o in owners if o.registry is not None and o.registry.group == model.group), None)
            shared = owner.registry.share_with_accounts if owner is not None and owner.registry is not None else None
            if shared is not None and account != pipeline.account and pipeline.account not in shared:
                raise ConfigError(
                    f"{where}: the pipeline's synth step resolves group {model.group} (account {account}) from the "
                    f"tooling account {pipeline.account}, which the group's resource policy does not name. Add "
                    f"'{pipeline.account}' to registry.share_with_accounts of the stage that owns the group, or "
                    f"pin {key}.version."
                )


def _describe(error: Any) -> str:
    """One line per pydantic error: key, bad value, what is allowed (as infra.config.stage does for stages)."""
    key = ".".join(walk(PipelineConfig, error["loc"])[1]) or "(top level)"
    doc = field_doc(PipelineConfig, error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (value {error['input']!r}); allowed keys: {', '.join(PipelineConfig.model_fields)}."
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    if error["type"] == "missing":
        return f"{key}: required key is missing. {doc}".rstrip()
    if error["type"] == "string_pattern_mismatch":
        return f"{key} = {error['input']!r}: does not match {error['ctx']['pattern']}. {doc}".rstrip()
    return f"{key} = {error['input']!r}: {error['msg']}. {doc}".rstrip()
