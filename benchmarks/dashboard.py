"""Dashboard pages against a busy database: 100,000 notifications over three weeks, 10,000 cases.

Fills a migrated SQLite file in bulk (notifications of five rules on both channels, sent,
delivered, failed, cancelled in the past and scheduled in the coming week; orders, customers,
shipments, events and feedback for a slice of them; service-recovery cases of the last 90 days
in every status), logs in, then times every page through the real ASGI app (httpx
``ASGITransport``). Exits 1 when a page's slowest run is over budget.

    python benchmarks/dashboard.py [--notifications 100000] [--cases 10000] [--runs 5]
                                   [--budget-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fill import bulk_insert

from carebot.clock import VirtualClock
from carebot.runtime import build_runtime
from carebot.settings import Settings
from carebot.store.database import Database
from carebot.store.models import (
    CaseRow,
    CustomerRow,
    EventRow,
    FeedbackRow,
    LineItemRow,
    NotificationRow,
    OrderRow,
    ShipmentRow,
)
from carebot.web.app import create_app

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
RULES = ["shipped", "out-for-delivery", "delivered", "follow-up", "restock"]
PAST = ["sent"] * 6 + ["delivered"] * 6 + ["failed", "cancelled", "suppressed", "expired"]
REASONS = ["21211: invalid number", "21610: opted out", "smtp 550: mailbox unavailable"]
TOKEN = "bench-token"


def _notifications(count: int, orders: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(7)
    for n in range(count):
        # Two thirds in the last 14 days, a third in the coming 7: what a busy shop holds.
        offset = timedelta(minutes=rng.randint(-14 * 24 * 60, 7 * 24 * 60))
        due = NOW + offset
        status = "scheduled" if offset > timedelta(0) else rng.choice(PAST)
        channel = "sms" if n % 3 else "email"
        order = n % orders
        yield {
            "dedupe_key": f"order:{order}:{RULES[n % 5]}:{channel}:{n}",
            "rule_id": RULES[n % 5],
            "channel": channel,
            "recipient": f"+86138{order:08d}" if channel == "sms" else f"c{order}@example.com",
            "template": RULES[n % 5],
            "locale": "zh-CN",
            "timezone": "Asia/Shanghai",
            "order_id": str(order),
            "customer_id": f"c-{order}",
            "context": {"order": {"id": str(order)}},
            "due_at": due,
            "not_after": due + timedelta(days=2),
            "status": status,
            "reason": rng.choice(REASONS) if status == "failed" else None,
            "sent_at": due if status in ("sent", "delivered") else None,
            "body": "您的包裹已发出" if status in ("sent", "delivered") else None,
            "attempts": 1,
            "max_attempts": 6,
            "transactional": False,
            "in_doubt": "resend",
            "audience": "customer",
            "created_at": due - timedelta(hours=1),
            "updated_at": due,
        }


CATEGORIES = ["damaged_in_transit", "wrong_item", "product_quality", "logistics_speed", "other"]
CASE_STATUSES = ["open", "contacted"] + ["resolved"] * 6 + ["dismissed"]


def _cases(count: int, orders: int) -> Iterator[dict[str, Any]]:
    """Cases of the last 90 days, one per order (so one active case per order at most)."""
    rng = random.Random(13)
    for n in range(count):
        opened = NOW - timedelta(minutes=rng.randint(0, 90 * 24 * 60))
        status = rng.choice(CASE_STATUSES)
        contacted = opened + timedelta(hours=rng.uniform(0.5, 30)) if status != "open" else None
        resolved = contacted + timedelta(hours=rng.uniform(1, 72)) if status == "resolved" else None
        history = [{"at": opened.isoformat(), "who": "customer", "status": "open", "note": "压坏了"}]
        if contacted is not None:
            history.append({"at": contacted.isoformat(), "who": "dashboard", "status": "contacted"})
        if resolved is not None:
            history.append({"at": resolved.isoformat(), "who": "dashboard", "status": "resolved"})
        deadline = opened + timedelta(hours=4) if status in ("open", "contacted") else None
        order = n % orders
        yield {
            "order_id": str(order),
            "customer_id": f"c-{order}",
            "products": [{"sku": f"SKU-{order % 40}", "title": f"商品 {order % 40}"}],
            "category": rng.choice(CATEGORIES),
            "text": "罐子压坏了",
            "opened_at": opened,
            "status": status,
            "step": len(history) - 1,
            "deadline_at": deadline,
            "overdue_at": opened + timedelta(hours=4) if rng.random() < 0.2 else None,
            "contacted_at": contacted,
            "resolved_at": resolved,
            "recovered": rng.choice([True, False, None]) if resolved else None,
            "history": history,
            "updated_at": resolved or contacted or opened,
        }


def fill(db: Database, *, notifications: int, orders: int, cases: int = 0) -> None:
    stamp = {"created_at": NOW, "updated_at": NOW}
    bulk_insert(
        db,
        CustomerRow,
        (
            {"id": f"c-{n}", "name": "王芳", "phone": f"+86138{n:08d}", **stamp}
            | {"email": f"c{n}@example.com", "locale": "zh-CN", "timezone": "Asia/Shanghai"}
            for n in range(orders)
        ),
    )
    address = {"country": "CN", "city": "杭州市"}
    bulk_insert(
        db,
        OrderRow,
        (
            {"id": str(n), "customer_id": f"c-{n}", "status": "shipped", **stamp}
            | {"placed_at": NOW - timedelta(days=3), "shipping_address": address}
            for n in range(orders)
        ),
    )
    bulk_insert(
        db,
        LineItemRow,
        (
            {"order_id": str(n), "position": 0, "sku": f"SKU-{n % 40}", "title": f"商品 {n % 40}"}
            | {"quantity": 1}
            for n in range(orders)
        ),
    )
    bulk_insert(
        db,
        ShipmentRow,
        (
            {"id": f"s-{n}", "order_id": str(n), "status": "in_transit", **stamp}
            | {"shipped_at": NOW - timedelta(days=2), "tracking_number": f"SF{n}"}
            for n in range(orders)
        ),
    )
    bulk_insert(
        db,
        EventRow,
        (
            {"source": "carebot", "event_id": f"evt-{n}", "type": "order.shipped"}
            | {"occurred_at": NOW, "received_at": NOW, "order_id": str(n), "payload": {}}
            for n in range(orders)
        ),
    )
    bulk_insert(db, NotificationRow, _notifications(notifications, orders))
    rng = random.Random(11)
    bulk_insert(
        db,
        FeedbackRow,
        (
            {"order_id": str(n % orders), "customer_id": f"c-{n % orders}", "notification_id": n}
            | {
                "score": rng.randint(1, 5),
                "text": "还行",
                "category": rng.choice(["other", "slow"]),
            }
            | {"received_at": NOW - timedelta(hours=n)}
            for n in range(1, 1001)
        ),
    )
    bulk_insert(db, CaseRow, _cases(cases, orders))


PAGES = [
    "/dashboard",
    "/dashboard/orders?q=%2B8613800000042",
    "/dashboard/orders?q=138%200000%200042",
    "/dashboard/orders?q=SF42",
    "/dashboard/orders?q=0042",
    "/dashboard/orders?trouble=stalled",
    "/dashboard/orders?trouble=at_risk",
    "/dashboard/orders?complaints=damaged_in_transit&unhandled=1",
    "/dashboard/orders?failed=1",
    "/dashboard/orders/42",
    "/dashboard/upcoming",
    "/dashboard/upcoming?rule=follow-up",
    "/dashboard/feedback",
    "/dashboard/disruptions",
    "/dashboard/results",
    "/dashboard/rules",
]


async def measure(db_path: Path, runs: int) -> dict[str, list[float]]:
    settings = Settings(
        database_url=f"sqlite:///{db_path}",
        rules_dir=REPO / "rules",
        templates_dir=REPO / "message_templates",
        public_url="https://care.example.com",
        admin_token=SecretStr(TOKEN),
    )
    runtime = build_runtime(settings, clock=VirtualClock(NOW), channels={})
    transport = httpx.ASGITransport(app=create_app(runtime))
    timings: dict[str, list[float]] = {}
    async with httpx.AsyncClient(transport=transport, base_url="https://bench") as client:
        await client.post("/dashboard/login", data={"token": TOKEN})
        for path in PAGES:
            for _ in range(runs + 1):  # the first run warms caches and is not counted
                started = time.perf_counter()
                response = await client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (path, response.status_code)
                timings.setdefault(path, []).append(elapsed)
            timings[path] = timings[path][1:]
    await runtime.aclose()
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget-ms", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db_path = Path(folder) / "dashboard.db"
        db = Database(f"sqlite:///{db_path}")
        db.upgrade()
        started = time.perf_counter()
        fill(db, notifications=args.notifications, orders=args.orders, cases=args.cases)
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
        db.dispose()
        print(
            f"filled {args.notifications:,} notifications, {args.orders:,} orders, "
            f"{args.cases:,} cases "
            f"in {time.perf_counter() - started:.1f} s"
        )
        timings = asyncio.run(measure(db_path, args.runs))
    over = False
    print(f"{'page':40} {'median ms':>10} {'max ms':>10}")
    for path, values in timings.items():
        slowest = max(values)
        over = over or slowest > args.budget_ms
        flag = "  OVER BUDGET" if slowest > args.budget_ms else ""
        print(f"{path:40} {statistics.median(values):10.1f} {slowest:10.1f}{flag}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
