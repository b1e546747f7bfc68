"""``max_event_age``: a backfilled or late webhook is recorded, not texted as news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from support.core import make_runtime

from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime
from carebot.store.models import NotificationRow

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _shipped(runtime: Runtime, event_id: str, occurred_at: datetime) -> None:
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": event_id,
                "type": "order.shipped",
                "occurred_at": occurred_at.isoformat(),
                "order": {
                    "id": "1001",
                    "customer": {"id": "c-1", "phone": "+8613800138000"},
                    "shipping_address": {"country": "CN"},
                },
                "shipment": {"id": "s-1", "carrier": "SF", "tracking_number": "SF1"},
            }
        )
    )


def _rows(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    with runtime.db.transaction() as session:
        rows = session.scalars(select(NotificationRow).order_by(NotificationRow.id)).all()
        return [(r.rule_id, r.status, r.reason) for r in rows]


def test_a_shipped_event_older_than_max_event_age_is_recorded_expired_with_the_reason(
    tmp_path: Path,
) -> None:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(NOW))
    _shipped(runtime, "evt-backfilled", NOW - timedelta(days=11))  # the shipped rule says 2d
    [(rule, status, reason)] = _rows(runtime)
    assert (rule, status) == ("shipped", "expired")
    assert reason is not None and "max_event_age 2d" in reason and "11d" in reason
    # The stale row does not take the parcel's dedupe key: a fresh notice still goes out.
    _shipped(runtime, "evt-resent", NOW - timedelta(hours=1))
    assert [s for _, s, _ in _rows(runtime)] == ["expired", "scheduled"]


def test_an_event_within_max_event_age_is_planned_as_usual(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(NOW))
    _shipped(runtime, "evt-yesterday", NOW - timedelta(days=1, hours=23))
    assert [s for _, s, _ in _rows(runtime)] == ["scheduled"]
