"""Provider failures through the real twilio client and a real SMTP server, on virtual time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, update

from carebot.clock import VirtualClock
from carebot.dispatch.dispatcher import ALREADY_SENT
from carebot.events import parse_event
from carebot.runtime import Runtime, build_runtime
from carebot.settings import Settings
from carebot.store.database import Database
from carebot.store.models import NotificationRow
from carebot.testing.twilio_server import DEFAULT_ACCOUNT_SID, FakeTwilioServer, Reply

if TYPE_CHECKING:
    from conftest import SMTPTestServer

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture
def runtime(
    tmp_path: Path, twilio_server: FakeTwilioServer, smtp_server: SMTPTestServer
) -> Runtime:
    return _runtime(tmp_path, twilio_server, smtp_server, START)


def _runtime(
    tmp_path: Path,
    twilio_server: FakeTwilioServer,
    smtp_server: SMTPTestServer,
    start: datetime,
    **twilio: object,
) -> Runtime:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'carebot.db'}",
        rules_dir=REPO / "rules",
        templates_dir=REPO / "message_templates",
        quiet_hours="none",
        twilio={
            "account_sid": DEFAULT_ACCOUNT_SID,
            "auth_token": "test-token",
            "from_number": "+15005550006",
            "base_url": twilio_server.base_url,
            **twilio,
        },
        smtp={
            "host": smtp_server.host,
            "port": smtp_server.port,
            "sender": "care@shop.example",
            "starttls": False,
        },
    )
    db = Database(settings.database_url)
    db.upgrade()
    return build_runtime(settings, clock=VirtualClock(start), db=db)


def _ship(runtime: Runtime, *, phone: str | None) -> None:
    customer: dict[str, Any] = {"id": "c-1", "email": "wang@example.com"}
    if phone:
        customer["phone"] = phone
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": "evt-1",
                "type": "order.shipped",
                # Now, as the runtime's clock reads it: a fresh event, not a backfilled one.
                "occurred_at": runtime.clock.now().isoformat(),
                "order": {"id": "1001", "customer": customer},
                "shipment": {"id": "s-1", "carrier": "SF Express", "tracking_number": "SF1"},
            }
        )
    )


def _row(runtime: Runtime) -> NotificationRow:
    with runtime.db.transaction() as session:
        return session.scalars(select(NotificationRow)).one()


async def _run_until_settled(runtime: Runtime, clock: Any, *, max_ticks: int = 10) -> None:
    for _ in range(max_ticks):
        await runtime.dispatcher.run_once()
        row = _row(runtime)
        if row.status != "scheduled":
            return
        clock.set(row.due_at)


async def test_twilio_500_and_429_are_retried_with_backoff_and_end_sent(
    runtime: Runtime, twilio_server: FakeTwilioServer
) -> None:
    twilio_server.script([Reply(status=500), Reply(status=429, retry_after=600)])
    _ship(runtime, phone="+8613800138000")
    await runtime.dispatcher.run_once()
    first_retry = _row(runtime)
    assert first_retry.status == "scheduled" and first_retry.due_at > START
    assert "500" in (first_retry.last_error or "")
    runtime.clock.set(first_retry.due_at)  # type: ignore[attr-defined]
    await runtime.dispatcher.run_once()
    second_retry = _row(runtime)
    # 429's Retry-After (600 s) is a floor under the backoff.
    assert (second_retry.due_at - first_retry.due_at).total_seconds() >= 600
    await _run_until_settled(runtime, runtime.clock)
    row = _row(runtime)
    assert row.status == "sent" and row.attempts == 3
    assert row.provider_id and row.provider_id.startswith("SM")
    assert len(twilio_server.requests) == 3
    # The retry after the 500 (which Twilio may answer after creating the message) first
    # asked whether it had gone through; the one after the 429 (a refusal) did not.
    assert twilio_server.lookups == 1


async def test_a_timed_out_send_that_twilio_took_is_found_and_not_sent_again(
    tmp_path: Path, twilio_server: FakeTwilioServer, smtp_server: SMTPTestServer
) -> None:
    # Twilio's own clock dates the message, so this notification is made at the real time.
    runtime = _runtime(tmp_path, twilio_server, smtp_server, datetime.now(UTC), timeout_seconds=0.3)
    twilio_server.script([Reply(delay=1)])
    _ship(runtime, phone="+8613800138000")
    await runtime.dispatcher.run_once()
    retry = _row(runtime)
    assert retry.status == "scheduled" and "Timeout" in (retry.last_error or "")
    assert twilio_server.wait_for(1, timeout=5, accepted=True)

    runtime.clock.set(retry.due_at)  # type: ignore[attr-defined]
    await runtime.dispatcher.run_once()
    row = _row(runtime)
    assert row.status == "sent"
    assert row.reason == ALREADY_SENT
    assert len(twilio_server.requests) == 1, "the message went twice"
    assert twilio_server.lookups == 1


async def test_twilio_21211_ends_failed_at_once_with_the_reason(
    runtime: Runtime, twilio_server: FakeTwilioServer
) -> None:
    twilio_server.script(
        [Reply(status=400, code=21211, message="The 'To' number is not a valid phone number.")]
    )
    _ship(runtime, phone="+8613800138000")
    await runtime.dispatcher.run_once()
    with runtime.db.transaction() as session:
        row, fallback = session.scalars(select(NotificationRow).order_by(NotificationRow.id))
    assert row.status == "failed"
    assert "21211" in (row.reason or "") and "permanent" in (row.reason or "")
    assert len(twilio_server.requests) == 1
    # The sample rule's channel is `preferred`: the email address is tried next.
    assert (fallback.channel, fallback.dedupe_key) == ("email", f"{row.dedupe_key}:fallback")


async def test_an_smtp_451_is_retried_and_the_email_arrives(
    runtime: Runtime, smtp_server: SMTPTestServer
) -> None:
    smtp_server.script_rcpt(["451 4.3.0 try again later"])
    _ship(runtime, phone=None)
    await runtime.dispatcher.run_once()
    assert _row(runtime).status == "scheduled"
    assert smtp_server.messages == []
    await _run_until_settled(runtime, runtime.clock)
    row = _row(runtime)
    assert row.status == "sent" and row.attempts == 2
    assert len(smtp_server.messages) == 1


async def test_an_smtp_550_ends_failed_without_retrying(
    runtime: Runtime, smtp_server: SMTPTestServer
) -> None:
    smtp_server.script_rcpt(["550 5.1.1 no such user"])
    _ship(runtime, phone=None)
    await runtime.dispatcher.run_once()
    row = _row(runtime)
    assert row.status == "failed" and "550" in (row.reason or "")
    assert smtp_server.messages == []


def _lookup_failures(runtime: Runtime) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "carebot_provider_lookup_failures_total", {"channel": "sms", "provider": "twilio"}
    )
    return value or 0.0


async def test_a_lookup_twilio_refuses_lets_the_resend_policy_send_again(
    runtime: Runtime, twilio_server: FakeTwilioServer
) -> None:
    # A 500 may come after Twilio created the message, so the retry asks first; the API key
    # may not read messages (403): the lookup cannot answer, and in_doubt: resend decides.
    twilio_server.script([Reply(status=500)])
    twilio_server.refuse_lookups(403)
    _ship(runtime, phone="+8613800138000")
    await _run_until_settled(runtime, runtime.clock)
    row = _row(runtime)
    assert (row.status, row.attempts) == ("sent", 2)
    assert twilio_server.lookups == 1 and len(twilio_server.accepted) == 1
    assert _lookup_failures(runtime) == 1


async def test_a_lookup_twilio_cannot_answer_ends_an_in_doubt_unknown_message_unknown(
    runtime: Runtime, twilio_server: FakeTwilioServer
) -> None:
    twilio_server.script([Reply(status=500)])
    twilio_server.refuse_lookups(503)
    _ship(runtime, phone="+8613800138000")
    with runtime.db.transaction() as session:
        session.execute(update(NotificationRow).values(in_doubt="unknown"))
    await _run_until_settled(runtime, runtime.clock)
    row = _row(runtime)
    assert row.status == "unknown" and row.attempts == 2
    assert row.reason is not None and "could not be asked" in row.reason
    assert "in_doubt: unknown" in row.reason
    assert len(twilio_server.accepted) == 0 and _lookup_failures(runtime) == 1
