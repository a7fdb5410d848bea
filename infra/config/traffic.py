"""The `traffic:` section: how much a stage is used, which the cost report (`make cost`) prices.

Nothing is deployed from it; it states the expected load so the report can show what each way of
serving it costs (real time, serverless, batch) and recommend one.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from infra.config.base import Strict


class TrafficSettings(Strict):
    """Expected load of one stage (for the cost report only)."""

    requests_per_month: int = Field(
        ge=0,
        description="Prediction requests through the API per month (requests/month); each is one API Gateway "
        "request, one Lambda call and one endpoint invocation.",
    )
    texts_per_request: int = Field(
        1, ge=1, le=64, description="Texts (predictions) per request on average (texts/request, 1 to 64)."
    )
    peak_requests_per_second: float = Field(
        gt=0, description="Busiest sustained request rate (requests/s) the endpoint must absorb."
    )
    batch_records_per_run: int | None = Field(
        None,
        ge=0,
        description="Records (texts) in each scheduled batch transform run (records/run); null: no batch input "
        "expected, a run then finds no input and starts no job.",
    )
    busy_hours_per_day: float | None = Field(
        None,
        gt=0,
        le=24,
        description="Hours a day in which requests arrive, in one block (the rest of the day has none at all); "
        "requests/month cannot tell how long the endpoint sits idle. Prices the idle saving of "
        "endpoint.inference_component.scale_to_zero; null: the report assumes requests all day (no saving) and "
        "says so.",
    )
    average_payload_kb: float = Field(
        1,
        gt=0,
        le=6144,
        description="Average request body (KB); serverless bills data processed in and out by the GB.",
    )

    @model_validator(mode="after")
    def _peak_covers_average(self) -> TrafficSettings:
        average = self.requests_per_month / (30 * 24 * 3600)
        if self.peak_requests_per_second < average:
            raise ValueError(
                f"traffic: peak_requests_per_second = {self.peak_requests_per_second:g} is below the average "
                f"{average:.2f} requests/s that requests_per_month = {self.requests_per_month} implies over a "
                "30-day month; raise the peak or lower the monthly requests."
            )
        return self
