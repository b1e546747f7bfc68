"""A failing provider trips its circuit breaker; the other channel keeps flowing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from support.core import insert, make_runtime, notification, planned

from carebot.channels import ChannelKind
from carebot.clock import VirtualClock
from carebot.exceptions import ChannelError
from carebot.settings import DispatchSettings

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


async def test_after_repeated_provider_failures_sms_is_rested_and_email_still_goes(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(NOW)
    runtime, channels = make_runtime(
        tmp_path,
        clock=clock,
        dispatch=DispatchSettings(breaker_threshold=2, breaker_cooldown_seconds=60),
    )
    sms = channels[ChannelKind.SMS]
    sms.fail_next(ChannelError("twilio 503", retryable=True), times=100)
    ids = insert(
        runtime.db,
        *(planned(f"sms-{n}", due_at=NOW, recipient=f"+86138001380{n:02d}") for n in range(4)),
        planned("mail", due_at=NOW, channel="email", recipient="wang@example.com"),
        now=NOW,
    )
    await runtime.dispatcher.run_once()
    assert len(sms.attempts) == 2, "the breaker let more calls through than its threshold"
    assert [m.to for m in channels[ChannelKind.EMAIL].sent] == ["wang@example.com"]
    rested = [notification(runtime.db, i) for i in ids[:4]]
    assert all(row.status == "scheduled" for row in rested)
    assert sum("circuit_open" in (row.last_error or "") for row in rested) == 2
    # After the cool-down one trial goes through; it succeeds and the circuit closes.
    sms.clear()
    clock.set(max(row.due_at for row in rested))
    await runtime.dispatcher.run_once()
    assert sorted(m.to for m in sms.sent) == sorted(row.recipient or "" for row in rested)
