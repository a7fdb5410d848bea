"""Hostile bytes, byte for byte: both parsers (the front door's and the model's) answer a 400, never a 5xx.

Python's json module refuses bad input in more ways than JSONDecodeError (a plain ValueError for
integers over 4300 digits, RecursionError for deep nesting) and accepts what RFC 8259 does not
(NaN, Infinity, duplicate keys). Bodies here are built from the fragments that trip those paths,
spliced into otherwise valid requests at random places, and sent through the real Lambda handler
(Powertools and all, a Stubber answering for the endpoint) and through model_code/inference.py's
input_fn, as multi-model-server hands it a bytearray. Both must refuse exactly the same bodies.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from front_door.contract import ApiError, parse_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.front_door_support import HANDLER_ENV, Context, event, model_answer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import inference

JSON = "application/json"
JSONL = "application/jsonlines"

# The fragments: each one a way the standard parser fails, or succeeds where RFC 8259 says no.
huge_integers = st.integers(4290, 4400).map(lambda n: b"7" * n) | st.integers(4300, 9000).map(lambda n: b"-" + b"9" * n)
huge_floats = st.sampled_from([b"1e999999", b"-1e400", b"1." + b"0" * 5000, b"0." + b"1" * 20000, b"2e-99999"])
constants = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"+1", b"01", b"1.", b".5"])
duplicates = st.sampled_from(
    [b'{"inputs": "a", "inputs": "b"}', b'{"top_k": 1, "top_k": 2}', b'{"a": {"b": 1, "b": 1}}', b'{"": 1, "": 2}']
)
deep = st.builds(
    lambda n, c: (b"[" if c else b'{"a":') * n + b"1" + (b"]" if c else b"}") * n, st.integers(1, 60_000), st.booleans()
)
surrogates = st.sampled_from(
    [b'"\\ud800"', b'"\\udfff\\ud800"', b'"\\uDBFF"', b'"\xed\xa0\x80"', b'"\\ud83d\\ude00"', b"\\ud800"]
)
overlong = st.sampled_from(
    [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf", b"\xf8\x88\x80\x80\x80", b"\xf4\x90\x80\x80"]
)
boms = st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"])
controls = st.binary(min_size=1, max_size=3).filter(lambda b: all(x < 0x20 or x == 0x7F for x in b)) | st.sampled_from(
    ["\u2028".encode(), "\u2029".encode(), b"\\u0000", b"\\u001f", "\u0085".encode()]
)
fragments = st.one_of(huge_integers, huge_floats, constants, duplicates, deep, surrogates, overlong, boms, controls)

VALID = [
    b'{"inputs": "I loved it"}',
    b'{"inputs": ["good", "bad"], "parameters": {"top_k": 2}}',
    b'{"inputs": "x", "parameters": {"top_k": 1}}',
]
TEMPLATES = [
    b"%s",
    b'{"inputs": %s}',
    b'{"inputs": ["ok", %s]}',
    b'{"inputs": "x", "parameters": {"top_k": %s}}',
    b'{"inputs": "a %s b"}',
    b'{"inputs": "x", %s: 1}',
    b"%s" + VALID[0],
    VALID[0] + b"%s",
]


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """A hostile fragment (or two) in a template, or spliced into a valid body at any byte."""
    pieces = draw(st.lists(fragments, min_size=1, max_size=2))
    if draw(st.booleans()):
        template = draw(st.sampled_from(TEMPLATES))
        return template.replace(b"%s", b"".join(pieces), 1)
    body = draw(st.sampled_from(VALID))
    at = draw(st.integers(0, len(body)))
    return body[:at] + b"".join(pieces) + body[at:]


bodies = hostile_bodies() | st.sampled_from(VALID) | st.binary(max_size=48)


def strict_ok(body: bytes) -> bool:
    """The oracle: RFC 8259 JSON in UTF-8 (no NaN/Infinity, no over-long integer, unique keys)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in items}) < len(items):
            raise ValueError("duplicate key")
        return dict(items)

    def constant(name: str) -> Any:
        raise ValueError(name)

    try:
        json.loads(body.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    return True


@pytest.fixture(scope="module")
def handler() -> Iterator[Any]:
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name == "front_door.handler"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in HANDLER_ENV.items():
            patch.setenv(name, value)
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        module = importlib.import_module("front_door.handler")
        yield module
    sys.modules.pop("front_door.handler", None)
    sys.modules.update(saved)


class _Faults(logging.Handler):
    """Counts records at ERROR and above: a logged traceback is the front door's own fault."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies, base64_encoded=st.booleans())
def test_the_front_door_answers_hostile_bytes_with_400_and_no_traceback(
    handler: Any, body: bytes, base64_encoded: bool
) -> None:
    faults = _Faults()
    handler.logger.addHandler(faults)
    try:
        with Stubber(handler.client) as stub:
            stub.add_response("invoke_endpoint", model_answer())
            response = handler.lambda_handler(event(body, JSON, base64_encoded=base64_encoded), Context())
    finally:
        handler.logger.removeHandler(faults)
    assert not faults.records, [record.getMessage() for record in faults.records]
    assert response["statusCode"] in (200, 400), response
    answer = json.loads(response["body"])
    if response["statusCode"] == 400:
        assert answer["code"] == "InvalidBody" and 0 < len(answer["message"]) < 400, answer
    if not strict_ok(body):  # invalid JSON is refused; valid JSON may still break the schema
        assert response["statusCode"] == 400, (body[:80], answer)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies)
def test_the_model_refuses_the_same_bytes_with_an_input_error(body: bytes) -> None:
    # Given the body as multi-model-server hands it over (a bytearray)
    try:
        request = inference.input_fn(bytearray(body), JSON)
    except inference.InputError as err:  # the toolkit answers 400 with this message
        assert 0 < len(str(err)) < 400
        accepted = False
    else:  # any other exception fails the test: the toolkit would log a traceback for it
        assert request.texts
        accepted = True
    if not strict_ok(body):
        assert not accepted, body[:80]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(bodies, min_size=1, max_size=4))
def test_json_lines_mark_each_hostile_line_and_keep_the_rest(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]  # a newline would split the record
    if not lines[-1].removesuffix(b"\r"):
        lines.append(VALID[0])  # an empty last line is the body's final newline, not a record
    request = inference.input_fn(bytearray(b"\n".join(lines)), JSONL)
    assert len(request.lines) == len(lines)
    for line, problem in zip(lines, request.lines, strict=True):
        if not strict_ok(line.removesuffix(b"\r")):
            assert problem is not None and problem.startswith("line "), (line[:80], problem)


@settings(max_examples=1500, deadline=None)
@given(body=bodies)
def test_both_parsers_accept_exactly_the_same_json(body: bytes) -> None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return  # both refuse it before parsing (tested above)
    try:
        parse_json(text)
        front_door = True
    except ApiError:
        front_door = False
    try:
        inference._loads(text)
        model = True
    except inference.InputError:
        model = False
    assert front_door == model == strict_ok(body), body[:80]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"inputs": "x", "parameters": {"top_k": ' + b"7" * 5000 + b"}}", "an integer of 5000 digits is too long"),
        (b'{"inputs": "x", "parameters": {"top_k": NaN}}', "NaN is not a JSON value"),
        (b'{"inputs": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"inputs": "a", "inputs": "b"}', "the key 'inputs' appears twice in one object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'\xef\xbb\xbf{"inputs": "x"}', "Unexpected UTF-8 BOM"),
        (b'{"inputs": "\xc0\xaf"}', "not valid UTF-8"),
        (b'{"inputs": "\xed\xa0\x80"}', "not valid UTF-8"),
        (b'{"inputs": "tab\there"}', "Invalid control character"),
        (b'{"inputs": "x", "parameters": {"top_k": 1e999}}', "top_k must be"),
    ],
)
def test_each_hostile_class_gets_a_message_that_names_it(handler: Any, body: bytes, message: str) -> None:
    with Stubber(handler.client):
        response = handler.lambda_handler(event(body, JSON), Context())
    assert response["statusCode"] == 400 and message in json.loads(response["body"])["message"]
    with pytest.raises(inference.InputError, match="top_k must be" if "top_k must" in message else None) as raised:
        inference.input_fn(bytearray(body), JSON)
    if "top_k must" not in message:
        assert message in str(raised.value)
