"""Chaos: shipments keep arriving while the daemon is SIGKILLed and the provider misbehaves.

Promise under test: no shipment without its message, and no more duplicates than kills (only
a message in flight at the instant of a kill can go out twice); and after the last kill every
message reaches the provider within the send lease plus a minute (a message in doubt waits for
its lease to run out, then for the reaper, then for the lookup and the resend).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from carebot.testing.twilio_server import FakeTwilioServer, Reply

from .conftest import shipped_event, twilio_env, wait_until

SHIPMENTS = 150
KILLS = 3
SEND_LEASE = 2.0


# With a dispatch worker (``dispatch.processes``) the kills hit the daemon; its worker, left
# without it, stops on its own, and the restarted daemon starts another.
@pytest.mark.parametrize("processes", ["1", "2"])
def test_kills_and_provider_errors_lose_nothing_and_duplicate_at_most_once_per_kill(
    daemon_factory: Any, twilio_server: FakeTwilioServer, processes: str
) -> None:
    rng = random.Random(20261123)
    # Roughly one call in five fails: 500s and 429s with a short Retry-After.
    twilio_server.script(
        rng.choice(
            [Reply(), Reply(), Reply(), Reply(status=500), Reply(status=429, retry_after=0.2)]
        )
        for _ in range(SHIPMENTS * 2)
    )
    daemon = daemon_factory(
        **twilio_env(
            twilio_server,
            CAREBOT_TWILIO__TIMEOUT_SECONDS="1",
            CAREBOT_DISPATCH__CLAIM_LEASE_SECONDS="2",
            CAREBOT_DISPATCH__SEND_LEASE_SECONDS=str(SEND_LEASE),
            CAREBOT_DISPATCH__REAPER_SECONDS="0.5",
            CAREBOT_DISPATCH__BACKOFF_BASE_SECONDS="0.2",
            CAREBOT_DISPATCH__BACKOFF_MAX_SECONDS="1",
            CAREBOT_DISPATCH__MAX_ATTEMPTS="20",
            # Two errors in five trip the circuit now and then (five failures in a row); its
            # cool-down is compressed like every other timing here, or one opening near the end
            # would push the last messages 30 s past the deadline (test_outage covers it).
            CAREBOT_DISPATCH__BREAKER_COOLDOWN_SECONDS="2",
            CAREBOT_CAPS__SMS_PER_DAY="100",
            CAREBOT_DISPATCH__PROCESSES=processes,
        )
    )
    daemon.start()
    phones = [f"+861390{n:07d}" for n in range(SHIPMENTS)]
    posted = threading.Event()

    def post_all() -> None:
        # Like a platform: a webhook that found no server is delivered again until accepted.
        for n, phone in enumerate(phones):
            while True:
                try:
                    if daemon.post(shipped_event(7000 + n, phone=phone)).status_code in (200, 202):
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        posted.set()

    poster = threading.Thread(target=post_all)
    poster.start()
    kills = 0
    while kills < KILLS:
        time.sleep(rng.uniform(0.8, 1.6))
        daemon.kill()
        kills += 1
        daemon.start()
    last_restart = time.monotonic()
    poster.join(timeout=120)
    assert posted.is_set(), "the webhooks were not all accepted"

    def all_reached_the_provider() -> bool:
        return {r["To"] for r in twilio_server.accepted} == set(phones)

    assert wait_until(all_reached_the_provider, timeout=SEND_LEASE + 60, interval=0.2), _unsent(
        daemon, twilio_server, phones
    )
    after_last_kill = time.monotonic() - last_restart
    assert after_last_kill <= SEND_LEASE + 60, f"the last message came {after_last_kill:.0f} s late"

    def all_sent() -> bool:
        sent: list[tuple[int]] = daemon.query(
            "select count(*) from notifications where status = 'sent'"
        )
        return sent == [(SHIPMENTS,)]

    assert wait_until(all_sent, timeout=30), daemon.query(
        "select status, count(*) from notifications group by status"
    )
    accepted = Counter(r["To"] for r in twilio_server.accepted)
    assert set(accepted) == set(phones), "a shipment went without its message"
    duplicates = sum(count - 1 for count in accepted.values())
    assert duplicates <= kills, f"{duplicates} duplicates after {kills} kills"
    assert len(twilio_server.requests) > len(twilio_server.accepted), "no provider errors happened"


def _unsent(daemon: Any, twilio_server: FakeTwilioServer, phones: list[str]) -> str:
    """What a failure shows: the rows whose message never reached the provider, and the log."""
    missing = sorted(set(phones) - {r["To"] for r in twilio_server.accepted})
    rows = [
        daemon.query(
            "select id, status, attempts, due_at, locked_until, reason from notifications"
            " where recipient = ?",
            phone,
        )
        for phone in missing
    ]
    tail = "\n".join(daemon.stdout().splitlines()[-40:])
    return f"{len(missing)} never reached the provider: {rows}\nlast daemon output:\n{tail}"
