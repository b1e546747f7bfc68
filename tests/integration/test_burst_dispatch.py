"""A burst through the real dispatcher, twilio client and the Twilio-compatible server:
concurrent sends stay within their bound, each message goes out once, and a shared rate
limit holds the burst to its rate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from support.core import MESSAGE_TEMPLATES, RULES, insert, migrated_database, planned

from carebot.clock import SystemClock
from carebot.runtime import Runtime, build_runtime
from carebot.settings import Settings
from carebot.store.database import Database
from carebot.testing import FakeTwilioServer
from carebot.testing.twilio_server import DEFAULT_ACCOUNT_SID


def _runtime(db: Database, path: Path, server: FakeTwilioServer, **twilio: object) -> Runtime:
    settings = Settings(
        database_url=f"sqlite:///{path}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
        caps={"sms_per_day": 1000},
        twilio={
            "account_sid": DEFAULT_ACCOUNT_SID,
            "auth_token": "test-token",
            "from_number": "+15005550006",
            "base_url": server.base_url,
            **twilio,
        },
    )
    return build_runtime(settings, clock=SystemClock(), db=db)


def _due(db: Database, count: int, now: datetime) -> None:
    rows = (planned(f"k-{n}", due_at=now, recipient=f"+86138001{n:05d}") for n in range(count))
    insert(db, *rows, now=now)


async def _drain(runtime: Runtime) -> int:
    sent = 0
    while (report := await runtime.dispatcher.run_once()).claimed:
        sent += report.sent
    return sent


async def test_a_burst_is_sent_concurrently_within_the_bound_once_each(
    tmp_path: Path, twilio_server: FakeTwilioServer
) -> None:
    twilio_server.latency = 0.02
    db = migrated_database(tmp_path / "carebot.db")
    now = datetime.now(UTC)
    count = 120
    _due(db, count, now)
    runtime = _runtime(db, tmp_path / "carebot.db", twilio_server, concurrency=6)
    assert await _drain(runtime) == count
    accepted = [m["To"] for m in twilio_server.accepted]
    assert sorted(accepted) == sorted(f"+86138001{n:05d}" for n in range(count))
    # Concurrent, and never more at once than the setting allows.
    assert 2 <= twilio_server.max_concurrent <= 6


async def test_a_shared_rate_limit_holds_a_burst_to_its_rate(
    tmp_path: Path, twilio_server: FakeTwilioServer
) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    now = datetime.now(UTC)
    rate, count = 20.0, 50
    _due(db, count, now)
    runtime = _runtime(db, tmp_path / "carebot.db", twilio_server, concurrency=16,
                       rate_per_second=rate)  # fmt: skip
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _drain(runtime) == count
    elapsed = loop.time() - started
    assert len(twilio_server.accepted) == count
    # The bucket holds one second's worth; the rest come at the rate and no faster.
    assert elapsed >= (count - rate) / rate - 0.05, elapsed
