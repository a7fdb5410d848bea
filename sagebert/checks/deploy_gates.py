"""Deploy-time rules that cdk-nag and cfn-lint do not check, run over synthesized templates.

- Export stability (`changed_exports`): CloudFormation refuses to change the value of an export another stack
  imports ("Export ... cannot be updated as it is in use"). A value changes when the resource it names is
  replaced, and a replaced resource with a generated name gets a new name. Comparing two synths (before and after
  a change a user makes every week: a new archive, image tag or container variable) with the resource schemas'
  create-only properties finds every export that such a change would block. Where a schema lacks create-only
  properties the API has (an inference component's name and endpoint), CREATE_ONLY_SUPPLEMENT adds them, each with
  its source.
- Retry safety (`retained_physical_names`): DeletionPolicy Retain keeps a resource even when the rollback of a
  failed first create deletes the rest, so a fixed physical name makes every retry fail with AlreadyExists.
  RetainExceptOnCreate (CDK RETAIN_ON_UPDATE_OR_DELETE) or a generated name avoids that; the rest must be listed
  in RETAINED_NAMES_ALLOWED with a reason.
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
- Endpoint form (`endpoint_form_switches`): moving a fixed-name endpoint between the variant form and the
  inference-component form in place is an update SageMaker documents no path for.
- Named replacement (`named_replacements`): a change that replaces a resource with a fixed physical name, which
  keeps the name, fails: the replacement is created before the old one is deleted.
- Key lifetime (`outlived_keys`): a resource kept after deletion but encrypted with a key deleted with its stack
  holds data nobody can read afterwards (a deleted KMS key decrypts nothing).
  https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html
- Update path (`stuck_scaling_updates`): SageMaker fails an endpoint update that changes the instance type of a
  variant registered for autoscaling, and CloudFormation can only deregister it after the update.
  https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html

The resource schemas are the CloudFormation registry schemas cfn-lint ships (no AWS call).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

Template = Mapping[str, Any]
# The schemas hardly differ by region for the types sagebert uses; one region keeps the answers stable.
SCHEMA_REGION = "us-east-1"

# Resources that may keep a fixed physical name under DeletionPolicy Retain: (type, logical id prefix) -> reason.
# Empty today: every retained resource either has a generated name or uses RetainExceptOnCreate.
RETAINED_NAMES_ALLOWED: dict[tuple[str, str], str] = {}

# Create-only properties the resource schemas do not mark, by type: the API's update call cannot change them, so
# CloudFormation must replace the resource. Used with the schemas' own createOnlyProperties.
CREATE_ONLY_SUPPLEMENT: dict[str, tuple[str, ...]] = {
    # The schema of AWS::SageMaker::InferenceComponent has no createOnlyProperties, but UpdateInferenceComponent takes
    # InferenceComponentName only to name the component, and neither EndpointName nor VariantName (botocore's
    # sagemaker service-2.json, UpdateInferenceComponentInput: Specification, Specifications, RuntimeConfig,
    # DeploymentConfig). https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateInferenceComponent.html
    "AWS::SageMaker::InferenceComponent": ("InferenceComponentName", "EndpointName", "VariantName"),
}


@cache
def _schema(resource_type: str) -> dict[str, Any]:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    try:
        schema: dict[str, Any] = PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, resource_type).schema
    except Exception:  # custom resources and types cfn-lint does not know
        return {}
    return schema


def _paths(resource_type: str, key: str) -> list[list[str]]:
    return [path.removeprefix("/properties/").split("/") for path in _schema(resource_type).get(key, [])]


def create_only_properties(resource_type: str) -> list[list[str]]:
    """Property paths whose change replaces the resource: the schema's createOnlyProperties and, for types whose
    schema lacks them, CREATE_ONLY_SUPPLEMENT."""
    paths = _paths(resource_type, "createOnlyProperties")
    return paths + [[name] for name in CREATE_ONLY_SUPPLEMENT.get(resource_type, ()) if [name] not in paths]


def physical_name_properties(resource_type: str) -> list[str]:
    """Top-level properties that name the resource: its writable primary identifier, and create-only *Name
    properties (EndpointName, RoleName ...)."""
    read_only = {path[0] for path in _paths(resource_type, "readOnlyProperties")}
    names = {path[0] for path in _paths(resource_type, "primaryIdentifier") if path[0] not in read_only}
    schema_create_only = _paths(resource_type, "createOnlyProperties")  # the supplement names other resources too
    names |= {path[0] for path in schema_create_only if len(path) == 1 and path[0].endswith("Name")}
    return sorted(names)


def _at(value: Any, path: list[str]) -> Any:
    """The value at a schema path ("*" for every item of a list); None where it is absent."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "*":
        return [_at(item, rest) for item in value] if isinstance(value, list) else None
    if isinstance(value, list):  # a path through a list without "*": compare item by item
        return [_at(item, path) for item in value]
    return _at(value.get(head), rest) if isinstance(value, dict) else None


def _references(value: Any) -> set[str]:
    """Logical ids a template value refers to (Ref, Fn::GetAtt, Fn::Sub ${X} / ${X.Attr})."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", str(text))}
                found |= _references(inner[1] if isinstance(inner, list) and len(inner) > 1 else None)
            else:
                found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    return found


def replaced_resources(before: Template, after: Template) -> dict[str, str]:
    """Logical id -> why, for the resources of `before` that deploying `after` over it replaces: a create-only
    property changed, or refers to a resource that is itself replaced (its generated name or id changes)."""
    old, new = before.get("Resources", {}), after.get("Resources", {})
    replaced: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for logical_id, resource in new.items():
            if logical_id in replaced or logical_id not in old or old[logical_id]["Type"] != resource["Type"]:
                continue
            old_props, new_props = old[logical_id].get("Properties", {}), resource.get("Properties", {})
            for path in create_only_properties(resource["Type"]):
                old_value, new_value = _at(old_props, path), _at(new_props, path)
                name = "/".join(path)
                if old_value != new_value:
                    replaced[logical_id] = f"its create-only property {name} changes"
                elif refs := sorted(_references(new_value) & set(replaced)):
                    replaced[logical_id] = f"its create-only property {name} refers to {refs[0]}, which is replaced"
                else:
                    continue
                changed = True
                break
    return replaced


@dataclass(frozen=True)
class Export:
    stack: str
    output: str
    name: str
    value: Any


def exports(templates: Mapping[str, Template]) -> list[Export]:
    """Every output with an export name, by stack (export names as synthesized: literal strings)."""
    found = []
    for stack, template in sorted(templates.items()):
        for output, spec in sorted(template.get("Outputs", {}).items()):
            name = spec.get("Export", {}).get("Name")
            if isinstance(name, str):
                found.append(Export(stack, output, name, spec["Value"]))
    return found


def imported_names(templates: Mapping[str, Template]) -> set[str]:
    return {name for template in templates.values() for name in _imports(template)}


def _imports(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Fn::ImportValue" and isinstance(inner, str):
                yield inner
            else:
                yield from _imports(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _imports(inner)


def changed_exports(before: Mapping[str, Template], after: Mapping[str, Template]) -> list[str]:
    """Exports another stack imports whose value deploying `after` over `before` would change (one message each).

    Both are one stage's templates by stack name."""
    used = imported_names(before)
    problems = []
    after_exports = {(e.stack, e.name): e for e in exports(after)}
    for export in exports(before):
        if export.name not in used:
            continue
        new = after_exports.get((export.stack, export.name))
        if new is None:
            continue  # removed: CloudFormation refuses that too, but only while an importer stays (cfn-lint sees it)
        if new.value != export.value:
            problems.append(
                f"{export.stack} export {export.name}: its value changes from {export.value} to {new.value}"
            )
            continue
        replaced = replaced_resources(before[export.stack], after[export.stack])
        for logical_id in sorted(_references(export.value) & set(replaced)):
            problems.append(
                f"{export.stack} export {export.name} ({export.output}) names {logical_id}, which the change replaces "
                f"({replaced[logical_id]}): its generated name changes, and CloudFormation refuses to update an "
                "export another stack imports. Let the importing stack own its copy, or pass a value replacement "
                "keeps."
            )
    return problems


def fragile_exports(templates: Mapping[str, Template]) -> list[str]:
    """The one-synth form of the export-stability gate, for `make synth`: exports another stack imports that name
    a resource with a generated name whose every property set in the template is create-only (a SageMaker Model,
    say), so any change to it replaces and renames it. (`changed_exports` compares two synths and sees the rest.)"""
    used = imported_names(templates)
    problems = []
    for export in exports(templates):
        if export.name not in used:
            continue
        resources = templates[export.stack].get("Resources", {})
        for logical_id in sorted(_references(export.value) & set(resources)):
            resource = resources[logical_id]
            resource_type, props = resource["Type"], resource.get("Properties", {})
            if any(name in props for name in physical_name_properties(resource_type)):
                continue  # a fixed name: replacement would fail on it anyway, and the name does not change
            create_only = {path[0] for path in create_only_properties(resource_type)}
            if props and set(props) <= create_only:
                problems.append(
                    f"{export.stack} export {export.name} names {logical_id} ({resource_type}): every property it sets "
                    "is create-only, so any change replaces it under a new generated name, and CloudFormation refuses "
                    "to update an export another stack imports. Let the importing stack own its copy."
                )
    return problems


@dataclass(frozen=True)
class RetainedName:
    stack: str
    logical_id: str
    resource_type: str
    properties: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.stack}: {self.logical_id} ({self.resource_type}) has DeletionPolicy Retain and a fixed "
            f"{', '.join(self.properties)}: after a failed first create the rollback keeps it, and every retry fails "
            "with AlreadyExists. Use RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE or a generated name, or list it in "
            "sagebert/checks/deploy_gates.py RETAINED_NAMES_ALLOWED with the reason."
        )


def retained_physical_names(
    templates: Mapping[str, Template], allowed: Mapping[tuple[str, str], str] = RETAINED_NAMES_ALLOWED
) -> list[RetainedName]:
    """Resources with DeletionPolicy Retain and a physical name set in the template, unless allow-listed."""
    found = []
    for stack, template in sorted(templates.items()):
        for logical_id, resource in sorted(template.get("Resources", {}).items()):
            if resource.get("DeletionPolicy") != "Retain":
                continue
            resource_type = resource["Type"]
            if any(t == resource_type and logical_id.startswith(p) for t, p in allowed):
                continue
            named = [p for p in physical_name_properties(resource_type) if p in resource.get("Properties", {})]
            if named:
                found.append(RetainedName(stack, logical_id, resource_type, tuple(named)))
    return found


SCALABLE_TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"


def stuck_scaling_updates(before: Mapping[str, Template], after: Mapping[str, Template]) -> list[str]:
    """Endpoint updates SageMaker would refuse: a production variant registered for autoscaling in `before` (and
    still in `after`) changes its instance type. One message per variant, with the two-step way through."""
    problems = []
    registered = _scaled_variants(before)
    for stack, template in sorted(after.items()):
        for (endpoint, variant), instance_type in _variant_types(template).items():
            old_type = _variant_types(before.get(stack, {})).get((endpoint, variant))
            if old_type is None or old_type == instance_type or (endpoint, variant) not in registered:
                continue
            problems.append(
                f"{stack}: endpoint {endpoint} variant {variant} changes instance type {old_type} -> {instance_type} "
                "while registered for autoscaling; SageMaker refuses that update (and CloudFormation deregisters only "
                "after it). Deploy in two steps: 1) remove endpoint.autoscaling (keep the instance type) and deploy; "
                "2) set the new instance_type, restore endpoint.autoscaling, deploy. See docs/endpoint.md, "
                "'Changing the instance type of an autoscaled endpoint'."
            )
    return problems


def _endpoint_names(template: Template) -> dict[str, str]:
    """EndpointConfig logical id -> the name of the endpoint that uses it."""
    found = {}
    for resource in template.get("Resources", {}).values():
        if resource["Type"] == "AWS::SageMaker::Endpoint":
            props = resource.get("Properties", {})
            for config_id in _references(props.get("EndpointConfigName")):
                found[config_id] = str(props.get("EndpointName"))
    return found


def _variant_types(template: Template) -> dict[tuple[str, str], str]:
    """(endpoint name, variant name) -> instance type."""
    names = _endpoint_names(template)
    found = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] != "AWS::SageMaker::EndpointConfig" or logical_id not in names:
            continue
        for variant in resource.get("Properties", {}).get("ProductionVariants", []):
            if "InstanceType" in variant:
                found[(names[logical_id], variant["VariantName"])] = json.dumps(variant["InstanceType"]).strip('"')
    return found


def _scaled_variants(templates: Mapping[str, Template]) -> set[tuple[str, str]]:
    """(endpoint name, variant name) registered as SageMaker scalable targets."""
    found = set()
    for template in templates.values():
        for resource in template.get("Resources", {}).values():
            if resource["Type"] != SCALABLE_TARGET:
                continue
            match = re.match(r"^endpoint/([^/]+)/variant/([^/]+)$", str(resource["Properties"].get("ResourceId")))
            if match:
                found.add((match[1], match[2]))
    return found


# DeletionPolicy values that keep a resource after its stack is deleted.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
KEPT = ("Retain", "RetainExceptOnCreate")
KMS_KEY = "AWS::KMS::Key"


def _encryption_references(properties: Any) -> set[str]:
    """What a resource's encryption properties (KmsKeyId, KMSMasterKeyID, KmsMasterKeyId, EncryptionKey ...) refer
    to: logical ids, and export names as "import:<name>"."""
    found: set[str] = set()
    if isinstance(properties, dict):
        for key, value in properties.items():
            if re.search(r"(?i)kms|encryptionkey", key):
                found |= _references(value) | {f"import:{name}" for name in _imports(value)}
            else:
                found |= _encryption_references(value)
    elif isinstance(properties, list):
        for value in properties:
            found |= _encryption_references(value)
    return found


def outlived_keys(templates: Mapping[str, Template]) -> list[str]:
    """Resources kept after deletion (DeletionPolicy Retain or RetainExceptOnCreate) that are encrypted with a KMS key
    deleted with its stack: what they hold can no longer be read once the key is gone (a deleted key cannot decrypt),
    and where they have a fixed name the next deploy fails on it. Keys are followed within a stack and through
    exports. One message per resource; `templates` are one stage's, by stack name."""
    exported: dict[str, tuple[str, Any]] = {e.name: (e.stack, e.value) for e in exports(templates)}
    problems = []
    for stack, template in sorted(templates.items()):
        resources = template.get("Resources", {})
        for logical_id, resource in sorted(resources.items()):
            if resource.get("DeletionPolicy") not in KEPT:
                continue
            for reference in sorted(_encryption_references(resource.get("Properties", {}))):
                key_stack, key_resources, key_ids = stack, resources, {reference}
                if reference.startswith("import:"):
                    if reference.removeprefix("import:") not in exported:
                        continue
                    key_stack, value = exported[reference.removeprefix("import:")]
                    key_resources = templates[key_stack].get("Resources", {})
                    key_ids = _references(value)
                for key_id in sorted(key_ids):
                    key = key_resources.get(key_id, {})
                    if key.get("Type") == KMS_KEY and key.get("DeletionPolicy") not in KEPT:
                        problems.append(
                            f"{stack}: {logical_id} ({resource['Type']}) is kept after deletion "
                            f"({resource['DeletionPolicy']}) but its key {key_stack}/{key_id} is deleted with its "
                            "stack: what it holds becomes unreadable. Delete it with the key (retain_data: false "
                            "stages: infra.operations.log_retention.delete_with_the_key), or keep the key too."
                        )
    return problems


def _endpoint_forms(template: Template) -> dict[str, str]:
    """Endpoint name -> "inference-component" (its config's variants carry no model: components bring them) or
    "variant" (each production variant names its model)."""
    names = _endpoint_names(template)
    forms = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] == "AWS::SageMaker::EndpointConfig" and logical_id in names:
            variants = resource.get("Properties", {}).get("ProductionVariants", [])
            with_model = any("ModelName" in variant for variant in variants)
            forms[names[logical_id]] = "variant" if with_model else "inference-component"
    return forms


def endpoint_form_switches(before: Mapping[str, Template], after: Mapping[str, Template]) -> list[str]:
    """Endpoints that `after` would move between the variant form and the inference-component form in place (same
    name). SageMaker documents no in-place path between the two (UpdateEndpoint's reference and the inference
    component guide describe each form, not a move: https://docs.aws.amazon.com/sagemaker/latest/APIReference/
    API_UpdateEndpoint.html), so sagebert does not rely on one: one message per endpoint, with the safe way."""
    problems = []
    for stack, template in sorted(after.items()):
        old = _endpoint_forms(before.get(stack, {}))
        for endpoint, form in sorted(_endpoint_forms(template).items()):
            if endpoint in old and old[endpoint] != form:
                problems.append(
                    f"{stack}: endpoint {endpoint} would move from the {old[endpoint]} form to the {form} form in "
                    "place (endpoint.inference_component added or removed); SageMaker documents no such update. "
                    "Deploy it under a new endpoint.name (the old endpoint is then replaced), or destroy the stage's "
                    "Serving stack first."
                )
    return problems


def named_replacements(before: Mapping[str, Template], after: Mapping[str, Template]) -> list[str]:
    """Resources that deploying `after` over `before` replaces while keeping their fixed physical name: CloudFormation
    creates the replacement first, under the same name, and the update fails ("cannot update a stack when a
    custom-named resource requires replacing"). One message per resource, with the way through.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-name.html"""
    problems = []
    for stack, template in sorted(after.items()):
        if stack not in before:
            continue
        old = before[stack].get("Resources", {})
        for logical_id, why in sorted(replaced_resources(before[stack], template).items()):
            resource = template["Resources"][logical_id]
            props, old_props = resource.get("Properties", {}), old[logical_id].get("Properties", {})
            # The name properties together identify it (a scalable target: resource id, dimension and namespace): the
            # replacement collides only when every one of them stays the same. A resource replaced because its parent
            # is (a scaling policy of a replaced scalable target) gets its name in the new parent's scope: no collision.
            kept = [name for name in physical_name_properties(resource["Type"]) if name in props]
            if "refers to" in why:
                continue
            if kept and all(props[name] == old_props.get(name) for name in kept):
                problems.append(
                    f"{stack}: {logical_id} ({resource['Type']}) is replaced ({why}) but keeps its fixed "
                    f"{', '.join(kept)}: CloudFormation cannot create the replacement under a name in use. Change "
                    "the name with the change, or revert the change."
                )
    return problems
