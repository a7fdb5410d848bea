"""The front door's contract: the request schema (one file), the limits read from it, the errors.

`predict_request.schema.json` is the one source of truth: API Gateway's request model is built
from it (infra/online/inference_api.py), this module checks bodies against it with messages that say what
was wrong and what is allowed, and the OpenAPI document (`python -m sagebert openapi`) embeds it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("predict_request.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Limits:
    """The numbers a client must respect, as the schema states them."""

    max_texts: int
    min_chars: int
    max_chars: int
    text_pattern: str
    parameters: tuple[str, ...]
    top_k_min: int
    top_k_max: int


def _limits(schema: dict[str, Any]) -> Limits:
    text, array = schema["properties"]["inputs"]["anyOf"]
    top_k = schema["properties"]["parameters"]["properties"]["top_k"]
    return Limits(
        max_texts=array["maxItems"],
        min_chars=text["minLength"],
        max_chars=text["maxLength"],
        text_pattern=text["pattern"],
        parameters=tuple(schema["properties"]["parameters"]["properties"]),
        top_k_min=top_k["minimum"],
        top_k_max=top_k["maximum"],
    )


LIMITS = _limits(SCHEMA)
_HAS_CONTENT = re.compile(LIMITS.text_pattern)


@dataclass(frozen=True)
class ErrorKind:
    status: int
    code: str
    when: str
    source: str  # "front door" (this Lambda) or "API Gateway" (a gateway response)
    retry_after: int | None = None


# Every error a client can get, its status and code: docs/api.md and the OpenAPI document show this table.
ERRORS: tuple[ErrorKind, ...] = (
    ErrorKind(
        400,
        "InvalidBody",
        "the body is not strict UTF-8 JSON (RFC 8259: no NaN or Infinity, no duplicate keys, integers up to 4300 "
        "digits, bounded nesting), or it breaks the request schema",
        "both",
    ),
    ErrorKind(400, "InvalidRequest", "any other request API Gateway refuses", "API Gateway"),
    ErrorKind(401, "Unauthorized", "Cognito auth: the token is missing or invalid", "API Gateway"),
    ErrorKind(
        403, "Forbidden", "no valid IAM signature, API key or token; blocked by WAF; or an unknown route", "API Gateway"
    ),
    ErrorKind(413, "PayloadTooLarge", "the body is larger than the front door's max_body_bytes", "both"),
    ErrorKind(415, "UnsupportedMediaType", "Content-Type is not application/json (charset utf-8)", "both"),
    ErrorKind(429, "Throttled", "over the stage's (or the usage plan's) rate or burst limit", "API Gateway"),
    ErrorKind(429, "QuotaExceeded", "the API key's usage-plan quota for the period is used up", "API Gateway"),
    ErrorKind(500, "InternalError", "an unexpected fault (logged with the request ID)", "both"),
    ErrorKind(502, "ModelError", "the model container failed on a valid request", "front door"),
    ErrorKind(502, "BadGateway", "the front-door Lambda itself failed or was throttled", "API Gateway"),
    ErrorKind(503, "ModelUnavailable", "the endpoint is throttling, not ready or unreachable", "front door", 2),
    ErrorKind(504, "Timeout", "the model did not answer within the read timeout", "both"),
)
BY_CODE = {kind.code: kind for kind in ERRORS}


class ApiError(Exception):
    """An answer other than 200; `code` is one of ERRORS."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = BY_CODE[code]
        self.message = message


class _Refused(ValueError):
    """Raised from inside the JSON parser's hooks: the message is the client's answer."""


def _shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"the key {_shown(key)} appears twice in one object; send each key once")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def _integer(literal: str) -> int:
    try:
        return int(literal)
    except ValueError:  # longer than sys.get_int_max_str_digits() (4300 by default)
        raise _Refused(f"an integer of {len(literal.lstrip('-'))} digits is too long") from None


def parse_json(text: str) -> Any:
    """The body as strict JSON (RFC 8259), or ApiError(InvalidBody) saying why not.

    Python's parser refuses bad bytes in more ways than JSONDecodeError: integers over
    sys.get_int_max_str_digits() raise a plain ValueError, deep nesting RecursionError. It also
    accepts what RFC 8259 does not (NaN, Infinity) and keeps the last of duplicate keys, where
    API Gateway's validator or another parser may keep the first; both are refused here, so every
    reader of the body sees the same request. https://www.rfc-editor.org/rfc/rfc8259#section-4
    """
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_integer)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise ApiError("InvalidBody", f"the body is not valid JSON: {err.msg} at {where}.") from None
    except _Refused as err:
        raise ApiError("InvalidBody", f"the body is not valid JSON: {err}.") from None
    except RecursionError:
        raise ApiError("InvalidBody", "the body's JSON is nested too deeply.") from None
    except ValueError as err:  # any other refusal of the parser: still the body's fault
        raise ApiError("InvalidBody", f"the body is not valid JSON: {_shown(str(err), 120)}.") from None


def check_request(payload: Any) -> int:
    """Raise ApiError(InvalidBody) unless `payload` satisfies the schema; return the number of texts."""
    if not isinstance(payload, dict):
        raise ApiError("InvalidBody", 'the body must be a JSON object {"inputs": str | [str], "parameters": {...}}.')
    unknown = sorted(set(payload) - set(SCHEMA["properties"]))
    if unknown:
        raise ApiError("InvalidBody", f"unknown keys {_shown(unknown, 200)}; allowed: {sorted(SCHEMA['properties'])}.")
    if "inputs" not in payload:
        raise ApiError("InvalidBody", 'the body needs "inputs": a text or a list of texts.')
    inputs = payload["inputs"]
    if isinstance(inputs, str):
        _check_text(inputs, "inputs")
        texts = 1
    elif isinstance(inputs, list):
        if not 1 <= len(inputs) <= LIMITS.max_texts:
            raise ApiError("InvalidBody", f"inputs has {len(inputs)} texts; send 1 to {LIMITS.max_texts}.")
        for index, text in enumerate(inputs):
            _check_text(text, f"inputs[{index}]")
        texts = len(inputs)
    else:
        raise ApiError("InvalidBody", "inputs must be a string or a list of strings.")
    if "parameters" in payload:
        _check_parameters(payload["parameters"])
    return texts


def _check_text(text: Any, where: str) -> None:
    if not isinstance(text, str):
        raise ApiError("InvalidBody", f"{where} must be a string.")
    if not LIMITS.min_chars <= len(text) <= LIMITS.max_chars:
        raise ApiError(
            "InvalidBody", f"{where} has {len(text)} characters; send {LIMITS.min_chars} to {LIMITS.max_chars}."
        )
    if not _HAS_CONTENT.search(text):
        raise ApiError("InvalidBody", f"{where} is only whitespace; send some text.")
    if not text.isascii():
        try:  # JSON can escape a lone UTF-16 surrogate ("\ud800"); no tokenizer takes it
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            problem = f"{where} holds an unpaired surrogate at character {err.start}; send valid Unicode."
            raise ApiError("InvalidBody", problem) from None


def _check_parameters(parameters: Any) -> None:
    if not isinstance(parameters, dict):
        raise ApiError("InvalidBody", "parameters must be a JSON object.")
    unknown = sorted(set(parameters) - set(LIMITS.parameters))
    if unknown:
        raise ApiError("InvalidBody", f"unknown parameters {_shown(unknown, 200)}; allowed: {list(LIMITS.parameters)}.")
    if "top_k" in parameters:
        top_k = parameters["top_k"]
        # Draft 4 (API Gateway's) and the model take only a JSON integer: not 2.0, and never true.
        integral = isinstance(top_k, int) and not isinstance(top_k, bool)
        if not integral or not LIMITS.top_k_min <= top_k <= LIMITS.top_k_max:
            allowed = f"an integer from {LIMITS.top_k_min} to {LIMITS.top_k_max}"
            raise ApiError("InvalidBody", f"parameters.top_k must be {allowed}, got {_shown(top_k)}.")
