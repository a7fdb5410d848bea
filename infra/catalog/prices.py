"""The dated price table in infra/catalog/prices.json, typed: the cost report's only source of prices.

Standard library only and cached, so config validation can call `load().instance_hourly(...)` (e.g. to
show what a refused Elastic Inference configuration would have cost) without slowing synth. Prices are
never fetched from AWS: the file says when they were taken and where from, and a test keeps it sane.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")


class UnknownInstanceType(KeyError):
    """An instance (or accelerator) type the price table has no price for; the message lists the known ones."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument (quotes, escaped newlines); show the message as written.
        return str(self.args[0])


# The name config validation catches (the Elastic Inference refusal prints a cost difference when it can).
UnknownPriceError = UnknownInstanceType


@dataclass(frozen=True)
class ServerlessPrices:
    """SageMaker Serverless Inference (on demand, and with provisioned concurrency)."""

    per_gb_second: float  # compute while a request runs, per GB of configured memory
    per_gb_processed: float  # data in plus data out
    provisioned_concurrency_per_gb_second: float  # each provisioned unit, all the time, per GB
    provisioned_inference_per_gb_second: float  # compute of requests served by provisioned units


@dataclass(frozen=True)
class ApiGatewayPrices:
    """API Gateway REST API requests, first tier (the report does not apply the cheaper tiers)."""

    rest_per_million_requests: float
    first_tier_millions: int


@dataclass(frozen=True)
class LambdaPrices:
    """Lambda on arm64 (the front door's architecture), first duration tier."""

    arm64_per_gb_second: float
    per_million_requests: float


@dataclass(frozen=True)
class PriceTable:
    as_of: date
    region: str
    currency: str
    sources: tuple[str, ...]
    notes: tuple[str, ...]
    realtime: Mapping[str, float]
    batch: Mapping[str, float]  # only types whose batch rate differs from real time
    elastic_inference: Mapping[str, float]  # last published, end of life
    unconfirmed: frozenset[str]
    serverless: ServerlessPrices
    api_gateway: ApiGatewayPrices
    lambda_: LambdaPrices

    def instance_hourly(self, instance_type: str) -> float:
        """On-demand real-time hosting price per instance-hour; ml.eia* gives the last published accelerator price."""
        if instance_type in self.realtime:
            return self.realtime[instance_type]
        if instance_type in self.elastic_inference:
            return self.elastic_inference[instance_type]
        raise UnknownInstanceType(
            f"no price for {instance_type!r} in {PRICES_FILE.name} (as of {self.as_of}); known instance types: "
            f"{', '.join(sorted(self.realtime))}; Elastic Inference (last published): "
            f"{', '.join(sorted(self.elastic_inference))}. Add it with its source."
        )

    def batch_hourly(self, instance_type: str) -> float:
        """Batch transform price per instance-hour: the same as real-time hosting unless the table says otherwise."""
        if instance_type in self.batch:
            return self.batch[instance_type]
        if instance_type in self.elastic_inference:
            raise UnknownInstanceType(
                f"{instance_type!r} is an Elastic Inference accelerator, not a transform instance."
            )
        return self.instance_hourly(instance_type)

    def is_confirmed(self, key: str) -> bool:
        """False for a figure the table lists as not confirmed on an AWS page (e.g. 'ml.inf2.xlarge')."""
        return key not in self.unconfirmed


@functools.cache
def load(path: Path = PRICES_FILE) -> PriceTable:
    """Read and check the price table once per process (a bad file fails with what is wrong)."""
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    try:
        serverless = raw["serverless"]
        api = raw["api_gateway"]
        lam = raw["lambda"]
        table = PriceTable(
            as_of=date.fromisoformat(raw["as_of"]),
            region=str(raw["region"]),
            currency=str(raw["currency"]),
            sources=tuple(str(s) for s in raw["sources"]),
            notes=tuple(str(n) for n in raw.get("notes", [])),
            realtime=MappingProxyType({k: float(v) for k, v in raw["realtime_hourly"].items()}),
            batch=MappingProxyType({k: float(v) for k, v in raw["batch_transform"]["hourly"].items()}),
            elastic_inference=MappingProxyType({k: float(v) for k, v in raw["elastic_inference"]["hourly"].items()}),
            unconfirmed=frozenset(str(k) for k in raw.get("unconfirmed", [])),
            serverless=ServerlessPrices(
                per_gb_second=float(serverless["per_gb_second"]),
                per_gb_processed=float(serverless["per_gb_processed"]),
                provisioned_concurrency_per_gb_second=float(serverless["provisioned_concurrency_per_gb_second"]),
                provisioned_inference_per_gb_second=float(serverless["provisioned_inference_per_gb_second"]),
            ),
            api_gateway=ApiGatewayPrices(
                rest_per_million_requests=float(api["rest_per_million_requests"]),
                first_tier_millions=int(api["first_tier_millions"]),
            ),
            lambda_=LambdaPrices(
                arm64_per_gb_second=float(lam["arm64_per_gb_second"]),
                per_million_requests=float(lam["per_million_requests"]),
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: malformed price table ({type(err).__name__}: {err})") from err
    return table
