"""Rate limits and circuit breakers around channels, on a fake monotonic clock."""

from __future__ import annotations

import asyncio

import pytest

from carebot.channels import ChannelKind, MemoryChannel, OutboundMessage
from carebot.channels.guards import CircuitBreaker, GuardedChannel, SharedTokenBucket
from carebot.exceptions import ChannelError


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _message(n: int = 1) -> OutboundMessage:
    return OutboundMessage(notification_id=n, kind=ChannelKind.SMS, to="+8613800138000", body="hi")


async def test_a_shared_bucket_waits_as_long_as_it_is_told_then_asks_again() -> None:
    answers = [0.03, 0.01, 0.0]
    asked = 0

    def take() -> float:  # runs in a worker thread, as the database transaction does
        nonlocal asked
        asked += 1
        return answers.pop(0)

    bucket = SharedTokenBucket(take)
    started = asyncio.get_running_loop().time()
    await bucket.acquire()
    assert asked == 3 and answers == []
    assert asyncio.get_running_loop().time() - started >= 0.04


async def test_sends_of_one_process_queue_for_the_shared_bucket_one_at_a_time() -> None:
    in_take = 0
    most = 0
    tokens = iter([0.0, 0.01, 0.0, 0.01, 0.0])

    def take() -> float:
        nonlocal in_take, most
        in_take += 1
        most = max(most, in_take)
        try:
            return next(tokens)
        finally:
            in_take -= 1

    bucket = SharedTokenBucket(take)
    await asyncio.gather(*(bucket.acquire() for _ in range(3)))
    assert most == 1


def test_the_breaker_opens_after_consecutive_failures_and_tries_once_after_cooldown() -> None:
    clock = FakeTime()
    breaker = CircuitBreaker(threshold=3, cooldown=10, monotonic=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()  # exactly one trial
    breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


async def test_an_open_circuit_fails_fast_as_retryable_without_calling_the_provider() -> None:
    clock = FakeTime()
    inner = MemoryChannel(kind=ChannelKind.SMS)
    guarded = GuardedChannel(
        inner, breaker=CircuitBreaker(threshold=2, cooldown=30, monotonic=clock)
    )
    inner.fail_next(ChannelError("503", retryable=True), times=2)
    for n in range(2):
        with pytest.raises(ChannelError):
            await guarded.send(_message(n))
    with pytest.raises(ChannelError) as raised:
        await guarded.send(_message(3))
    assert raised.value.retryable and raised.value.code == "circuit_open"
    assert len(inner.attempts) == 2  # the third never reached the provider
    clock.now += 30
    receipt = await guarded.send(_message(4))
    assert receipt.provider_id and guarded.breaker is not None
    assert guarded.breaker.state == "closed"


async def test_a_permanent_error_does_not_trip_the_breaker() -> None:
    inner = MemoryChannel(kind=ChannelKind.SMS)
    guarded = GuardedChannel(inner, breaker=CircuitBreaker(threshold=1, cooldown=30))
    inner.fail_next(ChannelError("21211 invalid number", retryable=False, code="21211"))
    with pytest.raises(ChannelError):
        await guarded.send(_message())
    assert guarded.breaker is not None and guarded.breaker.state == "closed"


async def test_an_open_circuit_refuses_in_ready_so_no_attempt_is_spent() -> None:
    clock = FakeTime()
    inner = MemoryChannel(kind=ChannelKind.SMS)
    breaker = CircuitBreaker(threshold=1, cooldown=30, monotonic=clock)
    guarded = GuardedChannel(inner, breaker=breaker)
    await guarded.ready()  # closed: nothing to wait for
    inner.fail_next(ChannelError("503", retryable=True))
    with pytest.raises(ChannelError):
        await guarded.send(_message())
    clock.now += 10
    with pytest.raises(ChannelError) as refused:
        await guarded.ready()
    assert refused.value.code == "circuit_open" and refused.value.retry_after == 20
    assert breaker.failing_since == 1000.0 and breaker.last_error == "503"
    # Half-open: ready admits one trial; the next caller is told to ask again shortly.
    clock.now += 20
    await guarded.ready()
    with pytest.raises(ChannelError) as again:
        await guarded.ready()
    assert again.value.retry_after == 1.0
    await guarded.send(_message(1))
    assert breaker.state == "closed" and breaker.failing_since is None


def test_a_trial_that_never_reports_back_stops_blocking_after_a_cooldown() -> None:
    clock = FakeTime()
    breaker = CircuitBreaker(threshold=1, cooldown=10, monotonic=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow() and not breaker.allow()
    clock.now += 10  # the trial's send was abandoned (its claim was lost, say)
    assert breaker.allow()


async def test_an_unexpected_exception_releases_the_trial_without_closing_the_circuit() -> None:
    clock = FakeTime()
    inner = MemoryChannel(kind=ChannelKind.SMS)
    breaker = CircuitBreaker(threshold=1, cooldown=10, monotonic=clock)
    guarded = GuardedChannel(inner, breaker=breaker)
    breaker.record_failure()
    clock.now += 10
    await guarded.ready()
    inner.fail_next(ValueError("bad address"))
    with pytest.raises(ValueError):
        await guarded.send(_message())
    assert breaker.state == "half-open" and breaker.allow()
