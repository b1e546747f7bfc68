"""``kind: marketing`` rules (restock, stock-up) hold while the customer has an unhandled
complaint; care messages go out as usual; resolving the case releases the hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from support.core import make_runtime

from carebot.channels import ChannelKind
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime
from carebot.store import cases as case_store
from carebot.store.models import CaseRow, NotificationRow

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai, inside 10:00-20:00
CUSTOMER = {"id": "c-1", "name": "王芳", "phone": "+8613800138000"}


def _order(order_id: str, event_type: str = "order.placed") -> dict[str, object]:
    return {
        "id": f"evt-{order_id}-{event_type}",
        "type": event_type,
        "occurred_at": NOW.isoformat(),
        "order": {
            "id": order_id,
            "customer": CUSTOMER,
            "shipping_address": {"country": "CN", "city": "杭州市"},
            "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 1}],
        },
        "shipment": {"id": f"s-{order_id}", "tracking_number": f"SF{order_id}"},
    }


def _rows(runtime: Runtime) -> dict[str, tuple[str, str | None, datetime]]:
    with runtime.db.transaction() as session:
        rows = session.scalars(select(NotificationRow)).all()
        return {r.rule_id: (r.status, r.reason, r.due_at) for r in rows}


async def test_a_restock_reminder_waits_for_the_complaint_to_be_handled(tmp_path: Path) -> None:
    clock = VirtualClock(NOW)
    runtime, channels = make_runtime(tmp_path, clock=clock)
    pipeline = runtime.pipeline
    pipeline.ingest(parse_event(_order("1001")))
    pipeline.ingest(parse_event(_order("1002", "order.shipped")))
    restock = {
        "id": "restock:c-1:MILK-900G:1001",
        "type": "restock.due",
        "occurred_at": NOW.isoformat(),
        "order": {"id": "1001"},
    }
    pipeline.ingest(parse_event(restock))
    with runtime.db.transaction() as session:
        # The complaint is about the other order: the hold is per customer.
        case_store.open_case(
            session,
            order_id="1002",
            category="damaged_in_transit",
            text="奶粉罐子压坏了，很失望",
            at=NOW - timedelta(hours=2),
            deadline=NOW + timedelta(hours=6),
            who="test",
            note="",
        )

    await runtime.dispatcher.run_once()
    rows = _rows(runtime)
    status, reason, due = rows["restock-reminder"]
    assert status == "scheduled" and due == NOW + timedelta(hours=1)
    assert reason is not None and reason.startswith("held: the customer has an unhandled")
    assert rows["shipped"][0] == "sent"  # a care message is not held
    sent = [m.body for m in channels[ChannelKind.SMS].sent]
    assert len(sent) == 1 and "补货" not in sent[0]

    # Still unhandled an hour later: held again.
    clock.advance(timedelta(hours=1))
    await runtime.dispatcher.run_once()
    assert _rows(runtime)["restock-reminder"][0] == "scheduled"
    assert len(channels[ChannelKind.SMS].sent) == 1

    with runtime.db.transaction() as session:
        session.execute(update(CaseRow).values(status="resolved"))
    clock.advance(timedelta(hours=1))
    await runtime.dispatcher.run_once()
    assert _rows(runtime)["restock-reminder"][0] == "sent"
    assert len(channels[ChannelKind.SMS].sent) == 2
