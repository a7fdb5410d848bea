"""`make cost`: what each stage costs per month, and what the stated traffic would cost served each way.

Three layers, so the arithmetic can be tested on fixed numbers:

1. `usage_of` turns a StageConfig into plain usage dataclasses (instances, serverless, batch, API, traffic,
   an inference component's scale to zero);
2. pure functions price them with a `PriceTable` (infra/catalog/prices.json, dated, with sources) and the
   throughput `make bench`, `make bench-api` and `make bench-batch` measured (`load_measured`);
3. `report` / `render` assemble the per-stage tables, the cost per million predictions of each compute
   profile, the idle saving of scale to zero (at `traffic.busy_hours_per_day`) and a recommendation (real
   time, serverless or batch).

Assumptions (each also in docs/cost.md): a month is 730 hours and 30 days; CPU capacity counts physical
cores (an AWS vCPU is a hyperthread), each worth one pinned core's measured share; GPU and Inferentia were
not measured here, so their cost per prediction is "not measured here" rather than a guess; free tiers and
Savings Plans are ignored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra.catalog import compute_profiles
from infra.catalog.compute_profiles import HOURS_PER_MONTH, SERVERLESS_MAX_CONCURRENCY
from infra.catalog.measured import MEASURED_THROUGHPUT_FILE
from infra.catalog.prices import PriceTable
from infra.catalog.prices import load as load_prices
from infra.config.endpoint import ServerlessSettings
from infra.config.stage import STAGE_PREFIX, StageConfig, load_all
from sagebert import paths
from sagebert.tables import columns

# AWS prices "per month" on 730 hours (8,760 / 12); schedules are counted in a 30-day month.
DAYS_PER_MONTH = 30
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
# A transform job bills from instance provisioning to the end of the job: launching the instance, pulling the
# image, unpacking the archive and starting the model server. Not measured here (no AWS account); 5 minutes
# is an assumption in the range public reports give for CPU jobs. The local server's own start-up, which is
# part of it, measured ~23 s (make bench cold start).
BATCH_STARTUP_S = 300
# SageMaker bills instance time per second; its pricing page states no minimum. EC2's per-second billing has a
# 60-second minimum, which is kept here as the conservative floor per instance and run.
BATCH_MINIMUM_BILLED_S = 60
# The memory the comparison assumes for a stage that is not serverless: the serverless section's default. The
# model server with the int8 archive peaked at ~1.2 GB resident (make bench), so 2048 MB leaves room.
DEFAULT_SERVERLESS_MEMORY_MB = ServerlessSettings().memory_mb
# The instance type the comparison prices real time and batch on when the stage has none (serverless): the cpu
# profile's default.
DEFAULT_CPU_INSTANCE = compute_profiles.PROFILES["cpu"].default_instance_type
# A month of requests needs this many GB of payload per KB per request (1 GB = 1024 * 1024 KB).
KB_PER_GB = 1024 * 1024

Choice = Literal["real time", "serverless", "batch"]


class CostError(Exception):
    """The report cannot be made (an unsupported schedule, an unknown instance type); the message says why."""


class CronError(CostError, ValueError):
    """A cron expression the run counter does not support, with what it does support."""


# ----- measured throughput ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    value: float
    source: str


@dataclass(frozen=True)
class Measured:
    """What this project's benchmarks measured on one machine of `vcpus` vCPUs (CPU, ONNX Runtime int8)."""

    vcpus: int
    realtime_batched_texts_s: Figure  # through the model server, 64 texts per request
    realtime_single_texts_s: Figure  # through the model server, one text per request, 8 clients
    latency_single_text_ms: Figure  # one text, one client, p50
    front_door_ms: Figure  # the front door's p50 under load: what the Lambda is billed for
    batch_records_s: Figure  # MultiRecord batch transform, local runner
    # Throughput of one pinned core (one worker, one thread) over the two-core figure (make bench). An AWS
    # vCPU is a hyperthread: ml.c6i.large's 2 vCPUs are one core, so capacity is counted per core from this.
    one_core_share: Figure = Figure(0.5, "assumed: half of two cores")


def load_measured(
    fallback: Path = MEASURED_THROUGHPUT_FILE,
    bench: Path = paths.BENCH_RESULTS,
    bench_api: Path = paths.BENCH_API_RESULTS,
    bench_batch: Path = paths.BENCH_BATCH_RESULTS,
) -> Measured:
    """The latest benchmark results in build/ where present, else the committed fallback figures."""
    base = json.loads(fallback.read_text(encoding="utf-8"))
    committed = f"{_rel(fallback)} ({base['measured_on']})"

    def fixed(key: str) -> Figure:
        return Figure(float(base[key]["value"]), f"{base[key]['command']}, {committed}")

    batched, latency = fixed("realtime_batched_texts_per_s"), fixed("latency_single_text_ms")
    single, front_door = fixed("realtime_single_texts_per_s"), fixed("front_door_p50_ms")
    batch = fixed("batch_records_per_s")
    share = fixed("one_core_share")
    if bench.is_file():
        server = json.loads(bench.read_text(encoding="utf-8")).get("server", [])
        int8 = next((r for r in server if r.get("contender") == "onnx-int8"), None)
        one_core = next((r for r in server if r.get("contender") == "onnx-int8 1 core"), None)
        if int8 is not None:
            batched = Figure(float(int8["throughput_texts_s"]), f"make bench, {_rel(bench)}")
            latency = Figure(float(int8["short_p50_ms"]), f"make bench, {_rel(bench)}")
            if one_core is not None:
                ratio = float(one_core["throughput_texts_s"]) / float(int8["throughput_texts_s"])
                share = Figure(ratio, f"make bench, {_rel(bench)}")
    if bench_api.is_file():
        load = json.loads(bench_api.read_text(encoding="utf-8")).get("load", {})
        if "model server (direct)" in load:
            single = Figure(float(load["model server (direct)"]["requests_s"]), f"make bench-api, {_rel(bench_api)}")
        if "front door -> model server" in load:
            front_door = Figure(
                float(load["front door -> model server"]["p50_ms"]), f"make bench-api, {_rel(bench_api)}"
            )
    if bench_batch.is_file():
        results = json.loads(bench_batch.read_text(encoding="utf-8"))
        ours = next((v for k, v in results.items() if k.startswith("sagebert") and isinstance(v, dict)), None)
        if ours is not None:
            batch = Figure(float(ours["records_per_s"]), f"make bench-batch, {_rel(bench_batch)}")
    return Measured(int(base["vcpus"]), batched, single, latency, front_door, batch, share)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(paths.ROOT))
    except ValueError:
        return path.name


# ----- usage: a stage config as plain numbers --------------------------------------------------------------


@dataclass(frozen=True)
class InstanceUsage:
    """Always-on instances behind one variant; min_count < max_count with autoscaling."""

    role: str
    instance_type: str
    min_count: int
    max_count: int


@dataclass(frozen=True)
class ServerlessUsage:
    memory_mb: int
    max_concurrency: int
    provisioned_concurrency: int


@dataclass(frozen=True)
class BatchUsage:
    schedule: str
    instance_type: str
    instance_count: int
    records_per_run: int | None


@dataclass(frozen=True)
class TrafficUsage:
    requests_per_month: int
    texts_per_request: int
    peak_requests_per_second: float
    average_payload_kb: float

    @property
    def predictions_per_month(self) -> int:
        return self.requests_per_month * self.texts_per_request


@dataclass(frozen=True)
class ScaleToZeroUsage:
    """An inference component that may leave zero instances: the instances it keeps while requests arrive, and how
    long it takes to release them once they stop."""

    instance_type: str
    busy_instances: int  # the floor while requests arrive: the instances min 1 copy needs
    scale_in_delay_h: float  # from the last request to the instance's release
    busy_hours_per_day: float | None  # None: requests all day (traffic.busy_hours_per_day unset)


@dataclass(frozen=True)
class StageUsage:
    stage: str
    production: bool
    compute: str
    instances: tuple[InstanceUsage, ...]
    serverless: ServerlessUsage | None
    batch: BatchUsage | None
    lambda_memory_mb: int | None  # None: the stage has no API front door
    traffic: TrafficUsage | None
    scale_to_zero: ScaleToZeroUsage | None = None


def usage_of(stage: str, config: StageConfig) -> StageUsage:
    """What a stage config deploys and expects, as numbers."""
    endpoint = config.endpoint
    instances: list[InstanceUsage] = []
    serverless: ServerlessUsage | None = None
    if endpoint.serverless is not None:
        serverless = ServerlessUsage(
            memory_mb=endpoint.serverless.memory_mb,
            max_concurrency=endpoint.serverless.max_concurrency,
            provisioned_concurrency=endpoint.serverless.provisioned_concurrency,
        )
    elif endpoint.instance_type is not None:
        main_type, count = endpoint.instance_type, endpoint.instance_count
        scaling = endpoint.autoscaling
        component = endpoint.inference_component
        low, high = (scaling.min_instances, scaling.max_instances) if scaling is not None else (count, count)
        if component is not None:
            # Managed instance scaling: from the instances min_copies need (0 with scale to zero) to the cap.
            low, high = component.min_instances(main_type), component.instance_limit(main_type)
        instances.append(InstanceUsage(endpoint.variant_name, main_type, low, high))
        for variant in endpoint.variants:
            kind = variant.instance_type or main_type
            instances.append(InstanceUsage(variant.name, kind, variant.instance_count, variant.instance_count))
        shadow = endpoint.shadow
        if shadow is not None:
            kind = shadow.instance_type or main_type
            instances.append(
                InstanceUsage(f"{shadow.name} (shadow)", kind, shadow.instance_count, shadow.instance_count)
            )
    compute = endpoint.compute
    traffic_settings = config.traffic
    traffic = (
        TrafficUsage(
            requests_per_month=traffic_settings.requests_per_month,
            texts_per_request=traffic_settings.texts_per_request,
            peak_requests_per_second=traffic_settings.peak_requests_per_second,
            average_payload_kb=traffic_settings.average_payload_kb,
        )
        if traffic_settings is not None
        else None
    )
    batch = (
        BatchUsage(
            schedule=config.batch.schedule,
            instance_type=config.batch.instance_type,
            instance_count=config.batch.instance_count,
            records_per_run=traffic_settings.batch_records_per_run if traffic_settings is not None else None,
        )
        if config.batch is not None
        else None
    )
    component = endpoint.inference_component
    idle: ScaleToZeroUsage | None = None
    if component is not None and component.scale_to_zero and endpoint.instance_type is not None:
        idle = ScaleToZeroUsage(
            instance_type=endpoint.instance_type,
            # While requests arrive, copy-count scaling keeps at least one copy: one instance at low traffic.
            busy_instances=1,
            scale_in_delay_h=(SCALE_IN_ALARM_S + component.scale_in_cooldown_s) / 3600,
            busy_hours_per_day=traffic_settings.busy_hours_per_day if traffic_settings is not None else None,
        )
    return StageUsage(
        stage=stage,
        production=config.production,
        compute=compute,
        instances=tuple(instances),
        serverless=serverless,
        batch=batch,
        lambda_memory_mb=config.api.memory_mb if config.api is not None else None,
        traffic=traffic,
        scale_to_zero=idle,
    )


# ----- pure arithmetic -------------------------------------------------------------------------------------


# Target tracking scales in only after its low alarm has held for 15 one-minute periods (Application Auto
# Scaling's own alarm), then waits the scale-in cooldown: the endpoint bills that long after the last request.
SCALE_IN_ALARM_S = 15 * 60


def billed_hours_with_scale_to_zero(busy_hours_per_day: float, scale_in_delay_h: float) -> float:
    """Instance-hours a month of one instance that is released after each day's one block of requests: the busy
    hours plus the scale-in delay, at most the whole day."""
    return min(24.0, busy_hours_per_day + scale_in_delay_h) * HOURS_PER_MONTH / 24


@dataclass(frozen=True)
class IdleSaving:
    """What scale to zero saves at the stated traffic."""

    instance_type: str
    instances: int
    hours_without: float  # per instance, per month
    hours_with: float
    monthly_without: float
    monthly_with: float
    assumption: str

    @property
    def monthly_saving(self) -> float:
        return self.monthly_without - self.monthly_with


def idle_saving(idle: ScaleToZeroUsage, hourly: float) -> IdleSaving:
    busy = idle.busy_hours_per_day
    hours_with = HOURS_PER_MONTH if busy is None else billed_hours_with_scale_to_zero(busy, idle.scale_in_delay_h)
    delay_min = round(idle.scale_in_delay_h * 60)
    if busy is None:
        assumption = (
            "traffic.busy_hours_per_day is not set: requests are assumed all day, so the endpoint never idles long "
            "enough to reach zero (no saving); set it to price the idle hours"
        )
    else:
        assumption = (
            f"requests arrive in one block of {busy:g} h a day and none at all the other {24 - busy:g} h; each day "
            f"bills {delay_min} min more after the last request (15 min of the scale-in alarm + "
            "inference_component.scale_in_cooldown_s) before the last instance goes, and the first request after "
            "that fails while an instance and a copy start (minutes, not billed here)"
        )
    return IdleSaving(
        instance_type=idle.instance_type,
        instances=idle.busy_instances,
        hours_without=HOURS_PER_MONTH,
        hours_with=hours_with,
        monthly_without=instance_monthly(hourly, idle.busy_instances),
        monthly_with=instance_monthly(hourly, idle.busy_instances, hours_with),
        assumption=assumption,
    )


def instance_monthly(hourly: float, count: int, hours: float = HOURS_PER_MONTH) -> float:
    """Always-on instances: count x 730 h x hourly price."""
    return count * hours * hourly


def serverless_compute_monthly(requests: int, duration_s: float, memory_mb: int, per_gb_second: float) -> float:
    """Serverless compute: requests x duration x memory (GB) x price per GB-second."""
    return requests * duration_s * (memory_mb / 1024) * per_gb_second


def serverless_data_monthly(requests: int, payload_kb: float, per_gb: float) -> float:
    """Serverless data processed, in and out: the answer is counted at the request's size (an upper bound: a
    label and a score per text is smaller than the text)."""
    return requests * payload_kb * 2 / KB_PER_GB * per_gb


def provisioned_concurrency_monthly(units: int, memory_mb: int, per_gb_second: float) -> float:
    """Provisioned concurrency: every unit, all month, per GB of memory."""
    return units * (memory_mb / 1024) * SECONDS_PER_MONTH * per_gb_second


def api_gateway_monthly(requests: int, per_million: float) -> float:
    """REST API requests at the first-tier price (an upper bound past the first tier's volume)."""
    return requests / 1e6 * per_million


def lambda_monthly(
    requests: int, duration_ms: float, memory_mb: int, per_gb_second: float, per_million_requests: float
) -> float:
    """Lambda: requests x billed duration (rounded up to the millisecond) x memory (GB) x price, plus requests."""
    billed_s = math.ceil(duration_ms) / 1000
    return requests * billed_s * (memory_mb / 1024) * per_gb_second + requests / 1e6 * per_million_requests


def vcpus(instance_type: str) -> int:
    """vCPUs of the instance type (compute_profiles.VCPUS); ml.t2.medium has 2 but is burstable: it sustains
    far less."""
    try:
        return compute_profiles.vcpus(instance_type)
    except ValueError:
        sizes = ", ".join(compute_profiles.VCPUS)
        raise CostError(f"{instance_type}: unknown instance size; known sizes: {sizes}.") from None


def accelerated(instance_type: str) -> str | None:
    """'gpu' or 'inferentia' for accelerated families (Inferentia1 included), None for CPU."""
    family = compute_profiles.family(instance_type)
    if family in compute_profiles.GPU_FAMILIES or family == "p3":
        return "gpu"
    if family in compute_profiles.INFERENTIA_FAMILIES or family == "inf1":
        return "inferentia"
    return None


def physical_cores(instance_type: str) -> int:
    """Cores of an AWS instance: its vCPUs are hyperthreads, two per core (ml.c6i.large: 2 vCPUs, 1 core)."""
    vcpus(instance_type)  # an unknown size is a CostError naming the known ones
    return compute_profiles.cores(instance_type)


def scaled_throughput(
    measured_per_s: float, measured_vcpus: int, instance_type: str, one_core_share: float | None = None
) -> float | None:
    """Throughput on instance_type; None for GPU and Inferentia, where a CPU figure says nothing.

    With `one_core_share` (what one pinned core gives of the measured figure), the lower bound: one such
    core per physical core of the instance, the hyperthread siblings counted as nothing extra. Without it,
    the figure scaled by vCPUs, as if every AWS vCPU were one of the measuring machine's cores (an upper
    bound: the measuring machine's vCPUs are whole cores)."""
    if accelerated(instance_type) is not None:
        return None
    if one_core_share is not None:
        return measured_per_s * one_core_share * physical_cores(instance_type)
    return measured_per_s * vcpus(instance_type) / measured_vcpus


def cost_per_million(hourly: float, per_second: float) -> float:
    """Cost of a million predictions on a fully busy instance."""
    return hourly / (per_second * 3600) * 1e6


def instances_for_peak(peak_texts_per_s: float, per_instance_texts_per_s: float) -> int:
    return max(1, math.ceil(peak_texts_per_s / per_instance_texts_per_s))


def utilisation(predictions_per_month: float, instances: int, per_instance_texts_per_s: float) -> float:
    """Share of the always-on capacity the month's predictions use."""
    return predictions_per_month / (instances * per_instance_texts_per_s * SECONDS_PER_MONTH)


def batch_run_instance_hours(
    records: int,
    records_per_s_per_instance: float,
    instance_count: int,
    startup_s: float = BATCH_STARTUP_S,
    minimum_s: float = BATCH_MINIMUM_BILLED_S,
) -> float:
    """Billed instance-hours of one transform run: every instance pays the start-up, the records are split over
    the instances, each instance's time rounds up to whole seconds with a floor of minimum_s. No records: no job
    (the state machine writes a skip record and starts nothing)."""
    if records <= 0:
        return 0.0
    per_instance_s = startup_s + records / (records_per_s_per_instance * instance_count)
    billed = max(minimum_s, math.ceil(per_instance_s))
    return instance_count * billed / 3600


MONTHS = {
    m: i
    for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)
}
WEEKDAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
_SUPPORTED = (
    "supported: numbers, lists (a,b), ranges (a-b) and steps (*/n, a/n) in minutes, hours, day-of-month, month and "
    "day-of-week (names like MON-FRI and JAN allowed), ? in one of the day fields, * for the year"
)


def runs_per_month(schedule: str) -> float:
    """Runs of an EventBridge Scheduler cron(minutes hours day-of-month month day-of-week year) in a 30-day month.

    minutes x hours x days; days are the matching days of month that exist in a 30-day month, or the matching
    weekdays x 30/7; a month field limited to some months scales by months/12. L, W, # and a limited year have
    no fixed monthly count and are refused.
    """
    match = _CRON.match(schedule.strip())
    fields = match["fields"].split() if match else []
    if len(fields) != 6:
        raise CronError(f"{schedule!r} is not cron(minutes hours day-of-month month day-of-week year); {_SUPPORTED}.")
    minute, hour, day, month, weekday, year = fields
    for name, value in zip(("minutes", "hours", "day-of-month", "month", "day-of-week", "year"), fields, strict=True):
        bare = value.upper()
        for known in (*MONTHS, *WEEKDAYS):  # JUL and WED hold L and W without meaning them
            bare = bare.replace(known, "")
        for token in ("L", "W", "#"):
            if token in bare:
                raise CronError(
                    f"{schedule!r}: the {name} field {value!r} uses {token}, which has no fixed count per month; "
                    f"{_SUPPORTED}."
                )
    if year != "*":
        raise CronError(f"{schedule!r}: a year field other than * ({year!r}) ends the schedule; {_SUPPORTED}.")
    minutes = _expand("minutes", minute, 0, 59, {})
    hours = _expand("hours", hour, 0, 23, {})
    months = _expand("month", month, 1, 12, MONTHS)
    if (day == "?") == (weekday == "?"):
        raise CronError(f"{schedule!r}: exactly one of day-of-month and day-of-week must be ?; {_SUPPORTED}.")
    if weekday == "?":
        days = float(len([d for d in _expand("day-of-month", day, 1, 31, {}) if d <= DAYS_PER_MONTH]))
    else:
        days = len(_expand("day-of-week", weekday, 1, 7, WEEKDAYS)) * DAYS_PER_MONTH / 7
    return len(minutes) * len(hours) * days * len(months) / 12


def _expand(name: str, text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    def number(token: str) -> int:
        token = token.upper()
        if token in names:
            return names[token]
        if not token.isdigit():
            raise CronError(f"the {name} field: {token!r} is not a number or name; {_SUPPORTED}.")
        return int(token)

    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = number(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = number(first_text), number(last_text)
        else:
            first = number(base)
            last = high if step_text else first
        if not low <= first <= last <= high or step < 1:
            raise CronError(f"the {name} field: {part!r} is outside {low}-{high} or runs backwards; {_SUPPORTED}.")
        values.update(range(first, last + 1, step))
    return values


# ----- recommendation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The same month of predictions served three ways (USD per month)."""

    requests_per_month: int
    realtime_monthly: float
    realtime_instances: int
    realtime_utilisation: float | None  # None: throughput not measured for that instance type
    serverless_monthly: float
    serverless_per_request: float
    serverless_peak_concurrency: float
    batch_monthly: float


@dataclass(frozen=True)
class Recommendation:
    choice: Choice
    reason: str
    break_even_requests_per_month: float | None


def break_even_requests(realtime_monthly: float, serverless_per_request: float) -> float:
    """Requests per month at which serverless costs what the always-on endpoint costs."""
    return realtime_monthly / serverless_per_request if serverless_per_request > 0 else math.inf


def recommend(options: Options) -> Recommendation:
    """Real time or serverless for traffic that waits for answers (the cheaper one that can carry the peak);
    batch when no request waits (no API requests, only scheduled records)."""
    if options.requests_per_month == 0:
        return Recommendation(
            "batch",
            f"no API requests are expected, so nothing waits for an answer: scheduled runs cost "
            f"${options.batch_monthly:,.2f}/month and nothing is paid between runs.",
            None,
        )
    even = break_even_requests(options.realtime_monthly, options.serverless_per_request)
    used = (
        f"{options.realtime_utilisation:.2%} utilised"
        if options.realtime_utilisation is not None
        else "of unmeasured utilisation"
    )
    later = f" If answers can wait for a scheduled run, batch would cost ${options.batch_monthly:,.2f}/month."
    if options.serverless_peak_concurrency > SERVERLESS_MAX_CONCURRENCY:
        return Recommendation(
            "real time",
            f"the peak needs {options.serverless_peak_concurrency:.0f} concurrent serverless invocations, over "
            f"Serverless Inference's {SERVERLESS_MAX_CONCURRENCY}.{later}",
            even,
        )
    if options.serverless_monthly < options.realtime_monthly:
        return Recommendation(
            "serverless",
            f"the always-on endpoint ({options.realtime_instances} instance(s), "
            f"${options.realtime_monthly:,.2f}/month) would be {used} at {options.requests_per_month:,} "
            f"requests/month; serverless costs ${options.serverless_monthly:,.2f}/month and stays cheaper up to "
            f"{even:,.0f} requests/month (expect cold starts of seconds after idle periods).{later}",
            even,
        )
    return Recommendation(
        "real time",
        f"at {options.requests_per_month:,} requests/month the always-on endpoint ({used}, "
        f"${options.realtime_monthly:,.2f}/month) costs less than serverless (${options.serverless_monthly:,.2f}"
        f"/month); the break-even is {even:,.0f} requests/month.{later}",
        even,
    )


# ----- the report ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineItem:
    item: str
    quantity: str
    unit_price: str
    monthly_low: float
    monthly_high: float


@dataclass(frozen=True)
class PerMillion:
    profile: str
    throughput: str  # per instance, or per request for serverless
    source: str
    full_load: float | None  # USD per million predictions on a fully busy instance; None: not measured here
    at_traffic: float | None  # USD per million at the stated traffic


@dataclass
class StageReport:
    stage: str
    summary: str
    items: list[LineItem] = field(default_factory=list)
    per_million: list[PerMillion] = field(default_factory=list)
    recommendation: Recommendation | None = None
    idle_saving: IdleSaving | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_low(self) -> float:
        return sum(i.monthly_low for i in self.items)

    @property
    def total_high(self) -> float:
        return sum(i.monthly_high for i in self.items)


def stage_report(usage: StageUsage, prices: PriceTable, measured: Measured) -> StageReport:
    traffic = usage.traffic
    endpoint = (
        f"serverless {usage.serverless.memory_mb} MB"
        if usage.serverless is not None
        else ", ".join(f"{i.instance_type} x{_count(i)}" for i in usage.instances) or "none"
    )
    load = (
        f"{traffic.requests_per_month:,} requests/month x {traffic.texts_per_request} text(s), "
        f"peak {traffic.peak_requests_per_second:g}/s"
        if traffic is not None
        else "no traffic: section"
    )
    report = StageReport(usage.stage, f"{usage.compute} {endpoint}; {load}")
    requests = traffic.requests_per_month if traffic is not None else 0
    texts = traffic.texts_per_request if traffic is not None else 1
    # The model runs each text of a request alone (int8), so a request's time grows with its texts.
    request_s = measured.latency_single_text_ms.value * texts / 1000

    if usage.scale_to_zero is not None:
        report.idle_saving = idle_saving(usage.scale_to_zero, prices.instance_hourly(usage.scale_to_zero.instance_type))
    for group in usage.instances:
        hourly = prices.instance_hourly(group.instance_type)
        report.items.append(
            LineItem(
                f"endpoint instances ({group.role})",
                f"{_count(group)} x {group.instance_type} x {HOURS_PER_MONTH} h",
                f"{_price(hourly)}/h",
                instance_monthly(hourly, group.min_count),
                instance_monthly(hourly, group.max_count),
            )
        )
    if usage.serverless is not None:
        s = usage.serverless
        compute = serverless_compute_monthly(requests, request_s, s.memory_mb, prices.serverless.per_gb_second)
        report.items.append(
            LineItem(
                "serverless compute",
                f"{requests / 1e6:g} M x {request_s * 1000:.1f} ms x {s.memory_mb / 1024:g} GB",
                f"{_price(prices.serverless.per_gb_second)}/GB-s",
                compute,
                compute,
            )
        )
        data = serverless_data_monthly(
            requests, traffic.average_payload_kb if traffic else 1, prices.serverless.per_gb_processed
        )
        report.items.append(
            LineItem(
                "serverless data in + out",
                f"{requests / 1e6:g} M x 2 x payload",
                f"{_price(prices.serverless.per_gb_processed)}/GB",
                data,
                data,
            )
        )
        if s.provisioned_concurrency:
            provisioned = provisioned_concurrency_monthly(
                s.provisioned_concurrency, s.memory_mb, prices.serverless.provisioned_concurrency_per_gb_second
            )
            report.items.append(
                LineItem(
                    "provisioned concurrency (estimate)",
                    f"{s.provisioned_concurrency} x {s.memory_mb / 1024:g} GB x {HOURS_PER_MONTH} h",
                    f"{_price(prices.serverless.provisioned_concurrency_per_gb_second)}/GB-s",
                    provisioned,
                    provisioned,
                )
            )
    if usage.batch is not None:
        b = usage.batch
        runs = runs_per_month(b.schedule)
        per_instance = scaled_throughput(
            measured.batch_records_s.value, measured.vcpus, b.instance_type, measured.one_core_share.value
        )
        hourly = prices.batch_hourly(b.instance_type)
        records = b.records_per_run or 0
        hours = batch_run_instance_hours(records, per_instance, b.instance_count) if per_instance else 0.0
        cost = runs * hours * hourly
        report.items.append(
            LineItem(
                f"batch transform ({b.schedule})",
                f"{runs:g} runs x {hours:.3f} instance-h ({records:,} records)",
                f"{_price(hourly)}/h",
                cost,
                cost,
            )
        )
        if not records:
            report.notes.append("batch: traffic.batch_records_per_run is not set: a run without input starts no job.")
    if usage.lambda_memory_mb is not None and traffic is not None:
        api = api_gateway_monthly(requests, prices.api_gateway.rest_per_million_requests)
        report.items.append(
            LineItem(
                "API Gateway REST requests",
                f"{requests / 1e6:g} M requests",
                f"{_price(prices.api_gateway.rest_per_million_requests)}/M",
                api,
                api,
            )
        )
        # The Lambda waits for the model: the measured front-door p50 for one text, plus the model's time for
        # every further text in the request.
        duration_ms = measured.front_door_ms.value + (texts - 1) * measured.latency_single_text_ms.value
        fn = lambda_monthly(
            requests,
            duration_ms,
            usage.lambda_memory_mb,
            prices.lambda_.arm64_per_gb_second,
            prices.lambda_.per_million_requests,
        )
        report.items.append(
            LineItem(
                f"Lambda front door (arm64, {usage.lambda_memory_mb} MB)",
                f"{requests / 1e6:g} M x {math.ceil(duration_ms)} ms x {usage.lambda_memory_mb / 1024:g} GB",
                f"{_price(prices.lambda_.arm64_per_gb_second)}/GB-s + {_price(prices.lambda_.per_million_requests)}/M",
                fn,
                fn,
            )
        )
    elif traffic is not None:
        report.notes.append("no api: section: no API Gateway or Lambda cost.")
    if traffic is None:
        report.notes.append("no traffic: section: usage-based lines, cost per prediction and recommendation skipped.")
        return report
    _compare(report, usage, traffic, prices, measured, request_s)
    return report


# The CPU generations the comparison prices side by side (same size as the stage's instance): Ice Lake with
# AVX-512 VNNI, and Sapphire Rapids, which adds AMX (int8 and bf16 tile units).
FAMILY_GENERATIONS = {"c6i": "Ice Lake, AVX-512 VNNI", "c7i": "Sapphire Rapids, AVX-512 VNNI + AMX"}


def _compare_families(
    report: StageReport, instance_type: str, prices: PriceTable, unit: Figure, measured: Measured
) -> None:
    """c6i vs c7i at the stage's instance size: cost per million at full load from the same per-core figure
    (the measuring CPU's), and which is cheaper. AMX could make c7i faster per core; until a c7i figure is
    measured, the comparison assumes equal throughput and so follows the hourly price."""
    family = compute_profiles.family(instance_type)
    if accelerated(instance_type) is not None or family not in FAMILY_GENERATIONS:
        return
    size = instance_type.rsplit(".", 1)[1]
    found: list[tuple[float, str]] = []
    for other, generation in FAMILY_GENERATIONS.items():
        candidate = f"ml.{other}.{size}"
        if candidate not in prices.realtime:
            continue
        per_instance = scaled_throughput(unit.value, measured.vcpus, candidate, measured.one_core_share.value)
        assert per_instance is not None
        hourly = prices.instance_hourly(candidate)
        full = cost_per_million(hourly, per_instance)
        found.append((full, candidate))
        report.per_million.append(
            PerMillion(
                f"cpu int8 on {candidate} ({generation}, {_price(hourly)}/h)",
                f"{per_instance:,.0f} texts/s per instance",
                f"the same per-core figure ({unit.source}); {other} not measured on its own CPU here",
                full,
                None,
            )
        )
    if len(found) == 2:
        (cheap, winner), (dear, loser) = sorted(found)
        report.notes.append(
            f"{winner} costs {(1 - cheap / dear):.1%} less per million predictions than {loser} at equal "
            f"throughput per core; {loser} wins only if its CPU serves more than {dear / cheap:.2f}x the texts "
            "per core (AMX was not measured here: the benchmarks ran without it)."
        )


def _compare(
    report: StageReport,
    usage: StageUsage,
    traffic: TrafficUsage,
    prices: PriceTable,
    measured: Measured,
    request_s: float,
) -> None:
    predictions = traffic.predictions_per_month
    main = usage.instances[0] if usage.instances else None
    rt_type = main.instance_type if main is not None else DEFAULT_CPU_INSTANCE
    rt_hourly = prices.instance_hourly(rt_type)
    # One text per request: the 8-client single-text load run; several texts: the batched server run.
    unit = measured.realtime_single_texts_s if traffic.texts_per_request == 1 else measured.realtime_batched_texts_s
    share = measured.one_core_share.value
    per_instance = scaled_throughput(unit.value, measured.vcpus, rt_type, share)
    upper = scaled_throughput(unit.value, measured.vcpus, rt_type)
    floor = main.min_count if main is not None else (2 if usage.production else 1)
    peak_texts = traffic.peak_requests_per_second * traffic.texts_per_request
    rt_instances = max(floor, instances_for_peak(peak_texts, per_instance)) if per_instance else floor
    rt_monthly = instance_monthly(rt_hourly, rt_instances)
    used = utilisation(predictions, rt_instances, per_instance) if per_instance else None

    memory = usage.serverless.memory_mb if usage.serverless is not None else DEFAULT_SERVERLESS_MEMORY_MB
    sv_compute = serverless_compute_monthly(1, request_s, memory, prices.serverless.per_gb_second)
    sv_data = serverless_data_monthly(1, traffic.average_payload_kb, prices.serverless.per_gb_processed)
    sv_per_request = sv_compute + sv_data
    sv_monthly = traffic.requests_per_month * sv_per_request
    if usage.serverless is not None and usage.serverless.provisioned_concurrency:
        sv_monthly += provisioned_concurrency_monthly(
            usage.serverless.provisioned_concurrency, memory, prices.serverless.provisioned_concurrency_per_gb_second
        )

    # Batch for the same predictions: one run a day on the stage's transform instance type.
    bt_type = usage.batch.instance_type if usage.batch is not None else rt_type
    bt_per_instance = scaled_throughput(measured.batch_records_s.value, measured.vcpus, bt_type, share)
    bt_hourly = prices.batch_hourly(bt_type)
    per_day = math.ceil(predictions / DAYS_PER_MONTH)
    bt_monthly = (
        DAYS_PER_MONTH * batch_run_instance_hours(per_day, bt_per_instance, 1) * bt_hourly if bt_per_instance else 0.0
    )

    def scale(figure: Figure, instance_type: str) -> str:
        return (
            f"{figure.source}; x {share:.2f} for one core ({measured.one_core_share.source}) "
            f"x {physical_cores(instance_type)} core(s)"
        )

    report.per_million.append(
        PerMillion(
            f"cpu int8, real time ({rt_type} x{rt_instances})",
            f"{per_instance:,.0f} texts/s per instance (two-core scaling: {upper:,.0f})"
            if per_instance and upper
            else "not measured here",
            scale(unit, rt_type) if per_instance else "no measurement for this instance type",
            cost_per_million(rt_hourly, per_instance) if per_instance else None,
            rt_monthly / predictions * 1e6 if predictions else None,
        )
    )
    report.per_million.append(
        PerMillion(
            f"serverless ({memory} MB)",
            f"{request_s * 1000:.1f} ms per request of {traffic.texts_per_request} text(s)",
            measured.latency_single_text_ms.source,
            sv_per_request / traffic.texts_per_request * 1e6,
            sv_monthly / predictions * 1e6 if predictions else None,
        )
    )
    report.per_million.append(
        PerMillion(
            f"batch ({bt_type}, one run a day)",
            f"{bt_per_instance:,.0f} records/s per instance" if bt_per_instance else "not measured here",
            scale(measured.batch_records_s, bt_type) if bt_per_instance else "no measurement for this instance type",
            cost_per_million(bt_hourly, bt_per_instance) if bt_per_instance else None,
            bt_monthly / predictions * 1e6 if predictions and bt_per_instance else None,
        )
    )
    _compare_families(report, rt_type, prices, unit, measured)
    defaults = {name: entry.default_instance_type for name, entry in compute_profiles.PROFILES.items()}
    gpu_type = rt_type if accelerated(rt_type) == "gpu" else defaults["gpu"]
    inf_type = rt_type if accelerated(rt_type) == "inferentia" else defaults["inferentia"]
    for profile, kind in (("gpu", gpu_type), ("inferentia", inf_type)):
        report.per_million.append(
            PerMillion(
                f"{profile} ({kind}, {_price(prices.instance_hourly(kind))}/h)",
                "not measured here",
                "no GPU or Inferentia on the machine that ran the benchmarks",
                None,
                None,
            )
        )
    report.recommendation = recommend(
        Options(
            requests_per_month=traffic.requests_per_month,
            realtime_monthly=rt_monthly,
            realtime_instances=rt_instances,
            realtime_utilisation=used,
            serverless_monthly=sv_monthly,
            serverless_per_request=sv_per_request,
            serverless_peak_concurrency=traffic.peak_requests_per_second * request_s,
            batch_monthly=bt_monthly,
        )
    )


def _price(value: float) -> str:
    """$0.204, $3.50, $0.0000133334: all the digits the table has, no exponent."""
    text = f"{value:.10f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def _count(group: InstanceUsage) -> str:
    return str(group.min_count) if group.min_count == group.max_count else f"{group.min_count}-{group.max_count}"


def _usd(low: float, high: float | None = None) -> str:
    if high is None or abs(high - low) < 0.005:
        return f"{low:,.2f}"
    return f"{low:,.2f} - {high:,.2f}"


def render(reports: list[StageReport], prices: PriceTable) -> str:
    lines = [
        f"Monthly cost per stage, {prices.region} on-demand {prices.currency} as of {prices.as_of} "
        f"(infra/catalog/prices.json); {HOURS_PER_MONTH} h and {DAYS_PER_MONTH} days a month; free tiers, CloudWatch, "
        "S3 and data transfer not included.",
    ]
    for r in reports:
        lines += ["", f"{STAGE_PREFIX}{r.stage}: {r.summary}"]
        rows = [("line item", "quantity", "unit price", "monthly USD")]
        rows += [(i.item, i.quantity, i.unit_price, _usd(i.monthly_low, i.monthly_high)) for i in r.items]
        rows.append(("total", "", "", _usd(r.total_low, r.total_high)))
        lines += columns(rows, right=(3,), indent="  ")
        if r.per_million:
            lines += ["", "  cost per million predictions:"]
            pm = [("compute profile", "throughput", "USD/M at full load", "USD/M at this traffic", "throughput from")]
            pm += [
                (
                    p.profile,
                    p.throughput,
                    "not measured here" if p.full_load is None else f"{p.full_load:,.2f}",
                    "not measured here" if p.at_traffic is None else f"{p.at_traffic:,.2f}",
                    p.source,
                )
                for p in r.per_million
            ]
            lines += columns(pm, right=(2, 3), indent="  ")
        if r.idle_saving is not None:
            s = r.idle_saving
            lines += ["", f"  scale to zero ({s.instances} x {s.instance_type} while requests arrive):"]
            lines += columns(
                [
                    ("", "instance-hours/month", "monthly USD"),
                    ("without scale to zero", f"{s.instances * s.hours_without:,.0f}", f"{s.monthly_without:,.2f}"),
                    ("with scale to zero", f"{s.instances * s.hours_with:,.0f}", f"{s.monthly_with:,.2f}"),
                    (
                        "idle saving",
                        f"{s.instances * (s.hours_without - s.hours_with):,.0f}",
                        f"{s.monthly_saving:,.2f}",
                    ),
                ],
                right=(1, 2),
                indent="    ",
            )
            lines.append(f"    assumption: {s.assumption}.")
        if r.recommendation is not None:
            lines += ["", f"  recommendation: {r.recommendation.choice}: {r.recommendation.reason}"]
        lines += [f"  note: {n}" for n in r.notes]
    unconfirmed = sorted(k for k in prices.unconfirmed if k.startswith("ml."))
    lines += [
        "",
        f"Prices not confirmed on an AWS page (see infra/catalog/prices.json): {', '.join(unconfirmed)}.",
    ]
    return "\n".join(lines) + "\n"


def report(config_dir: Path, stage: str | None = None) -> tuple[list[StageReport], PriceTable]:
    stages = load_all(config_dir)
    if stage is not None:
        if stage not in stages:
            raise CostError(f"no stage {stage!r} in {config_dir}; stages: {', '.join(stages)}.")
        stages = {stage: stages[stage]}
    prices = load_prices()
    measured = load_measured()
    try:
        return [stage_report(usage_of(name, cfg), prices, measured) for name, cfg in stages.items()], prices
    except KeyError as err:  # an instance type without a price: the message lists the known ones
        raise CostError(str(err)) from err


def main(config_dir: Path = paths.CONFIG_DIR, stage: str | None = None, json_path: Path | None = None) -> int:
    reports, prices = report(config_dir, stage)
    print(render(reports, prices), end="")
    if json_path is not None:
        document: dict[str, Any] = {
            "prices": {"as_of": prices.as_of.isoformat(), "region": prices.region, "sources": list(prices.sources)},
            "stages": {
                r.stage: {
                    "items": [asdict(i) for i in r.items],
                    "total_low": r.total_low,
                    "total_high": r.total_high,
                    "per_million": [asdict(p) for p in r.per_million],
                    "recommendation": asdict(r.recommendation) if r.recommendation else None,
                    "idle_saving": {**asdict(r.idle_saving), "monthly_saving": r.idle_saving.monthly_saving}
                    if r.idle_saving
                    else None,
                    "notes": r.notes,
                }
                for r in reports
            },
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {json_path}")
    return 0
