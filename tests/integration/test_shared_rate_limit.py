"""Provider rate limits shared through the database by every carebot process.

The bucket's arithmetic runs on a real SQLite file and a real PostgreSQL server with explicit
instants; concurrent takers at one instant must never spend more than the bucket holds.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.core import (
    MESSAGE_TEMPLATES,
    RULES,
    insert,
    make_runtime,
    migrated_database,
    planned,
)

from carebot.channels import ChannelKind, MemoryChannel, OutboundMessage
from carebot.channels.guards import GuardedChannel, SharedTokenBucket
from carebot.clock import VirtualClock
from carebot.runtime import build_runtime, claim_limit
from carebot.settings import Settings, TwilioSettings
from carebot.store import rate_limits
from carebot.store.database import Database
from carebot.store.models import NotificationRow, RateBucketRow

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def _take(db: Database, at: datetime, *, rate: float = 2.0, burst: float = 2.0) -> float:
    with db.transaction() as session:
        return rate_limits.take_token(session, name="sms:twilio", rate=rate, burst=burst, now=at)


def test_a_bucket_gives_its_burst_then_refills_at_its_rate(tmp_path: Path) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    assert [_take(db, T0) for _ in range(2)] == [0.0, 0.0]
    assert _take(db, T0) == pytest.approx(0.5)
    assert _take(db, T0 + timedelta(seconds=0.25)) == pytest.approx(0.25)
    assert _take(db, T0 + timedelta(seconds=0.5)) == 0.0
    # Idle for a minute: back to the burst, never beyond it.
    later = T0 + timedelta(minutes=1)
    assert [_take(db, later) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


def test_a_clock_behind_the_buckets_time_gets_no_tokens_for_free(tmp_path: Path) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    assert [_take(db, T0) for _ in range(2)] == [0.0, 0.0]
    assert _take(db, T0 - timedelta(seconds=30)) == pytest.approx(0.5)


def _race(db: Database, *, threads: int, tries: int, burst: float) -> int:
    """``threads`` takers at one instant, ``tries`` each: how many tokens were handed out."""
    taken = 0
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def taker() -> None:
        nonlocal taken
        start.wait()
        for _ in range(tries):
            if _take(db, T0, rate=1.0, burst=burst) == 0.0:
                with lock:
                    taken += 1

    workers = [threading.Thread(target=taker) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return taken


def test_concurrent_takers_on_sqlite_never_spend_more_than_the_burst(tmp_path: Path) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    assert _race(db, threads=4, tries=25, burst=10) == 10


def test_concurrent_takers_on_postgresql_never_spend_more_than_the_burst(
    postgres_url: str,
) -> None:
    db = Database(postgres_url)
    try:
        assert _race(db, threads=6, tries=25, burst=10) == 10
    finally:
        db.dispose()


async def test_two_processes_channels_share_one_allowance(tmp_path: Path) -> None:
    """Two dispatchers' SMS channels on one database send at the rate of one, not two."""
    rate = 40.0
    channels = []
    for _ in range(2):
        db = Database(f"sqlite:///{tmp_path / 'carebot.db'}")
        db.upgrade()

        def take(db: Database = db) -> float:
            with db.transaction() as session:
                return rate_limits.take_token(
                    session, name="sms:twilio", rate=rate, burst=1.0, now=datetime.now(UTC)
                )

        inner = MemoryChannel(kind=ChannelKind.SMS)
        channels.append((inner, GuardedChannel(inner, bucket=SharedTokenBucket(take))))

    def message(n: int) -> OutboundMessage:
        return OutboundMessage(
            notification_id=n, kind=ChannelKind.SMS, to=f"+861380013{n:04d}", body="hi"
        )

    async def send(channel: GuardedChannel, n: int) -> None:
        await channel.ready()  # as the dispatcher does before it commits `sending`
        await channel.send(message(n))

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(send(channels[n % 2][1], n) for n in range(21)))
    elapsed = loop.time() - started
    assert sorted(len(inner.sent) for inner, _ in channels) == [10, 11]
    # One token at once, then twenty more at 40 a second between both: at least half a second
    # (two independent buckets would have taken half that).
    assert elapsed >= 20 / rate - 0.02, elapsed


def _four_sms_a_second(tmp_path: Path, **more: Any) -> Settings:
    """The daemon's settings on the test's SQLite file, with Twilio limited to 4 SMS a second."""
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'carebot.db'}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
        twilio=TwilioSettings(rate_per_second=4),
        **more,
    )


async def test_the_daemons_dispatcher_takes_its_sms_tokens_from_the_database(
    tmp_path: Path,
) -> None:
    """``build_runtime`` as ``carebot run`` calls it: the SMS channel waits on the shared bucket."""
    db = migrated_database(tmp_path / "carebot.db")
    settings = _four_sms_a_second(tmp_path)
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(settings, channels=channels, db=db)
    now = datetime.now(UTC)
    insert(
        db,
        *(planned(f"k-{n}", due_at=now, recipient=f"+861380013{n:04d}") for n in range(6)),
        now=now,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await runtime.dispatcher.run_once()
    elapsed = loop.time() - started
    assert report.sent == 6 and len(channels[ChannelKind.SMS].sent) == 6
    # A burst of one second's worth (four), then two more at four a second.
    assert elapsed >= 2 / 4 - 0.02, elapsed
    with db.transaction() as session:
        names = session.scalars(select(RateBucketRow.name)).all()
    assert names == ["sms:memory"]


async def test_a_message_waiting_for_its_token_is_claimed_never_in_doubt(tmp_path: Path) -> None:
    """A crash while a message waits for the rate limit must not leave it `sending`."""
    seen: list[set[str]] = []

    class WaitingChannel(MemoryChannel):
        async def ready(self) -> None:
            with runtime.db.transaction() as session:
                seen.append(set(session.scalars(select(NotificationRow.status)).all()))

    clock = VirtualClock(T0)
    runtime, _ = make_runtime(tmp_path, clock=clock)
    sms = WaitingChannel(kind=ChannelKind.SMS)
    runtime.dispatcher.channels[ChannelKind.SMS] = sms  # type: ignore[index]  # swap in the test channel
    insert(
        runtime.db,
        *(planned(f"k-{n}", due_at=T0, recipient=f"+861380013{n:04d}") for n in range(3)),
        now=T0,
    )
    report = await runtime.dispatcher.run_once()
    assert report.sent == 3 and len(sms.sent) == 3
    assert len(seen) == 3 and all("sending" not in statuses for statuses in seen), seen
    assert all("claimed" in statuses for statuses in seen)


async def test_under_a_rate_limit_a_claim_takes_no_more_than_half_the_lease_can_send(
    tmp_path: Path,
) -> None:
    """At 4 SMS a second and a 2 s claim lease, a claim takes 4 rows (what the limit lets out
    in half the lease), not the batch size: rows waiting for tokens past their lease would be
    handed back by the reaper and their turn at the rate limit spent for nothing."""
    db = migrated_database(tmp_path / "carebot.db")
    settings = _four_sms_a_second(tmp_path, dispatch={"claim_lease_seconds": 2})
    assert settings.dispatch.batch_size > 4
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(settings, channels=channels, db=db)
    assert runtime.dispatcher.claim_limit == 4
    now = datetime.now(UTC)
    insert(
        db,
        *(planned(f"k-{n}", due_at=now, recipient=f"+861380013{n:04d}") for n in range(10)),
        now=now,
    )
    report = await runtime.dispatcher.run_once()
    assert report.claimed == 4 and report.sent == 4
    with db.transaction() as session:
        statuses = session.scalars(select(NotificationRow.status)).all()
    assert sorted(statuses) == ["scheduled"] * 6 + ["sent"] * 4
    # A replay (no rate limit in virtual time) keeps the batch size.
    replay = build_runtime(settings, channels=channels, db=db, inline_db=True)
    assert replay.dispatcher.claim_limit == settings.dispatch.batch_size


def test_sending_processes_share_the_rate_so_each_claims_its_part(tmp_path: Path) -> None:
    """Two sending processes at 4 SMS a second get 2 a second each: with a 4 s lease a claim
    takes 4 rows (2 × 4 / 2), not the 8 one process alone could send in half the lease."""
    alone = _four_sms_a_second(tmp_path, dispatch={"claim_lease_seconds": 4})
    shared = _four_sms_a_second(tmp_path, dispatch={"claim_lease_seconds": 4, "processes": 2})
    assert (claim_limit(alone), claim_limit(shared)) == (8, 4)
