"""What every config section shares: the strict base (unknown keys fail, settings are immutable once read)
and the limits and patterns more than one section checks. Imports nothing from infra, so every config
module can use it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# API Gateway REST integrations time out after 29 s
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
API_INTEGRATION_TIMEOUT_S = 29


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
