"""The Service Authorization Reference, offline: which resource types each IAM action is authorized against, and the
ARN formats of each type.

cfn-lint ships the reference as cfnlint/data/AdditionalSpecs/Policies.json; reading it here (rather than a list of
our own) means a call that names a resource type its action does not have is caught as a table error, and a
resource ARN is typed by the formats AWS publishes.
https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

# The Service Authorization Reference as cfn-lint bundles it: service -> Actions (action -> Resources: types) and
# Resources (type -> ARNFormats).
POLICIES_JSON = ("data", "AdditionalSpecs", "Policies.json")


@cache
def _service_authorization() -> dict[str, Any]:
    import cfnlint

    path = Path(cfnlint.__file__).parent.joinpath(*POLICIES_JSON)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def resource_types(action: str) -> list[str] | None:
    """The resource types the Service Authorization data lists for `action` (lower case; [] for actions that take
    only "*"), None when it does not know the action."""
    service, _, name = action.partition(":")
    spec = _service_authorization().get(service.lower(), {}).get("Actions", {}).get(name.lower())
    if spec is None:
        return None
    return [str(t).lower() for t in spec.get("Resources", [])]


def arn_patterns(service: str, resource_type: str) -> list[str]:
    """The ARN formats of a resource type (`${Partition}` etc. and `.*` as the data spells them)."""
    resources = _service_authorization().get(service.lower(), {}).get("Resources", {})
    for name, spec in resources.items():
        if name.lower() == resource_type:
            return [str(f) for f in spec.get("ARNFormats", [])]
    return []


def arn_fits(arn: str, service: str, resource_type: str) -> bool:
    """Whether `arn` has the shape of the resource type's ARN formats (unknown formats fit)."""
    patterns = arn_patterns(service, resource_type)
    if not patterns or arn == "*":
        return True
    for pattern in patterns:
        regex = re.escape(pattern).replace(r"\.\*", ".*")
        regex = re.sub(r"\\\$\\\{[A-Za-z]+\\\}", "[^:]*", regex)
        if re.fullmatch(regex, arn):
            return True
    return False
