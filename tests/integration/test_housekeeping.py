"""Housekeeping deletes what is old and finished, never what is still pending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from support.core import insert, migrated_database, planned

from carebot.events import parse_event
from carebot.store import entities
from carebot.store.housekeeping import purge_before
from carebot.store.models import EventRow, NotificationRow

OLD = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def test_old_finished_rows_go_and_pending_or_recent_ones_stay(tmp_path: Path) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    sent_old, pending_old, sent_new = insert(
        db,
        planned("a", due_at=OLD),
        planned("b", due_at=OLD),
        planned("c", due_at=NOW),
        now=OLD,
    )
    with db.transaction() as session:
        session.execute(
            update(NotificationRow)
            .where(NotificationRow.id.in_([sent_old, sent_new]))
            .values(status="sent")
        )
        session.execute(
            update(NotificationRow).where(NotificationRow.id == sent_new).values(updated_at=NOW)
        )
        for n, received in ((1, OLD), (2, NOW)):
            event = parse_event(
                {"id": f"e{n}", "type": "order.placed", "occurred_at": received.isoformat()}
            )
            entities.record_event(session, event, source="carebot", received_at=received)
    with db.transaction() as session:
        report = purge_before(session, cutoff=NOW - timedelta(days=180))
    assert (report.notifications, report.events) == (1, 1)
    with db.transaction() as session:
        left = set(session.scalars(select(NotificationRow.id)))
        events = session.scalar(select(func.count()).select_from(EventRow))
    assert left == {pending_old, sent_new}
    assert events == 1
