"""The send path's batched writes: many rows ``sending`` and ``sent`` in one transaction each,
with the same answers as the one-row statements (a lost claim stays lost)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.core import database_for, insert, notification, planned

from carebot.dispatch._writes import SendWrites
from carebot.notifications import NotificationStatus as S
from carebot.store import schedule
from carebot.store.database import Database

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = database_for(request, tmp_path)
    yield database
    database.dispose()


def _claimed(db: Database, count: int, worker: str = "w1") -> list[int]:
    insert(db, *(planned(f"k{n}", due_at=NOW) for n in range(count)), now=NOW)
    with db.transaction() as session:
        rows = schedule.claim_due(session, now=NOW, worker=worker, limit=count, lease=LEASE)
    return sorted(row.id for row in rows)


def _sending(nid: int) -> dict[str, Any]:
    return {"notification_id": nid, "subject": None, "body": f"body {nid}", "segments": 1,
            "now": NOW}  # fmt: skip


def test_many_rows_become_sending_then_sent_and_a_lost_claim_is_left_alone(db: Database) -> None:
    ids = _claimed(db, 5)
    lost = ids[2]
    with db.transaction() as session:  # the reaper handed it back meanwhile
        schedule.release(session, notification_id=lost, due_at=NOW, now=NOW, reason="reaped")
    with db.transaction() as session:
        ours = schedule.mark_sending_many(
            session, worker="w1", lease=timedelta(seconds=120), rows=[_sending(i) for i in ids]
        )
    assert ours == set(ids) - {lost}
    for nid in ids:
        row = notification(db, nid)
        if nid == lost:
            assert (row.status, row.attempts, row.body) == (S.SCHEDULED, 0, None)
        else:
            assert (row.status, row.attempts, row.body) == (S.SENDING, 1, f"body {nid}")
            assert row.locked_until == NOW + timedelta(seconds=120)
    sent = [{"notification_id": nid, "provider_id": f"SM{nid}", "provider_status": "queued",
             "now": NOW, "reason": None} for nid in sorted(ours)]  # fmt: skip
    with db.transaction() as session:
        schedule.mark_sent_many(session, sent)
    for nid in ids:
        row = notification(db, nid)
        assert row.status == (S.SCHEDULED if nid == lost else S.SENT)
        assert row.provider_id == (None if nid == lost else f"SM{nid}")


def test_another_workers_rows_are_not_marked(db: Database) -> None:
    ids = _claimed(db, 2, worker="w2")
    with db.transaction() as session:
        assert (
            schedule.mark_sending_many(
                session, worker="w1", lease=LEASE, rows=[_sending(i) for i in ids]
            )
            == set()
        )
    assert {notification(db, nid).status for nid in ids} == {S.CLAIMED}


def test_concurrent_sends_share_transactions_and_each_learns_its_own_answer(
    db: Database,
) -> None:
    ids = _claimed(db, 30)
    lost = ids[7]
    with db.transaction() as session:
        schedule.release(session, notification_id=lost, due_at=NOW, now=NOW, reason="reaped")
    transactions = 0

    async def transact(work: Any) -> Any:
        nonlocal transactions
        transactions += 1

        def run() -> Any:
            with db.transaction() as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def main() -> list[bool]:
        writes = SendWrites(transact, worker="w1", lease=LEASE)

        async def one(nid: int) -> bool:
            ok = await writes.sending(**_sending(nid))
            if ok:
                await writes.sent(notification_id=nid, provider_id=f"SM{nid}",
                                  provider_status="queued", now=NOW, reason=None)  # fmt: skip
            return ok

        return await asyncio.gather(*(one(nid) for nid in ids))

    answers = asyncio.run(main())
    assert answers == [nid != lost for nid in ids]
    assert {notification(db, nid).status for nid in ids if nid != lost} == {S.SENT}
    assert notification(db, lost).status == S.SCHEDULED
    # Sixty writes, far fewer transactions: the ones that waited went together.
    assert transactions < 20


def test_a_failed_transaction_reaches_every_waiting_send(db: Database) -> None:
    async def broken(work: Any) -> Any:
        raise RuntimeError("database is gone")

    async def main() -> list[BaseException | bool]:
        writes = SendWrites(broken, worker="w1", lease=LEASE)
        return await asyncio.gather(
            *(writes.sending(**_sending(n)) for n in range(3)), return_exceptions=True
        )

    answers = asyncio.run(main())
    assert all(isinstance(a, RuntimeError) for a in answers)
