"""What becomes of a message after a failed attempt: the pure decision the dispatcher applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carebot.dispatch.retry import (
    Failure,
    FailureKind,
    Outcome,
    RetryPolicy,
    after_failure,
    deferral,
)

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=30, max_seconds=300)
TWO_DAYS = NOW + timedelta(days=2)


def decide(
    kind: FailureKind,
    *,
    attempt: int,
    not_after: datetime = TWO_DAYS,
    retry_after: float | None = None,
) -> Outcome:
    return after_failure(
        notification_id=7,
        attempt=attempt,
        max_attempts=6,
        not_after=not_after,
        now=NOW,
        failure=Failure(kind, "twilio 20503: Service Unavailable (HTTP 503)", retry_after),
        policy=POLICY,
    )


def test_a_permanent_error_fails_at_once() -> None:
    outcome = decide(FailureKind.PERMANENT, attempt=1)
    assert outcome.action == "fail" and outcome.retry_at is None
    assert outcome.reason.startswith("permanent error: ")


def test_a_transient_error_retries_long_past_max_attempts_while_the_deadline_allows() -> None:
    for attempt in (1, 6, 50, 500):
        outcome = decide(FailureKind.TRANSIENT, attempt=attempt)
        assert outcome.action == "retry" and outcome.retry_at is not None


def test_the_wait_between_transient_retries_never_exceeds_the_ceiling() -> None:
    waits = []
    for attempt in range(1, 40):
        outcome = decide(FailureKind.TRANSIENT, attempt=attempt)
        assert outcome.retry_at is not None
        waits.append((outcome.retry_at - NOW).total_seconds())
    assert max(waits) <= 300
    # Exponential at first, then at the ceiling (with its jitter, half of it at least).
    assert waits[0] <= 30 and min(waits[10:]) >= 150


def test_a_transient_error_whose_next_try_would_be_too_late_expires_the_message() -> None:
    outcome = decide(FailureKind.TRANSIENT, attempt=3, not_after=NOW + timedelta(seconds=10))
    assert outcome.action == "expire"
    assert "past its not-after time" in outcome.reason and "503" in outcome.reason


def test_retry_after_is_a_floor_under_the_backoff() -> None:
    outcome = decide(FailureKind.TRANSIENT, attempt=1, retry_after=120.0)
    assert outcome.retry_at is not None and outcome.retry_at - NOW >= timedelta(seconds=120)


def test_an_unexpected_error_retries_until_max_attempts_then_fails_with_the_reason() -> None:
    for attempt in range(1, 6):
        assert decide(FailureKind.UNEXPECTED, attempt=attempt).action == "retry"
    outcome = decide(FailureKind.UNEXPECTED, attempt=6)
    assert outcome.action == "fail"
    assert outcome.reason.startswith("gave up after 6 attempt(s); last error: ")


def test_a_deferral_moves_the_message_to_when_the_circuit_half_opens() -> None:
    outcome = deferral(
        notification_id=7, wait_seconds=30, not_after=TWO_DAYS, now=NOW, error="circuit_open"
    )
    assert outcome.action == "retry" and outcome.retry_at == NOW + timedelta(seconds=30)
    late = deferral(
        notification_id=7,
        wait_seconds=30,
        not_after=NOW + timedelta(seconds=5),
        now=NOW,
        error="circuit_open",
    )
    assert late.action == "expire" and "while the provider was failing" in late.reason
