"""Property-based: whatever a client sends, the front door answers; a client fault is never a 5xx.

Thousands of generated bodies and headers go through the real Lambda handler (Powertools and
all), with a Stubber answering for the endpoint. The request schema file, checked by the
`jsonschema` library, is the oracle: a well-formed JSON body is accepted exactly when the schema
accepts it.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from botocore.stub import Stubber
from front_door.contract import SCHEMA
from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

from tests.unit.front_door_support import HANDLER_ENV, Context, event, model_answer

ORACLE = jsonschema.Draft4Validator(SCHEMA)
CLIENT_STATUSES = {200, 400, 413, 415}

texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.sampled_from(["I loved it", " ", "\u3000", "\ud800", "a" * 10_000, "b" * 10_001, "\u00e9t\u00e9"]),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)
top_k = st.one_of(st.integers(-3, 120), st.floats(allow_nan=False), st.booleans(), st.none(), texts)
near_valid = st.fixed_dictionaries(
    {"inputs": st.one_of(texts, st.lists(texts, max_size=70), json_values)},
    optional={
        "parameters": st.one_of(
            st.fixed_dictionaries({}, optional={"top_k": top_k, "temperature": json_scalars}), json_values
        ),
        "extra": json_values,
    },
)
payloads = st.one_of(near_valid, json_values)
bodies = st.one_of(
    payloads.map(lambda p: json.dumps(p, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    payloads.map(lambda p: json.dumps(p).encode()),
    st.binary(max_size=64),
)
content_types = st.one_of(
    st.just("application/json"),
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json",
            "APPLICATION/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF8",
            "application/json; charset=latin-1",
            "text/plain",
            "application/jsonlines",
            "",
        ]
    ),
    st.none(),
    st.text(max_size=40),
)
extra_headers = st.dictionaries(  # never a second Content-Type: that one is drawn above
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(lambda h: h != "content-type"),
    st.text(max_size=20),
    max_size=3,
)


@pytest.fixture(scope="module")
def handler() -> Iterator[Any]:
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name == "front_door.handler"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in HANDLER_ENV.items():
            patch.setenv(name, value)
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # thousands of EMF lines say nothing here
        module = importlib.import_module("front_door.handler")
        yield module
    sys.modules.pop("front_door.handler", None)
    sys.modules.update(saved)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) < len(pairs):
        raise ValueError("a key twice")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _expected_status(body: bytes, content_type: str | None, base64_encoded: bool) -> int | None:
    """What the contract says, where it is simple to say; None where only 'a 4xx' is certain."""
    media = (content_type or "").split(";")
    if media[0].strip().lower() != "application/json" or (
        len(media) > 1 and media[1].strip().lower().removeprefix("charset=") not in ("utf-8", "utf8")
    ):
        return 415
    try:
        payload = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or not RFC 8259 JSON (NaN, a key twice)
        return 400
    if not ORACLE.is_valid(payload):
        return 400
    texts = [payload["inputs"]] if isinstance(payload["inputs"], str) else payload["inputs"]
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return 400  # the one rule the schema cannot state: valid Unicode
    return 200


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies, content_type=content_types, base64_encoded=st.booleans(), headers=extra_headers)
def test_any_request_gets_a_json_answer_and_client_faults_are_4xx(
    handler: Any, body: bytes, content_type: str | None, base64_encoded: bool, headers: dict[str, str]
) -> None:
    evt = event(body, content_type, base64_encoded=base64_encoded, headers=headers)
    with Stubber(handler.client) as stub:
        stub.add_response("invoke_endpoint", model_answer())
        response = handler.lambda_handler(evt, Context())  # must not raise, whatever came in
    status = response["statusCode"]
    label(f"status {status}")
    assert status in CLIENT_STATUSES, response
    answer = json.loads(response["body"])
    if status != 200:
        assert set(answer) == {"code", "message", "requestId"} and answer["message"]
    expected = _expected_status(body, content_type, base64_encoded)
    assert status == expected, (status, expected, answer)
