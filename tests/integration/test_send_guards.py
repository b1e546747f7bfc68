"""``schedule.guards``: consent and the frequency cap's recent sends, read in one statement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from support.core import PHONE, database_for, insert, planned

from carebot.notifications import NotificationStatus as S
from carebot.store import consent, schedule
from carebot.store.database import Database
from carebot.store.models import NotificationRow

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=24)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = database_for(request, tmp_path)
    yield database
    database.dispose()


def _row(db: Database, key: str, status: S, at: datetime, **fields: str) -> None:
    """A notification in ``status`` whose last change (and send, once sent) was at ``at``."""
    [row_id] = insert(db, planned(key, due_at=at, **fields), now=at)
    sent_at = at if status in (S.SENT, S.DELIVERED) else None
    with db.transaction() as session:
        session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == row_id)
            .values(status=str(status), sent_at=sent_at, updated_at=at)
        )


def _guards(
    db: Database, channel: str = "sms", address: str = PHONE
) -> tuple[bool, list[datetime]]:
    with db.transaction() as session:
        return schedule.guards(session, channel=channel, address=address, since=SINCE)


def test_nothing_known_of_an_address(db: Database) -> None:
    assert _guards(db) == (False, [])


def test_the_sends_counted_are_those_of_the_address_and_channel_since_the_window(
    db: Database,
) -> None:
    hour = timedelta(hours=1)
    _row(db, "sent", S.SENT, NOW - 3 * hour)
    _row(db, "delivered", S.DELIVERED, NOW - 2 * hour)
    _row(db, "sending", S.SENDING, NOW - hour)  # not sent yet: when it became sending counts
    _row(db, "old", S.SENT, SINCE - hour)
    _row(db, "failed", S.FAILED, NOW - hour)
    _row(db, "scheduled", S.SCHEDULED, NOW - hour)
    _row(db, "other number", S.SENT, NOW - hour, recipient="+8613800000043")
    _row(db, "email", S.SENT, NOW - hour, channel="email", recipient="wang@example.com")
    opted_out, sent = _guards(db)
    assert not opted_out
    assert sorted(sent) == [NOW - 3 * hour, NOW - 2 * hour, NOW - hour]
    assert all(moment.tzinfo == UTC for moment in sent)


def test_an_opt_out_wins_and_an_opt_in_lifts_it(db: Database) -> None:
    _row(db, "sent", S.SENT, NOW - timedelta(hours=1))
    with db.transaction() as session:
        consent.set_consent(
            session, channel="sms", address=PHONE, opted_out=True, source="test", now=NOW
        )
    assert _guards(db) == (True, [])
    assert _guards(db, channel="email", address=PHONE) == (False, [])
    with db.transaction() as session:
        consent.set_consent(
            session, channel="sms", address=PHONE, opted_out=False, source="test", now=NOW
        )
    assert _guards(db) == (False, [NOW - timedelta(hours=1)])


def test_an_email_opt_out_holds_whatever_the_case_of_the_address(db: Database) -> None:
    with db.transaction() as session:
        consent.set_consent(
            session,
            channel="email",
            address="Wang@Example.com",
            opted_out=True,
            source="t",
            now=NOW,
        )
    assert _guards(db, channel="email", address="wang@EXAMPLE.com") == (True, [])


def test_guards_many_reads_each_address_as_guards_does(db: Database) -> None:
    """A claimed batch reads every address's guards at once; each answer is the same as
    ``guards`` gives for that address alone."""
    hour = timedelta(hours=1)
    other, quiet, mixed = "+8613800000043", "+8613800000044", "Li@Example.com"
    _row(db, "sent", S.SENT, NOW - 3 * hour)
    _row(db, "sending", S.SENDING, NOW - hour)
    _row(db, "other", S.SENT, NOW - hour, recipient=other)
    _row(db, "old", S.SENT, SINCE - hour, recipient=quiet)
    _row(db, "mail", S.SENT, NOW - hour, channel="email", recipient=mixed)
    with db.transaction() as session:
        consent.set_consent(
            session, channel="sms", address=other, opted_out=True, source="t", now=NOW
        )
        consent.set_consent(
            session, channel="email", address="li@example.com", opted_out=True, source="t", now=NOW
        )
    with db.transaction() as session:
        sms = schedule.guards_many(
            session, channel="sms", addresses=[PHONE, other, quiet, PHONE], since=SINCE
        )
        email = schedule.guards_many(session, channel="email", addresses=[mixed], since=SINCE)
    assert set(sms) == {PHONE, other, quiet}
    for address, answer in sms.items():
        assert answer[0] == _guards(db, address=address)[0]
        assert sorted(answer[1]) == sorted(_guards(db, address=address)[1])
    assert not sms[PHONE][0] and sorted(sms[PHONE][1]) == [NOW - 3 * hour, NOW - hour]
    assert sms[other] == (True, [])
    assert sms[quiet] == (False, [])
    assert email == {mixed: (True, [])}
