"""The batch run's JSONata expressions and the plain Python twins the tests check them by.

The state machine names each transform job and dates each run with JSONata built here at synth
(`job_name_expression`, `run_date_expression`, `capacity_wait_expression`); each has a twin
(`transform_job_name`, `run_date`, `capacity_wait_s`) that gives the same answer without AWS. No CDK
here: these are strings and numbers.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

# Transform job names: at most 63 characters, [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html). A stage's state
# machine role may only create, stop and tag jobs whose names start with its own prefix, sagebert-<stage>-,
# and its model role may only write those jobs' log streams: one stage cannot touch another's jobs.
JOB_NAME_PREFIX = "sagebert-"
TRANSFORM_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TRANSFORM_JOB_NAME_MAX = 63
# <prefix><execution name, sanitized, as many characters as fit>-<first 8 hex of its SHA-256>-<attempt, 1..11>:
# the hash keeps two execution names that share their first characters (or differ only in characters the job
# name cannot hold) apart; the attempt gives every capacity retry a fresh job name.
HASH_CHARS = 8
MAX_ATTEMPT_DIGITS = 2
EXECUTION_NAME = "$states.context.Execution.Name"


def job_name_prefix(stage_name: str) -> str:
    """The prefix of every transform job a stage starts: sagebert-<stage>-."""
    return f"{JOB_NAME_PREFIX}{stage_name}-"


def execution_name_chars(prefix: str) -> int:
    """How many characters of the execution name fit in a job name after `prefix`."""
    return TRANSFORM_JOB_NAME_MAX - len(prefix) - 1 - HASH_CHARS - 1 - MAX_ATTEMPT_DIGITS


def check_attempts(capacity_retries: int) -> None:
    """Refuse more capacity retries than the job name's attempt digits can count."""
    if len(str(capacity_retries + 1)) > MAX_ATTEMPT_DIGITS:
        raise ValueError("capacity_retries must leave the attempt number at most two digits (<= 98).")


def transform_job_name(execution_name: str, attempt: int, prefix: str = JOB_NAME_PREFIX) -> str:
    """The job name `job_name_expression` gives an execution (Python twin of the JSONata)."""
    # JSONata runs on JavaScript strings: $replace sees a character outside the Basic Multilingual Plane
    # as two UTF-16 code units, so it becomes two dashes.
    sanitized = "".join(
        char if re.fullmatch(r"[A-Za-z0-9-]", char) else "-" * (2 if ord(char) > 0xFFFF else 1)
        for char in execution_name
    )
    digest = hashlib.sha256(execution_name.encode("utf-8")).hexdigest()[:HASH_CHARS]
    return f"{prefix}{sanitized[: execution_name_chars(prefix)]}-{digest}-{attempt}"


def job_name_expression(attempt: str, prefix: str = JOB_NAME_PREFIX) -> str:
    """JSONata for the transform job name of attempt `attempt` (a JSONata number expression)."""
    return (
        f"'{prefix}' & $substring($replace({EXECUTION_NAME}, /[^A-Za-z0-9-]/, '-'), 0, "
        f"{execution_name_chars(prefix)}) & '-' & $substring($hash({EXECUTION_NAME}, 'SHA-256'), 0, {HASH_CHARS}) & "
        f"'-' & $string({attempt})"
    )


# The run's date in the schedule's time zone: JSONata knows no time zones, only fixed offsets, so the
# zone's offset changes in these years are written into the expression at synth (from the tz database);
# a later instant keeps the last offset, an earlier one the first.
OFFSET_TABLE_YEARS = (2025, 2051)
RUN_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@functools.cache
def utc_offsets(timezone: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The zone's UTC offset (milliseconds) at the start of OFFSET_TABLE_YEARS and each change within them:
    (epoch milliseconds from which it applies, new offset in milliseconds)."""
    if timezone == "UTC":
        return 0, ()
    zone = ZoneInfo(timezone)

    def offset(epoch_s: int) -> int:
        value = datetime.fromtimestamp(epoch_s, UTC).astimezone(zone).utcoffset()
        assert value is not None
        return int(value.total_seconds()) * 1000

    start = int(datetime(OFFSET_TABLE_YEARS[0], 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(OFFSET_TABLE_YEARS[1], 1, 1, tzinfo=UTC).timestamp())
    current = offset(start)
    initial = current
    changes: list[tuple[int, int]] = []
    day = 86_400
    for low in range(start, end, day):
        high = min(low + day, end)
        if offset(high) == current:
            continue
        while high - low > 1:  # the first second with the new offset
            middle = (low + high) // 2
            low, high = (middle, high) if offset(middle) == current else (low, middle)
        current = offset(high)
        changes.append((high * 1000, current))
    return initial, tuple(changes)


def run_date_expression(timezone: str) -> str:
    """JSONata for the run's date (YYYY-MM-DD) from the execution input: `date` as given, else the date of
    `scheduledTime` in `timezone`; anything else stops the run with an error naming both."""
    initial, changes = utc_offsets(timezone)
    if changes:
        table = ", ".join(f"[{at}, {offset}]" for at, offset in changes)
        offset_expression = f"$reduce([{table}], function($o, $c) {{ $ms >= $c[0] ? $c[1] : $o }}, {initial})"
    else:
        offset_expression = str(initial)
    # The offset is added to the instant rather than given to $fromMillis as '+HHMM': JSONata applies the
    # minutes of a negative offset with the wrong sign (-0230 becomes -01:30).
    return (
        "( $ms := $toMillis($states.input.scheduledTime); "
        f"$offset := {offset_expression}; "
        "$date := $exists($states.input.date) ? $states.input.date : "
        "$fromMillis($ms + $offset, '[Y0001]-[M01]-[D01]'); "
        "$contains($string($date), /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/) ? $date : "
        "$error('The execution input needs scheduledTime (ISO 8601, e.g. 2026-11-26T02:00:00Z) or date "
        "(YYYY-MM-DD).') )"
    )


def run_date(execution_input: Mapping[str, Any], timezone: str) -> str:
    """The date `run_date_expression` gives an execution input (Python twin of the JSONata)."""
    if "date" in execution_input:
        date = str(execution_input["date"])
    else:
        scheduled = datetime.fromisoformat(str(execution_input["scheduledTime"]).replace("Z", "+00:00"))
        epoch_ms = int(scheduled.timestamp() * 1000)
        offset, changes = utc_offsets(timezone)
        for at, new_offset in changes:
            offset = new_offset if epoch_ms >= at else offset
        date = datetime.fromtimestamp((epoch_ms + offset) / 1000, UTC).strftime("%Y-%m-%d")
    if not RUN_DATE.match(date):
        raise ValueError(f"run date {date!r} is not YYYY-MM-DD")
    return date


# A capacity retry waits CAPACITY_WAIT_S * 2^(attempt - 1) seconds, at most CAPACITY_WAIT_MAX_S.
CAPACITY_WAIT_S = 300
CAPACITY_WAIT_MAX_S = 3600
CAPACITY_FAILURE = "CapacityError|InsufficientCapacity"


def capacity_wait_expression() -> str:
    """JSONata for the seconds to wait after attempt `$attempt` failed for capacity."""
    return f"$min([{CAPACITY_WAIT_MAX_S}, {CAPACITY_WAIT_S} * $power(2, $attempt - 1)])"


def capacity_wait_s(attempt: int) -> int:
    """Seconds the state machine waits after attempt `attempt` failed for capacity (twin of the JSONata)."""
    return int(min(CAPACITY_WAIT_MAX_S, CAPACITY_WAIT_S * 2 ** (attempt - 1)))


def capacity_retry_condition(capacity_retries: int) -> str:
    """JSONata: the caught `$failure` is a transform job that failed for lack of capacity, and attempts are left."""
    return (
        "$failure.Error = 'States.TaskFailed' and "
        f"$contains($string($failure.Cause), /{CAPACITY_FAILURE}/) and "
        f"$attempt <= {capacity_retries}"
    )
