"""Filling a benchmark database quickly: bulk inserts of notification rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from carebot.store.database import Database
from carebot.store.models import NotificationRow


def rows(
    count: int, *, due: datetime, start: int = 0, spread: timedelta = timedelta(0)
) -> Iterator[dict[str, Any]]:
    step = spread / count if count else timedelta(0)
    for n in range(start, start + count):
        at = due + step * (n - start)
        yield {
            "dedupe_key": f"order:{n}:shipped:sms",
            "rule_id": "shipped",
            "channel": "sms",
            "recipient": f"+86138{n % 100_000_000:08d}",
            "template": "shipped",
            "locale": "zh-CN",
            "timezone": "Asia/Shanghai",
            "window": None,
            "order_id": str(n),
            "customer_id": f"c-{n}",
            "context": {
                "order": {"id": str(n)},
                "customer": {"name": "王芳"},
                "shipment": {"carrier": "SF Express", "tracking_number": f"SF{n}"},
                "shop": {"name": "carebot"},
            },
            "due_at": at,
            "not_after": at + timedelta(days=2),
            "status": "scheduled",
            "attempts": 0,
            "max_attempts": 6,
            "transactional": False,
            "in_doubt": "resend",
            "created_at": at,
            "updated_at": at,
        }


def bulk_insert(db: Database, model: Any, rows: Iterable[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``model``'s table, 20,000 to a transaction."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == 20_000:
            with db.transaction() as session:
                session.execute(insert(model), batch)
            batch = []
    if batch:
        with db.transaction() as session:
            session.execute(insert(model), batch)


def fill(
    db: Database, count: int, *, due: datetime, start: int = 0, spread: timedelta = timedelta(0)
) -> None:
    bulk_insert(db, NotificationRow, rows(count, due=due, start=start, spread=spread))
