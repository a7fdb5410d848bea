"""What a bad config file is told: ConfigError, and the schema walk that names a pydantic error's key.

A pydantic error carries a location (("endpoint", "autoscaling", "max_instances"), or with a
discriminated union the tag too: ("model", "s3", "uri")). walk follows it through the models to the
dotted key a reader wrote and the model that owns it, so the message can say which keys are allowed
there and what the key means. The config reference (sagebert/report/config_reference.py) reads the
schema with the same unwrap, union_members and tag. Imports nothing from infra, so every config module
can use it.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


class ConfigError(Exception):
    """A stage config file that cannot be used; the message says what, where and what to do."""


def walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, list[str]]:
    """Follow an error location through the schema; drop discriminator tags from the key path.

    Returns the model that owns the last key (for "allowed keys" and its description) and the
    dotted key parts.
    """
    current: Any = model
    parts: list[str] = []
    owner: type[BaseModel] | None = None
    for seg in loc:
        members = union_members(current)
        if members is not None:
            # A discriminated union puts the tag ("bundled", "s3", "hub") in the location.
            current = next((m for m in members if tag(m) == seg), None)
            if current is not None:
                continue
        parts.append(str(seg))
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            field = current.model_fields.get(str(seg))
            current = unwrap(field.annotation) if field is not None else None
        else:
            owner, current = None, None
    return owner, parts


def unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] -> X and Optional[Model] -> Model (an optional section is still a section)."""
    if get_origin(annotation) is Annotated:
        return unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0]
    return annotation


def union_members(annotation: Any) -> tuple[type[BaseModel], ...] | None:
    """The members of a discriminated union of models (told apart by `source`), else None."""
    annotation = unwrap(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        members = tuple(a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel))
        return members if members and all(tag(m) for m in members) else None
    return None


def tag(model: type[BaseModel]) -> str | None:
    """The `source` value that picks this member of a discriminated union (None: no `source` key)."""
    field = model.model_fields.get("source")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return str(args[0]) if args else None


def field_doc(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The description of the key at loc under model, in parentheses ("" when it has none)."""
    owner, parts = walk(model, loc)
    field = owner.model_fields.get(parts[-1]) if owner is not None and parts else None
    return f"({field.description})" if field is not None and field.description else ""
