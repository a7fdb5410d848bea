"""What every config section shares: the strict base (unknown keys fail, settings are immutable once read)
and the limits and patterns more than one section checks. Imports nothing from infra, so every config
module can use it."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$"
ACCOUNT_ID = r"^\d{12}$"
KMS_KEY_ARN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$"
# A production variant's name (endpoint.variant_name, the A/B variants, api.target_variant).
VARIANT_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
# A key prefix in the artifact bucket: path segments of safe characters, each ending in "/". No IAM
# wildcard characters (* ?), since the prefixes are written into IAM resource ARNs and conditions.
KEY_PREFIX = r"^([A-Za-z0-9_.-]+/)+$"
# API Gateway REST integrations time out after 29 s
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
API_INTEGRATION_TIMEOUT_S = 29
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy's retentionInDays).
LogRetentionDays = Literal[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653
]
LOG_RETENTION_DAYS: tuple[int, ...] = get_args(LogRetentionDays)
# Days S3 keeps an object before a lifecycle rule expires it (sagebert's range for data prefixes: a day to ten years).
EXPIRY_DAYS = (1, 3650)


class Strict(BaseModel):
    """A config section: an unknown key is an error (no typo passes silently), and a value read is never changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
