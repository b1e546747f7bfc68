"""``Database.transaction`` on a real SQLite file: one session per block.

The transaction begins when the block first touches the database. Core statements on
``session.connection()`` and ORM work in one block commit together, or not at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError
from support.core import migrated_database

from carebot.store.database import Database
from carebot.store.models import ConsentRow, RejectedPayloadRow

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = migrated_database(tmp_path / "carebot.db")
    yield database
    database.dispose()


def _core_opt_out(session: Any, address: str) -> None:
    session.connection().execute(
        insert(ConsentRow).values(
            channel="sms", address=address, opted_out=True, source="test", changed_at=NOW
        )
    )


def _orm_reject(session: Any, reason: str) -> None:
    session.add(
        RejectedPayloadRow(source="carebot", reason=reason, headers={}, body=b"{}", received_at=NOW)
    )


def _stored(db: Database) -> tuple[list[str], list[str]]:
    # From a connection of its own: only what was committed counts.
    with db.engine.connect() as connection:
        addresses = connection.scalars(select(ConsentRow.address).order_by(ConsentRow.address))
        reasons = connection.scalars(select(RejectedPayloadRow.reason))
        return list(addresses), sorted(reasons)


@pytest.mark.parametrize("orm_first", [False, True], ids=["core-first", "orm-first"])
def test_core_and_orm_work_of_one_block_commit_together(db: Database, orm_first: bool) -> None:
    with db.transaction() as session:
        if orm_first:
            _orm_reject(session, "kept")
            session.flush()  # the ORM begins the transaction
        _core_opt_out(session, "+8613800000001")
        if not orm_first:
            _orm_reject(session, "kept")
    assert _stored(db) == (["+8613800000001"], ["kept"])
    # The block left nothing behind: the next one commits on its own.
    with db.transaction() as session:
        _core_opt_out(session, "+8613800000002")
    assert _stored(db)[0] == ["+8613800000001", "+8613800000002"]


@pytest.mark.parametrize("orm_first", [False, True], ids=["core-first", "orm-first"])
def test_a_block_that_raises_keeps_nothing(db: Database, orm_first: bool) -> None:
    with pytest.raises(RuntimeError), db.transaction() as session:
        if orm_first:
            _orm_reject(session, "lost")
            session.flush()
        _core_opt_out(session, "+8613800000001")
        _orm_reject(session, "lost")
        raise RuntimeError("the provider said no")
    assert _stored(db) == ([], [])
    with db.transaction() as session:
        _core_opt_out(session, "+8613800000002")
    assert _stored(db)[0] == ["+8613800000002"]


def test_a_failed_flush_keeps_nothing_of_the_block(db: Database) -> None:
    with pytest.raises(IntegrityError), db.transaction() as session:
        _core_opt_out(session, "+8613800000001")
        session.add(RejectedPayloadRow(source="carebot", reason=None, headers={}, body=b"{}"))
    assert _stored(db) == ([], [])


def test_a_failed_commit_keeps_nothing_and_the_next_transaction_works(db: Database) -> None:
    def refuse_commit(_connection: Any) -> None:
        raise RuntimeError("disk full")

    event.listen(db.engine, "commit", refuse_commit)
    with pytest.raises(RuntimeError, match="disk full"), db.transaction() as session:
        _core_opt_out(session, "+8613800000001")
    event.remove(db.engine, "commit", refuse_commit)
    assert _stored(db) == ([], [])
    with db.transaction() as session:
        _core_opt_out(session, "+8613800000002")
    assert _stored(db)[0] == ["+8613800000002"]


def test_a_block_that_touches_nothing_begins_no_transaction(db: Database) -> None:
    begun: list[int] = []
    event.listen(db.engine, "begin", lambda _connection: begun.append(1))
    with db.transaction():
        pass
    assert begun == []
    with db.transaction() as session:
        session.connection().scalar(select(func.count()).select_from(ConsentRow))
    assert begun == [1]


def test_transactions_do_not_nest(db: Database) -> None:
    # An inner block's commit would commit the outer block's work half done.
    with pytest.raises(RuntimeError, match="do not nest"), db.transaction() as session:
        _core_opt_out(session, "+8613800000001")
        with db.transaction():
            pass
    assert _stored(db) == ([], [])
    with db.transaction() as session:
        _core_opt_out(session, "+8613800000002")
    assert _stored(db)[0] == ["+8613800000002"]
