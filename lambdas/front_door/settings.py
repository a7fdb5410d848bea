"""Typed settings of the front door, read once per container from environment variables.

infra/online/inference_api.py sets them from the stage's `api:` config; `sagebert serve` sets them for the
local front door. A missing or bad value stops the container's init with a message naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# API Gateway gives an integration 29 s; leave a second for the front door and the way back.
API_GATEWAY_BUDGET_S = 28.0


class SettingsError(ValueError):
    """An environment variable the front door cannot use."""


@dataclass(frozen=True)
class Settings:
    endpoint_name: str
    target_variant: str | None = None
    # Set when the endpoint serves the model as an inference component: InvokeEndpoint must then name it.
    inference_component: str | None = None
    read_timeout_s: float = 8.0
    connect_timeout_s: float = 2.0
    max_attempts: int = 2
    max_body_bytes: int = 1_048_576
    cors_allow_origins: tuple[str, ...] = ()
    tracing: bool = False  # X-Ray: the SDK is imported only when this is on

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        endpoint = environ.get("SAGEBERT_ENDPOINT_NAME", "").strip()
        if not endpoint:
            raise SettingsError("SAGEBERT_ENDPOINT_NAME is not set: the name of the SageMaker endpoint to call.")
        settings = cls(
            endpoint_name=endpoint,
            target_variant=environ.get("SAGEBERT_TARGET_VARIANT", "").strip() or None,
            inference_component=environ.get("SAGEBERT_INFERENCE_COMPONENT", "").strip() or None,
            read_timeout_s=_number(environ, "SAGEBERT_READ_TIMEOUT_S", 8.0, float),
            connect_timeout_s=_number(environ, "SAGEBERT_CONNECT_TIMEOUT_S", 2.0, float),
            max_attempts=_number(environ, "SAGEBERT_MAX_ATTEMPTS", 2, int),
            max_body_bytes=_number(environ, "SAGEBERT_MAX_BODY_BYTES", 1_048_576, int),
            cors_allow_origins=tuple(
                origin.strip() for origin in environ.get("SAGEBERT_CORS_ALLOW_ORIGINS", "").split(",") if origin.strip()
            ),
            tracing=_flag(environ, "SAGEBERT_TRACING"),
        )
        settings.check()
        return settings

    @property
    def worst_case_s(self) -> float:
        """The longest one InvokeEndpoint call can take with its retries (backoff under a second)."""
        return self.max_attempts * (self.connect_timeout_s + self.read_timeout_s) + 1.0

    def check(self) -> None:
        if self.read_timeout_s <= 0 or self.connect_timeout_s <= 0 or self.max_attempts < 1 or self.max_body_bytes < 1:
            raise SettingsError(f"timeouts, attempts and body size must be positive: {self}.")
        if self.worst_case_s > API_GATEWAY_BUDGET_S:
            raise SettingsError(
                f"{self.max_attempts} attempts x ({self.connect_timeout_s} s connect + {self.read_timeout_s} s read) "
                f"+ 1 s = {self.worst_case_s:g} s overruns API Gateway's budget ({API_GATEWAY_BUDGET_S:g} s of 29 s): "
                "lower SAGEBERT_READ_TIMEOUT_S or SAGEBERT_MAX_ATTEMPTS."
            )

    def client_config(self) -> dict[str, Any]:
        """botocore Config arguments: the timeouts, and one attempt per call. botocore's standard mode would also
        retry read timeouts and 5xx answers, requests the endpoint may still be running; proxy retries throttling
        and failed connections only, up to max_attempts."""
        return {
            "connect_timeout": self.connect_timeout_s,
            "read_timeout": self.read_timeout_s,
            # total_max_attempts counts the first call: 1 is no retry at all.
            "retries": {"mode": "standard", "total_max_attempts": 1},
            "tcp_keepalive": True,
        }


def _number(environ: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}.") from None


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise SettingsError(f"{name}={raw!r}: use true or false.")
    return raw == "true"
