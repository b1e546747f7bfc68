"""What happens to a message after a failed attempt: retry at a time, fail, or expire.

Pure functions of (attempt, error, deadline, now, policy), so the dispatcher, the reaper and
their tests share one rule:

- A permanent error (an invalid number, an opt-out, SMTP 5xx) fails the message at once.
- A transient error (timeout, connection refused, HTTP 5xx or 429, SMTP 4xx, an open
  circuit) never ends a message before its ``not_after``: it is retried with capped
  exponential backoff for as long as the deadline allows, whatever the attempt count, and
  ends ``expired`` when the next try would come too late. ``max_attempts`` does not apply:
  a provider outage is nobody's fault, and the deadline is what bounds it.
- An unexpected error (an exception the channel does not know, a crash mid-send) may be the
  message's own fault (a poison row): it is retried, but at most ``max_attempts`` attempts
  in all, then the message fails with the reason.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from carebot.dispatch.backoff import retry_delay

__all__ = ["Failure", "FailureKind", "Outcome", "RetryPolicy", "after_failure", "deferral"]


class FailureKind(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class Failure:
    """One failed attempt: what kind, the text recorded as ``last_error``, the provider's
    ``Retry-After`` if it gave one."""

    kind: FailureKind
    error: str
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class Outcome:
    """``action`` is ``retry`` (at ``retry_at``), ``fail`` or ``expire``; ``reason`` says why."""

    action: str
    reason: str
    retry_at: datetime | None = None


def after_failure(
    *,
    notification_id: int,
    attempt: int,
    max_attempts: int,
    not_after: datetime,
    now: datetime,
    failure: Failure,
    policy: RetryPolicy,
) -> Outcome:
    """Decide what becomes of a message whose ``attempt``-th try just failed."""
    if failure.kind == FailureKind.PERMANENT:
        return Outcome("fail", f"permanent error: {failure.error}")
    if failure.kind == FailureKind.UNEXPECTED and attempt >= max_attempts:
        return Outcome("fail", f"gave up after {attempt} attempt(s); last error: {failure.error}")
    retry_at = now + retry_delay(
        attempt,
        notification_id=notification_id,
        base_seconds=policy.base_seconds,
        max_seconds=policy.max_seconds,
        retry_after=failure.retry_after,
    )
    if retry_at > not_after:
        return Outcome(
            "expire",
            f"not sent: past its not-after time {not_after.isoformat()} before the provider "
            f"took it ({attempt} attempt(s)); last error: {failure.error}",
        )
    if failure.kind == FailureKind.UNEXPECTED:
        label = f"retry {attempt + 1}/{max_attempts}"
    else:
        label = f"retry {attempt + 1} (transient error; retried until not-after)"
    return Outcome("retry", f"{label} at {retry_at.isoformat()}", retry_at)


def deferral(
    *, notification_id: int, wait_seconds: float, not_after: datetime, now: datetime, error: str
) -> Outcome:
    """A message not tried at all (the provider's circuit is open): moved, no attempt spent.

    Every deferred message is moved to the same instant (when the circuit half-opens), so
    the backlog keeps its order (due time, then id) for when the provider is back.
    """
    retry_at = now + timedelta(seconds=max(0.0, wait_seconds))
    if retry_at > not_after:
        return Outcome(
            "expire",
            f"not sent: past its not-after time {not_after.isoformat()} while the provider "
            f"was failing; last error: {error}",
        )
    return Outcome("retry", f"deferred: {error}; next try at {retry_at.isoformat()}", retry_at)
