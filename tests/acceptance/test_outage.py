"""A provider down for longer than the whole retry schedule: nothing lost, nothing twice.

Through ``carebot run``, with the real twilio client against the Twilio-compatible server and
aiosmtplib against aiosmtpd. The schedule is scaled down by settings: the outage lasts several
times what ``max_attempts`` tries with the backoff would once have spent before giving up.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from carebot.testing.twilio_server import FakeTwilioServer, Reply

from .conftest import shipped_event, smtp_env, twilio_env, wait_until

MESSAGES = 24
BASE, CAP, MAX_ATTEMPTS = 0.5, 2.0, 3
COOLDOWN = 2.0
RATE = 10.0
# What the retries of one message spent before it ended ``failed``, when transient failures
# counted against max_attempts.
OLD_SCHEDULE = sum(min(CAP, BASE * 2 ** (n - 1)) for n in range(1, MAX_ATTEMPTS + 1))
OUTAGE = 4 * OLD_SCHEDULE
# After recovery: the circuit's cool-down, one backoff step at its ceiling, the rate limit's
# pace for the backlog, and slack for a loaded test machine.
DRAIN_BOUND = COOLDOWN + CAP + MESSAGES / RATE + 15.0

SCALED = {
    "CAREBOT_DISPATCH__BACKOFF_BASE_SECONDS": str(BASE),
    "CAREBOT_DISPATCH__BACKOFF_MAX_SECONDS": str(CAP),
    "CAREBOT_DISPATCH__MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "CAREBOT_DISPATCH__BREAKER_THRESHOLD": "3",
    "CAREBOT_DISPATCH__BREAKER_COOLDOWN_SECONDS": str(COOLDOWN),
    "CAREBOT_DISPATCH__REAPER_SECONDS": "1",
    "CAREBOT_CAPS__SMS_PER_DAY": "100",
    "CAREBOT_CAPS__EMAIL_PER_DAY": "100",
}


def _post_all(daemon: Any, events: list[dict[str, Any]]) -> None:
    for event in events:
        assert daemon.post(event).status_code == 202


def _outcome(daemon: Any) -> dict[str, int]:
    return dict(daemon.query("select status, count(*) from notifications group by status"))


def _sent_within_rate(daemon: Any) -> int:
    """The most messages recorded sent within any one second."""
    sent = sorted(
        datetime.fromisoformat(str(at))
        for (at,) in daemon.query("select sent_at from notifications where sent_at is not null")
    )
    return max(
        sum(1 for other in sent[i:] if (other - first).total_seconds() < 1.0)
        for i, first in enumerate(sent)
    )


def test_twilio_answering_503_for_longer_than_the_retry_schedule_loses_and_doubles_nothing(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    assert OUTAGE > 3 * OLD_SCHEDULE
    daemon = daemon_factory(
        **twilio_env(
            twilio_server,
            CAREBOT_TWILIO__TIMEOUT_SECONDS="2",
            CAREBOT_TWILIO__RATE_PER_SECOND=str(RATE),
            **SCALED,
        )
    )
    daemon.start()
    phones = [f"+861390{n:07d}" for n in range(MESSAGES)]
    twilio_server.go_down(503)
    down_at = time.monotonic()
    _post_all(daemon, [shipped_event(8000 + n, phone=p) for n, p in enumerate(phones)])
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    assert twilio_server.requests, "the daemon never tried the provider during the outage"
    assert twilio_server.accepted == []
    during = _outcome(daemon)
    assert set(during) <= {"scheduled", "claimed", "sending"}, during

    twilio_server.recover()
    back_at = time.monotonic()

    def all_sent() -> bool:
        return _outcome(daemon) == {"sent": MESSAGES}

    assert wait_until(all_sent, timeout=DRAIN_BOUND, interval=0.2), _outcome(daemon)
    drained = time.monotonic() - back_at
    assert drained <= DRAIN_BOUND
    accepted = Counter(r["To"] for r in twilio_server.accepted)
    assert accepted == Counter(phones), "a message was lost or sent twice"
    # Once back, the backlog went at the configured pace (the bucket's burst plus its rate).
    assert _sent_within_rate(daemon) <= 2 * RATE
    # The outage was visible to operators while it lasted, and is gone now.
    assert "provider failing; circuit open" in daemon.stderr_path.read_text(encoding="utf-8")
    assert daemon.query("select count(*) from carebot_meta where key like 'circuit:%'") == [(0,)]


def test_an_smtp_server_refusing_with_421_for_longer_than_the_retry_schedule_loses_nothing(
    daemon_factory: Any, smtp_server: Any
) -> None:
    daemon = daemon_factory(**smtp_env(smtp_server), **SCALED)
    daemon.start()
    emails = [f"customer{n}@example.com" for n in range(MESSAGES)]
    smtp_server.down = "421 4.3.2 Service not available, closing transmission channel"
    down_at = time.monotonic()
    _post_all(
        daemon,
        [shipped_event(9000 + n, phone=None, email=e) for n, e in enumerate(emails)],
    )
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
    assert smtp_server.messages == []
    during = _outcome(daemon)
    assert set(during) <= {"scheduled", "claimed", "sending"}, during
    errors = daemon.query("select last_error from notifications where last_error is not null")
    assert any("421" in error for (error,) in errors), errors

    smtp_server.down = None
    back_at = time.monotonic()

    def all_sent() -> bool:
        return _outcome(daemon) == {"sent": MESSAGES}

    assert wait_until(all_sent, timeout=DRAIN_BOUND, interval=0.2), _outcome(daemon)
    assert time.monotonic() - back_at <= DRAIN_BOUND
    received = Counter(rcpt for envelope in smtp_server.envelopes for rcpt in envelope.rcpt_tos)
    assert received == Counter(emails), "a message was lost or sent twice"


def test_a_poison_message_fails_after_its_attempts_and_the_rest_of_its_batch_is_sent(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    poison = "+8613900000099"
    # Whatever is sent to this number gets a proxy's HTML page with a 201: the twilio client
    # raises an exception carebot's adapter does not expect (a JSON decoding error).
    twilio_server.reply_to(poison, Reply(raw_body="<html><body>upstream error</body></html>"))
    # The first message's send hangs, so that the next ones queue up into one batch.
    twilio_server.script([Reply(delay=3.0)])
    daemon = daemon_factory(**twilio_env(twilio_server, **SCALED))
    daemon.start()
    # SMS only (no email to fall back to), so the poison message's end is its own.
    assert daemon.post(shipped_event(100, phone="+8613900000100", email=None)).status_code == 202
    assert twilio_server.wait_for(1, timeout=10)
    others = [f"+86139000001{n:02d}" for n in range(1, 6)]
    _post_all(
        daemon,
        [
            shipped_event(101, phone=poison, email=None),
            *(shipped_event(102 + n, phone=p, email=None) for n, p in enumerate(others)),
        ],
    )

    def settled() -> bool:
        return _outcome(daemon) == {"sent": 6, "failed": 1}

    assert wait_until(settled, timeout=60, interval=0.2), daemon.query(
        "select rule_id, channel, recipient, status, reason from notifications"
    )
    [(status, reason, attempts, unexpected)] = daemon.query(
        "select status, reason, attempts, unexpected_failures from notifications "
        "where recipient = ?",
        poison,
    )
    assert (status, attempts, unexpected) == ("failed", MAX_ATTEMPTS, MAX_ATTEMPTS)
    assert reason.startswith(f"gave up after {MAX_ATTEMPTS} attempt(s); last error: ")
    assert "JSONDecodeError" in reason
    assert sorted(r["To"] for r in twilio_server.accepted) == sorted(["+8613900000100", *others])
    assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
