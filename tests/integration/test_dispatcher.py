"""The dispatcher on a real SQLite file with capturing channels, in virtual time."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.core import EMAIL, PHONE, insert, make_runtime, notification, planned

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.dispatch.backoff import retry_delay
from carebot.exceptions import ChannelError
from carebot.notifications import NotificationStatus as S
from carebot.runtime import Runtime
from carebot.settings import DispatchSettings
from carebot.store import consent

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
BACKOFF = DispatchSettings(backoff_base_seconds=30, backoff_max_seconds=3600)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(NOW)


@pytest.fixture
def setup(tmp_path: Path, clock: VirtualClock) -> tuple[Runtime, dict[ChannelKind, MemoryChannel]]:
    return make_runtime(tmp_path, clock=clock, quiet_hours="none", dispatch=BACKOFF)


@pytest.fixture
def runtime(setup: tuple[Runtime, dict[ChannelKind, MemoryChannel]]) -> Runtime:
    return setup[0]


@pytest.fixture
def sms(setup: tuple[Runtime, dict[ChannelKind, MemoryChannel]]) -> MemoryChannel:
    return setup[1][ChannelKind.SMS]


@pytest.fixture
def email(setup: tuple[Runtime, dict[ChannelKind, MemoryChannel]]) -> MemoryChannel:
    return setup[1][ChannelKind.EMAIL]


def opted_out(runtime: Runtime, channel: str, address: str) -> bool:
    with runtime.db.transaction() as session:
        return consent.is_opted_out(session, channel=channel, address=address)


async def test_a_due_sms_is_sent_once_and_recorded_with_its_provider_id(
    runtime: Runtime, sms: MemoryChannel, email: MemoryChannel
) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW), now=NOW)

    report = await runtime.dispatcher.run_once()
    again = await runtime.dispatcher.run_once()

    assert (report.claimed, report.sent) == (1, 1)
    assert again.claimed == 0
    [message] = sms.sent
    assert email.attempts == []
    assert (message.notification_id, message.to) == (nid, PHONE)
    assert "SF1234567890" in message.body
    assert message.status_callback == f"https://care.example.com/twilio/status?notification={nid}"
    row = notification(runtime.db, nid)
    assert (row.status, row.provider_id, row.attempts) == (S.SENT, "memory-sms-1", 1)
    assert (row.subject, row.body) == (None, message.body)
    assert row.sent_at == NOW
    assert (row.locked_by, row.locked_until, row.reason) == (None, None, None)


async def test_a_due_email_is_sent_with_its_subject_stored_and_a_deterministic_message_id(
    runtime: Runtime, sms: MemoryChannel, email: MemoryChannel
) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW, channel="email", recipient=EMAIL), now=NOW)

    await runtime.dispatcher.run_once()

    [message] = email.sent
    assert sms.attempts == []
    assert message.subject is not None and "1001" in message.subject
    assert message.message_id == f"<carebot.{nid}@care.example.com>"
    row = notification(runtime.db, nid)
    assert (row.status, row.provider_id, row.attempts) == (S.SENT, "memory-email-1", 1)
    assert (row.subject, row.body) == (message.subject, message.body)


async def test_a_row_not_yet_due_is_left_alone(runtime: Runtime, sms: MemoryChannel) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW + timedelta(seconds=1)), now=NOW)
    report = await runtime.dispatcher.run_once()
    assert report.claimed == 0
    assert sms.attempts == []
    assert notification(runtime.db, nid).status == S.SCHEDULED


async def test_a_retryable_error_puts_the_row_back_after_a_backoff_and_it_is_sent_later(
    runtime: Runtime, sms: MemoryChannel, clock: VirtualClock
) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW), now=NOW)
    sms.fail_next(ChannelError("service unavailable", retryable=True, code="503"))

    report = await runtime.dispatcher.run_once()

    assert report.retried == 1
    row = notification(runtime.db, nid)
    wait = retry_delay(1, notification_id=nid, base_seconds=30, max_seconds=3600)
    assert (row.status, row.attempts, row.locked_by) == (S.SCHEDULED, 1, None)
    assert row.due_at == NOW + wait
    assert row.last_error == "503: service unavailable"
    assert row.reason is not None and row.reason.startswith("retry 2 (transient error")

    clock.set(row.due_at - timedelta(milliseconds=1))
    assert (await runtime.dispatcher.run_once()).claimed == 0

    clock.set(row.due_at)
    assert (await runtime.dispatcher.run_once()).sent == 1
    row = notification(runtime.db, nid)
    assert (row.status, row.attempts, row.provider_id) == (S.SENT, 2, "memory-sms-1")
    assert (len(sms.attempts), len(sms.sent)) == (2, 1)


async def test_a_provider_retry_after_is_a_floor_for_the_next_try(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW), now=NOW)
    sms.fail_next(ChannelError("too many requests", retryable=True, code="429", retry_after=600))
    await runtime.dispatcher.run_once()
    assert notification(runtime.db, nid).due_at == NOW + timedelta(seconds=600)


async def test_a_permanent_error_fails_at_once_with_the_reason(
    runtime: Runtime, sms: MemoryChannel, clock: VirtualClock
) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW), now=NOW)
    sms.fail_next(ChannelError("invalid 'To' phone number", retryable=False, code="21211"))

    report = await runtime.dispatcher.run_once()
    clock.advance(timedelta(days=1))
    later = await runtime.dispatcher.run_once()

    assert (report.failed, later.claimed) == (1, 0)
    row = notification(runtime.db, nid)
    assert (row.status, row.attempts) == (S.FAILED, 1)
    assert row.reason == "permanent error: 21211: invalid 'To' phone number"
    assert sms.sent == []


async def test_transient_errors_beyond_max_attempts_keep_retrying_until_sent(
    runtime: Runtime, sms: MemoryChannel, clock: VirtualClock
) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW, max_attempts=3), now=NOW)
    sms.fail_next(ChannelError("timed out", retryable=True), times=5)

    outcomes = []
    for _ in range(6):
        report = await runtime.dispatcher.run_once()
        outcomes.append((report.retried, report.failed, report.sent))
        clock.set(max(clock.now(), notification(runtime.db, nid).due_at))

    assert outcomes == [(1, 0, 0)] * 5 + [(0, 0, 1)]
    row = notification(runtime.db, nid)
    assert (row.status, row.attempts, row.unexpected_failures) == (S.SENT, 6, 0)
    assert len(sms.sent) == 1


async def test_unexpected_errors_end_failed_after_max_attempts_with_the_reason(
    runtime: Runtime, sms: MemoryChannel, clock: VirtualClock
) -> None:
    [nid] = insert(runtime.db, planned("n", due_at=NOW, max_attempts=3), now=NOW)
    sms.fail_next(ValueError("bare CR or LF in address"), times=3)

    outcomes = []
    for _ in range(3):
        report = await runtime.dispatcher.run_once()
        outcomes.append((report.retried, report.failed))
        clock.set(max(clock.now(), notification(runtime.db, nid).due_at))

    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    row = notification(runtime.db, nid)
    assert (row.status, row.attempts, row.unexpected_failures) == (S.FAILED, 3, 3)
    assert row.reason is not None and row.reason.startswith("gave up after 3 attempt(s)")
    assert row.last_error == "unexpected error: ValueError: bare CR or LF in address"
    assert row.locked_by is None
    assert (len(sms.attempts), sms.sent) == (3, [])


async def test_a_transient_error_whose_retry_would_land_past_not_after_expires_the_row(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    [nid] = insert(
        runtime.db, planned("n", due_at=NOW, not_after=NOW + timedelta(seconds=5)), now=NOW
    )
    sms.fail_next(ChannelError("service unavailable", retryable=True, code="503"))
    report = await runtime.dispatcher.run_once()
    row = notification(runtime.db, nid)
    assert (report.expired, row.status) == (1, S.EXPIRED)
    assert row.reason is not None and "past its not-after time" in row.reason
    assert row.last_error == "503: service unavailable"


async def test_a_row_past_its_not_after_time_expires_unsent(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    [nid] = insert(
        runtime.db,
        planned("n", due_at=NOW - timedelta(days=3), not_after=NOW - timedelta(seconds=1)),
        now=NOW,
    )
    report = await runtime.dispatcher.run_once()
    assert report.expired == 1
    assert sms.attempts == []
    row = notification(runtime.db, nid)
    assert (row.status, row.attempts) == (S.EXPIRED, 0)
    assert row.reason is not None and "not-after" in row.reason


async def test_a_row_claimed_in_quiet_hours_is_moved_to_nine_local_without_an_attempt(
    tmp_path: Path,
) -> None:
    late = datetime(2026, 11, 20, 23, 0, tzinfo=SHANGHAI)
    clock = VirtualClock(late)
    runtime, channels = make_runtime(tmp_path, clock=clock, quiet_hours="21:00-09:00")
    [nid] = insert(runtime.db, planned("n", due_at=late), now=late)

    report = await runtime.dispatcher.run_once()

    morning = datetime(2026, 11, 21, 9, 0, tzinfo=SHANGHAI)
    assert report.held == 1
    row = notification(runtime.db, nid)
    assert (row.status, row.attempts, row.due_at, row.locked_by) == (S.SCHEDULED, 0, morning, None)
    assert row.reason is not None and "quiet hours" in row.reason
    assert channels[ChannelKind.SMS].attempts == []

    clock.set(morning)
    assert (await runtime.dispatcher.run_once()).sent == 1
    assert notification(runtime.db, nid).attempts == 1


async def test_a_row_outside_its_rules_own_window_is_moved_to_the_window_start(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    # 10:00 Shanghai; the rule only sends 14:00-20:00 (quiet hours are off in this runtime).
    [nid] = insert(runtime.db, planned("n", due_at=NOW, window="14:00-20:00"), now=NOW)
    report = await runtime.dispatcher.run_once()
    assert report.held == 1
    assert notification(runtime.db, nid).due_at == NOW + timedelta(hours=4)
    assert sms.attempts == []


async def test_an_sms_to_an_opted_out_number_is_suppressed(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    with runtime.db.transaction() as session:
        consent.set_consent(
            session, channel="sms", address=PHONE, opted_out=True, source="STOP", now=NOW
        )
    [nid] = insert(runtime.db, planned("n", due_at=NOW), now=NOW)

    report = await runtime.dispatcher.run_once()

    assert report.suppressed == 1
    assert sms.attempts == []
    row = notification(runtime.db, nid)
    assert (row.status, row.attempts) == (S.SUPPRESSED, 0)
    assert row.reason == "recipient opted out of sms"


async def test_an_opt_in_after_an_opt_out_lets_the_sms_go_again(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    with runtime.db.transaction() as session:
        for opted, source in ((True, "STOP"), (False, "START")):
            consent.set_consent(
                session, channel="sms", address=PHONE, opted_out=opted, source=source, now=NOW
            )
    insert(runtime.db, planned("n", due_at=NOW), now=NOW)
    assert (await runtime.dispatcher.run_once()).sent == 1


async def test_error_21610_on_sms_fails_the_row_and_records_the_opt_out(
    runtime: Runtime, sms: MemoryChannel, clock: VirtualClock
) -> None:
    [nid] = insert(runtime.db, planned("first", due_at=NOW), now=NOW)
    assert not opted_out(runtime, "sms", PHONE)
    sms.fail_next(
        ChannelError("Attempt to send to unsubscribed recipient", retryable=False, code="21610")
    )

    await runtime.dispatcher.run_once()

    row = notification(runtime.db, nid)
    assert row.status == S.FAILED
    assert row.reason is not None and "21610" in row.reason
    assert opted_out(runtime, "sms", PHONE)
    # The next message to that number is not even tried.
    clock.advance(timedelta(hours=1))
    [later] = insert(runtime.db, planned("second", due_at=clock.now()), now=clock.now())
    assert (await runtime.dispatcher.run_once()).suppressed == 1
    assert notification(runtime.db, later).status == S.SUPPRESSED
    assert len(sms.attempts) == 1


async def test_a_permanent_error_with_another_code_records_no_opt_out(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    insert(runtime.db, planned("n", due_at=NOW), now=NOW)
    sms.fail_next(ChannelError("invalid number", retryable=False, code="21211"))
    await runtime.dispatcher.run_once()
    assert not opted_out(runtime, "sms", PHONE)


# --- retry_delay ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_retry_delay_doubles_each_attempt_with_jitter_between_half_and_all_of_the_step(
    attempt: int,
) -> None:
    step = 30 * 2 ** (attempt - 1)
    for notification_id in range(1, 40):
        delay = retry_delay(
            attempt, notification_id=notification_id, base_seconds=30, max_seconds=10**6
        )
        assert step / 2 <= delay.total_seconds() <= step


def test_retry_delay_grows_so_that_later_attempts_wait_longer_on_average() -> None:
    def mean(attempt: int) -> float:
        delays = [
            retry_delay(attempt, notification_id=i, base_seconds=30, max_seconds=10**6)
            for i in range(200)
        ]
        return sum(d.total_seconds() for d in delays) / len(delays)

    means = [mean(attempt) for attempt in range(1, 7)]
    for earlier, later in pairwise(means):
        assert later == pytest.approx(2 * earlier, rel=0.15)


def test_retry_delay_is_capped_at_the_maximum() -> None:
    for attempt in (8, 12, 20):
        delay = retry_delay(attempt, notification_id=7, base_seconds=30, max_seconds=3600)
        assert 1800 <= delay.total_seconds() <= 3600


def test_retry_delay_takes_the_providers_retry_after_as_a_floor_not_a_ceiling() -> None:
    computed = retry_delay(1, notification_id=7, base_seconds=30, max_seconds=3600)
    floored = retry_delay(1, notification_id=7, base_seconds=30, max_seconds=3600, retry_after=900)
    small = retry_delay(1, notification_id=7, base_seconds=30, max_seconds=3600, retry_after=1)
    assert floored == timedelta(seconds=900)
    assert small == computed


def test_retry_delay_is_the_same_for_the_same_message_and_attempt_and_spreads_across_messages() -> (
    None
):
    def delay(notification_id: int, attempt: int) -> timedelta:
        return retry_delay(
            attempt, notification_id=notification_id, base_seconds=30, max_seconds=3600
        )

    assert delay(42, 3) == delay(42, 3)
    assert delay(42, 3) != delay(42, 4)
    assert len({delay(i, 1) for i in range(50)}) > 40
