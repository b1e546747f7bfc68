"""SQLite's writer thread (``Database.call``) on a real file: calls that queue up while one runs
share a transaction, each rolls back alone, and none is answered before its work is committed."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from support.core import migrated_database

from carebot.store import consent
from carebot.store.database import Database
from carebot.store.models import ConsentRow, RejectedPayloadRow

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _opt_out(db: Database, address: str) -> str:
    with db.transaction() as session:
        consent.set_consent(
            session, channel="sms", address=address, opted_out=True, source="test", now=NOW
        )
    return address


def _count_consents(db: Database) -> int:
    # From a connection of its own: only what was committed counts.
    with db.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(ConsentRow)) or 0)


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = migrated_database(tmp_path / "carebot.db")
    yield database
    database.dispose()


def _commits(db: Database) -> list[int]:
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda _connection: seen.append(1))
    return seen


async def _with_writer_held(db: Database, calls: list[Any]) -> list[Any]:
    """Run ``calls`` while the writer thread is busy with another, so they queue up together."""
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(timeout=10)

    holding = asyncio.ensure_future(db.call(hold))
    await asyncio.to_thread(started.wait, 10)
    pending = [asyncio.ensure_future(db.call(fn, *args)) for fn, *args in calls]
    await asyncio.sleep(0.05)  # let every submit reach the queue
    release.set()
    await holding
    return await asyncio.gather(*pending, return_exceptions=True)


def test_calls_queued_behind_one_commit_together_and_each_gets_its_result(db: Database) -> None:
    commits = _commits(db)
    addresses = [f"+8613800000{n:03d}" for n in range(20)]
    results = asyncio.run(_with_writer_held(db, [(_opt_out, db, a) for a in addresses]))
    assert results == addresses
    assert _count_consents(db) == 20
    # The holding call's group and one group for the twenty: not twenty-one commits.
    assert 1 <= len(commits) <= 2


def test_a_failing_call_rolls_back_alone_and_the_rest_of_its_group_commits(db: Database) -> None:
    def half_then_fail(address: str) -> None:
        with db.transaction() as session:
            consent.set_consent(
                session, channel="sms", address=address, opted_out=True, source="test", now=NOW
            )
            raise RuntimeError("the provider said no")

    calls = [
        (_opt_out, db, "+8613800000001"),
        (half_then_fail, "+8613800000002"),
        (_opt_out, db, "+8613800000003"),
    ]
    results = asyncio.run(_with_writer_held(db, calls))
    assert results[0] == "+8613800000001"
    assert isinstance(results[1], RuntimeError)
    assert results[2] == "+8613800000003"
    with db.transaction() as session:
        assert consent.is_opted_out(session, channel="sms", address="+8613800000001")
        assert not consent.is_opted_out(session, channel="sms", address="+8613800000002")
        assert consent.is_opted_out(session, channel="sms", address="+8613800000003")


def test_orm_objects_added_in_a_grouped_call_are_flushed_and_committed(db: Database) -> None:
    def keep(reason: str) -> None:
        with db.transaction() as session:
            session.add(
                RejectedPayloadRow(
                    source="carebot", reason=reason, headers={}, body=b"{}", received_at=NOW
                )
            )

    asyncio.run(_with_writer_held(db, [(keep, "one"), (keep, "two")]))
    with db.engine.connect() as connection:
        reasons = connection.scalars(select(RejectedPayloadRow.reason)).all()
    assert sorted(reasons) == ["one", "two"]


def test_no_call_is_answered_before_its_group_is_committed(db: Database) -> None:
    # Each call's result is the number of consents committed when it was answered: never less
    # than the number its own group had stored, which a reader outside the group cannot see
    # before the commit.
    async def main() -> list[int]:
        async def opt_out_then_count(address: str) -> int:
            await db.call(_opt_out, db, address)
            return await asyncio.to_thread(_count_consents, db)

        return await asyncio.gather(*(opt_out_then_count(f"+86138{n:08d}") for n in range(30)))

    counts = asyncio.run(main())
    assert all(count >= 1 for count in counts)
    assert max(counts) == 30


def test_a_call_that_fails_its_commit_fails_its_whole_group(db: Database) -> None:
    def refuse_commit(_connection: Any) -> None:
        raise RuntimeError("disk full")

    event.listen(db.engine, "commit", refuse_commit)
    calls = [(_opt_out, db, "+8613800000001"), (_opt_out, db, "+8613800000002")]
    results = asyncio.run(_with_writer_held(db, calls))
    assert all(isinstance(r, RuntimeError) for r in results)
    event.remove(db.engine, "commit", refuse_commit)
    assert _count_consents(db) == 0
    # The writer goes on with the next call.
    assert asyncio.run(_call(db, _opt_out, db, "+8613800000003")) == "+8613800000003"
    assert _count_consents(db) == 1


def test_a_group_whose_transaction_cannot_open_fails_every_call(db: Database) -> None:
    db.dispose()  # the next group opens a connection of its own

    def refuse_connection(_connection: Any) -> None:
        raise RuntimeError("unable to open database file")

    event.listen(db.engine, "engine_connect", refuse_connection)
    calls = [(_opt_out, db, "+8613800000001"), (_opt_out, db, "+8613800000002")]

    async def main() -> list[Any]:
        # A call left unanswered would hang its caller (a webhook) for good: bound the wait.
        pending = [db.call(fn, *args) for fn, *args in calls]
        return await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)

    results = asyncio.run(main())
    assert [str(r) for r in results] == ["unable to open database file"] * 2
    event.remove(db.engine, "engine_connect", refuse_connection)
    assert asyncio.run(_call(db, _opt_out, db, "+8613800000003")) == "+8613800000003"
    assert _count_consents(db) == 1


async def _call(db: Database, fn: Any, *args: Any) -> Any:
    return await db.call(fn, *args)


def test_a_call_whose_orm_flush_fails_does_not_fail_the_rest_of_its_group(db: Database) -> None:
    _opt_out_now = asyncio.run(_call(db, _opt_out, db, "+8613800000009"))
    assert _opt_out_now == "+8613800000009"

    def duplicate() -> None:
        # The ORM's flush of a row that breaks a unique constraint.
        with db.transaction() as session:
            session.add(
                ConsentRow(
                    channel="sms",
                    address="+8613800000009",
                    opted_out=True,
                    source="test",
                    changed_at=NOW,
                )
            )

    calls = [
        (_opt_out, db, "+8613800000001"),
        (duplicate,),
        (_opt_out, db, "+8613800000002"),
    ]
    results = asyncio.run(_with_writer_held(db, calls))
    assert results[0] == "+8613800000001"
    assert isinstance(results[1], Exception)
    assert results[2] == "+8613800000002"
    assert _count_consents(db) == 3
