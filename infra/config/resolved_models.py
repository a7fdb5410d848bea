"""The resolved-models file: which model package version each registry group's latest Approved one was, as
`python -m sagebert resolve-models` found it with credentials (the promotion pipeline runs it before synth).

Synth never calls AWS, so a stage with `model: {source: registry}` and no `model.version` deploys the version this
file names for its group. app.py reads the file once (absent: no group is resolved); a file that does not match
the format below fails synth with a message naming the file and the bad key.

    {"format": 1,
     "groups": {"<group>": {"model_package_arn": "arn:...:model-package/<group>/<n>", "version": <n>,
                            "approval_status": "Approved", "resolved_at": "<ISO 8601 UTC>"}}}
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from infra.config.base import Strict
from infra.config.errors import ConfigError
from infra.config.registry import MODEL_PACKAGE_GROUP_NAME

# Relative to the repository root (app.py resolves it); `resolve-models` writes it there.
RESOLVED_MODELS_FILE = "build/resolved-models.json"
# A model package version's ARN: arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/<version>.
MODEL_PACKAGE_ARN = r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}/\d+$"


class ResolvedGroup(Strict):
    """One group's resolution: its latest Approved model package when `resolve-models` ran."""

    model_package_arn: str = Field(pattern=MODEL_PACKAGE_ARN, description="The resolved model package version's ARN.")
    version: int = Field(ge=1, description="Its version in the group (the ARN's last part).")
    approval_status: Literal["Approved"] = Field(description="Only Approved versions are ever resolved.")
    resolved_at: datetime = Field(description="When resolve-models read the registry (ISO 8601, UTC).")

    @field_validator("resolved_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.utcoffset() != timedelta(0):
            raise ValueError("must be an ISO 8601 time in UTC (ending in Z or +00:00)")
        return value

    @model_validator(mode="after")
    def _arn_names_version(self) -> ResolvedGroup:
        if not self.model_package_arn.endswith(f"/{self.version}"):
            raise ValueError(f"model_package_arn {self.model_package_arn} does not end in version /{self.version}")
        return self


class ResolvedModels(Strict):
    """The whole file: format 1, group name -> its resolution."""

    format: Literal[1] = Field(description="Version of this file's layout.")
    groups: dict[str, ResolvedGroup] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _arns_name_groups(self) -> ResolvedModels:
        for name, group in self.groups.items():
            if not _GROUP.match(name):
                raise ValueError(f"groups: {name!r} is not a model package group name")
            if f":model-package/{name}/" not in group.model_package_arn:
                raise ValueError(f"groups.{name}.model_package_arn {group.model_package_arn} is not in group {name}")
        return self

    def version(self, group: str) -> int | None:
        """The resolved version of `group` (None: the file does not name it)."""
        entry = self.groups.get(group)
        return entry.version if entry is not None else None


def load_resolved_models(path: Path) -> ResolvedModels:
    """The file at `path`, validated; an empty resolution when it does not exist."""
    if not path.is_file():
        return ResolvedModels(format=1)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON: {err}. {_REWRITE}") from err
    try:
        return ResolvedModels.model_validate(raw)
    except ValidationError as err:
        lines = []
        for error in err.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(top level)"
            message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
            lines.append(f"{key}: {message}")
        raise ConfigError(
            f"{path}: not a resolved-models file:\n" + "\n".join(f"  - {x}" for x in lines) + f"\n{_REWRITE}"
        ) from None


_GROUP = re.compile(MODEL_PACKAGE_GROUP_NAME)
_REWRITE = "Delete it and run `python -m sagebert resolve-models --stage <stage>` again (it rewrites the file)."
