"""Smoke test of a deployed stage's API front door: one predict request, the answer checked.

`python -m sagebert smoke --url URL [--api-key-id ID] [--region R] [--role-arn ARN]`

The promotion pipeline runs this after each stage deploys; a failure (exit 1) stops the promotion.
The request is `POST <url>` with `{"inputs": <a short text>}`. An IAM-authorized API gets the request
signed with SigV4 (service execute-api); an API-key API gets the key's value, read with
apigateway:GetApiKey, in the x-api-key header. `--role-arn` first assumes that role (the pipeline runs
in a tooling account; the role in the stage's account holds the permissions). The answer must be HTTP
200 with a JSON list of {label, score} objects, each score in [0, 1].

botocore signs and fetches the key; urllib sends the request (no third-party HTTP client).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

TEXT = "The release went smoothly and the new model answers quickly."
# Within the front door's 29 s API Gateway budget, with room for a cold Lambda.
DEFAULT_TIMEOUT_S = 30.0
# A stage that has just deployed can answer 5xx for a few seconds (API Gateway propagating the new
# deployment, a cold Lambda); those, 429 and connection errors are retried, nothing else is.
DEFAULT_ATTEMPTS = 3
RETRY_WAIT_S = 5.0


class SmokeError(Exception):
    """The stage's API did not answer as a healthy stage does; the message says what came back."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def _session(region: str | None, role_arn: str | None) -> Any:
    """A botocore session, with the role's temporary credentials when role_arn is given."""
    import botocore.session

    session = botocore.session.get_session()
    if region:
        session.set_config_variable("region", region)
    if role_arn:
        sts = session.create_client("sts", region_name=region)
        try:
            credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="sagebert-smoke-test")["Credentials"]
        except Exception as err:  # botocore's ClientError, NoCredentialsError, EndpointConnectionError ...
            raise SmokeError(f"could not assume {role_arn}: {err}") from err
        session.set_credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
    return session


def api_key_value(session: Any, key_id: str, region: str | None) -> str:
    """The value of API key `key_id` (apigateway:GET on that key)."""
    client = session.create_client("apigateway", region_name=region)
    try:
        value = client.get_api_key(apiKey=key_id, includeValue=True).get("value")
    except Exception as err:  # botocore's ClientError and connection errors
        raise SmokeError(f"could not read API key {key_id}: {err}") from err
    if not value:
        raise SmokeError(f"API key {key_id} came back without a value.")
    return str(value)


def signed_headers(session: Any, url: str, body: bytes, region: str) -> dict[str, str]:
    """Headers of a SigV4-signed (execute-api) POST of body to url."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = session.get_credentials()
    if credentials is None:
        raise SmokeError("no AWS credentials to sign the request with (SigV4); configure credentials or a role.")
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.read())


def check(answer: Answer) -> list[dict[str, Any]]:
    """The predictions, or SmokeError saying how the answer differs from a healthy one."""
    excerpt = answer.body[:500].decode("utf-8", "replace")
    if answer.status != 200:
        raise SmokeError(f"HTTP {answer.status} (expected 200): {excerpt}")
    try:
        predictions = json.loads(answer.body)
    except ValueError as err:
        raise SmokeError(f"HTTP 200 but the body is not JSON ({err}): {excerpt}") from None
    if not isinstance(predictions, list) or not predictions:
        raise SmokeError(f"expected a non-empty JSON list of {{label, score}}, got: {excerpt}")
    for index, item in enumerate(predictions):
        if not isinstance(item, dict) or set(item) != {"label", "score"}:
            raise SmokeError(f"item {index} is not a {{label, score}} object: {json.dumps(item)[:200]}")
        label, score = item["label"], item["score"]
        if not isinstance(label, str) or not label:
            raise SmokeError(f"item {index}: label {label!r} is not a non-empty string")
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            raise SmokeError(f"item {index}: score {score!r} is not a number in [0, 1]")
    return predictions


def smoke(
    url: str,
    *,
    region: str | None = None,
    api_key_id: str | None = None,
    role_arn: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_wait_s: float = RETRY_WAIT_S,
) -> list[dict[str, Any]]:
    """POST one text to url and check the answer; raise SmokeError when the stage is not healthy."""
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise SmokeError(f"--url {url!r} must be an https:// URL (the stage's ApiUrl output).")
    session = _session(region, role_arn)
    region = region or session.get_config_variable("region")
    body = json.dumps({"inputs": TEXT}).encode("utf-8")
    api_key = api_key_value(session, api_key_id, region) if api_key_id else None
    last: SmokeError | None = None
    for attempt in range(1, max(attempts, 1) + 1):
        if api_key is not None:
            headers = {"Content-Type": "application/json", "x-api-key": api_key}
        else:
            if not region:
                raise SmokeError("no region to sign the request for; pass --region (the stage's region).")
            # Signed afresh for each attempt: the signature carries its time.
            headers = signed_headers(session, url, body, region)
        try:
            answer = post(url, body, headers, timeout_s)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            last = SmokeError(f"no answer from {url} within {timeout_s:g} s: {err}")
        else:
            if answer.status == 429 or answer.status >= 500:
                last = SmokeError(
                    f"HTTP {answer.status} (expected 200): {answer.body[:500].decode('utf-8', 'replace')}"
                )
            else:
                return check(answer)
        if attempt < attempts:
            time.sleep(retry_wait_s)
    assert last is not None
    raise last


def main(
    url: str,
    region: str | None,
    api_key_id: str | None,
    role_arn: str | None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_wait_s: float = RETRY_WAIT_S,
) -> int:
    try:
        predictions = smoke(
            url,
            region=region,
            api_key_id=api_key_id,
            role_arn=role_arn,
            timeout_s=timeout_s,
            attempts=attempts,
            retry_wait_s=retry_wait_s,
        )
    except SmokeError as err:
        print(f"smoke test FAILED: POST {url}: {err}", file=sys.stderr)
        return 1
    print(f"smoke test passed: POST {url} -> 200, {json.dumps(predictions)}")
    return 0
