"""Crash safety: a dispatcher killed mid-flight loses nothing and duplicates at most one."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from carebot.dispatch.dispatcher import ALREADY_SENT
from carebot.testing.twilio_server import FakeTwilioServer, Reply

from .conftest import shipped_event, twilio_env, wait_until


def test_sigkill_after_claiming_and_after_sending_loses_nothing(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    # The first send hangs at the provider; with one SMS at a time the other claimed rows
    # wait behind it, so the kill catches one row `sending` and four `claimed`.
    twilio_server.script([Reply(delay=60)])
    daemon = daemon_factory(
        **twilio_env(
            twilio_server,
            CAREBOT_TWILIO__CONCURRENCY="1",
            CAREBOT_TWILIO__TIMEOUT_SECONDS="120",
            CAREBOT_DISPATCH__CLAIM_LEASE_SECONDS="5",
            CAREBOT_DISPATCH__SEND_LEASE_SECONDS="2",
            CAREBOT_DISPATCH__REAPER_SECONDS="0.5",
        )
    )
    daemon.start()
    # Due together a moment from now, so one dispatch tick claims all five.
    due = datetime.now(UTC) + timedelta(seconds=2)
    phones = [f"+86138001380{n:02d}" for n in range(5)]
    for n, phone in enumerate(phones):
        assert daemon.post(shipped_event(100 + n, phone=phone, occurred_at=due)).status_code == 202
    assert twilio_server.wait_for(1, timeout=10)
    assert wait_until(
        lambda: (
            sorted(s for (s,) in daemon.query("select status from notifications"))
            == ["claimed"] * 4 + ["sending"]
        ),
        timeout=5,
    ), daemon.query("select id, status, reason, due_at from notifications")
    daemon.kill()

    daemon.start()
    assert wait_until(
        lambda: daemon.query("select count(*) from notifications where status = 'sent'") == [(5,)],
        timeout=20,
    ), daemon.query("select id, status, reason from notifications")
    sent_to = Counter(r["To"] for r in twilio_server.requests)
    assert set(sent_to) == set(phones), "a shipment lost its message"
    duplicates = sum(count - 1 for count in sent_to.values())
    assert duplicates <= 1, f"more duplicates than messages in flight: {sent_to}"


def test_a_message_twilio_took_from_a_killed_sender_is_found_not_sent_again(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    # Twilio keeps the message it was given, but answers only after the sender is dead.
    twilio_server.script([Reply(delay=1)])
    daemon = daemon_factory(
        **twilio_env(
            twilio_server,
            CAREBOT_DISPATCH__SEND_LEASE_SECONDS="2",
            CAREBOT_DISPATCH__REAPER_SECONDS="0.5",
        )
    )
    daemon.start()
    assert daemon.post(shipped_event(200)).status_code == 202
    assert twilio_server.wait_for(1, timeout=10)
    assert daemon.query("select status from notifications") == [("sending",)]
    daemon.kill()
    assert twilio_server.wait_for(1, timeout=5, accepted=True)

    daemon.start()
    assert wait_until(
        lambda: daemon.query("select status from notifications") == [("sent",)], timeout=20
    ), daemon.query("select id, status, reason from notifications")
    assert len(twilio_server.requests) == 1, "the message went out twice"
    assert twilio_server.lookups == 1
    [(reason, provider_id)] = daemon.query("select reason, provider_id from notifications")
    assert reason == ALREADY_SENT
    assert provider_id == twilio_server.messages[0]["sid"]


def test_sigterm_lets_the_message_in_flight_finish_and_exits_cleanly(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    twilio_server.script([Reply(delay=2)])
    daemon = daemon_factory(**twilio_env(twilio_server))
    daemon.start()
    assert daemon.post(shipped_event(300)).status_code == 202
    assert twilio_server.wait_for(1, timeout=5)
    assert daemon.query("select status from notifications") == [("sending",)]
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 15
    # The provider answered while the daemon was stopping: the send was recorded, not lost.
    assert daemon.query("select status from notifications") == [("sent",)]
