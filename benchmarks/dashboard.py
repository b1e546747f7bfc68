"""Dashboard pages against a busy database: 100,000 notifications over three weeks, 10,000 cases.

Fills a migrated SQLite file in bulk (notifications of five rules on both channels, sent,
delivered, failed, cancelled in the past and scheduled in the coming week; 20,000 orders with
customers, line items, shipments in every state, events; 20,000 replies, a third of them
complaints, some unscored; service-recovery cases of the last 90 days in every status), logs
in, then times every page through the real ASGI app (httpx ``ASGITransport``): the median and
the slowest of ``--runs`` runs after one warm-up run, as a table and as JSON (the last line;
``--json-out`` also writes it to a file). Exits 1 when a page's slowest run is over budget.
The defaults are the acceptance run.

    python benchmarks/dashboard.py [--notifications 100000] [--cases 10000] [--runs 5]
                                   [--budget-ms 300] [--json-out FILE] [--db FILE]

``--db FILE`` keeps the filled database there and reuses it on the next run (same sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


REPLIES = [
    *[(5, "other", "很好，谢谢"), (4, "other", "还行"), (5, "other", "5")] * 2,
    (3, "other", "一般"),
    (None, "other", "收到了"),
    (1, "other", "1"),
    (None, "damaged_in_transit", "奶粉罐子压坏了，很失望"),
    (3, "wrong_item", "3分，发错货了"),
    (5, "logistics_speed", "5星 但是物流太慢"),
]


def _replies(orders: int) -> Iterator[dict[str, Any]]:
    """One reply per order over the last 60 days, a third of them complaints."""
    rng = random.Random(11)
    for n in range(orders):
        score, category, text = REPLIES[n % len(REPLIES)]
        yield {
            "order_id": str(n),
            "customer_id": f"c-{n}",
            "notification_id": n * 5 + 1,
            "score": score,
            "text": text,
            "category": category,
            "received_at": NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 60)),
        }


SHIPMENT_STATES = ["in_transit"] * 5 + ["delivered"] * 3 + ["failed_attempt", "exception"]


def _shipments(orders: int) -> Iterator[dict[str, Any]]:
    """A parcel per order, shipped in the last 10 days; some stalled, late, failed, delivered."""
    rng = random.Random(17)
    for n in range(orders):
        shipped = NOW - timedelta(hours=rng.randint(1, 240))
        status = SHIPMENT_STATES[n % len(SHIPMENT_STATES)]
        yield {
            "id": f"s-{n}",
            "order_id": str(n),
            "status": status,
            "tracking_number": f"SF{n}",
            "carrier": "SF Express",
            "shipped_at": shipped,
            "last_scan_at": shipped + timedelta(hours=rng.randint(0, 48)),
            "expected_delivery": (shipped + timedelta(days=rng.randint(1, 5))).date(),
            "delivered_at": NOW - timedelta(hours=1) if status == "delivered" else None,
            "created_at": shipped,
            "updated_at": NOW,
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
        history = [
            {"at": opened.isoformat(), "who": "customer", "status": "open", "note": "压坏了"}
        ]
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
    cities = [
        ("浙江省", "杭州市"),
        ("广东省", "广州市"),
        ("北京市", "北京市"),
        ("四川省", "成都市"),
    ]
    bulk_insert(
        db,
        OrderRow,
        (
            {"id": str(n), "customer_id": f"c-{n}", "status": "shipped", **stamp}
            | {"placed_at": NOW - timedelta(days=3)}
            | {
                "shipping_address": {
                    "country": "CN",
                    "province": cities[n % 4][0],
                    "city": cities[n % 4][1],
                }
            }
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
    bulk_insert(db, ShipmentRow, _shipments(orders))
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
    bulk_insert(db, FeedbackRow, _replies(orders))
    bulk_insert(db, CaseRow, _cases(cases, orders))


PAGES = [
    "/dashboard",
    "/dashboard/orders?q=%2B8613800000042",
    "/dashboard/orders?q=138%200000%200042",
    "/dashboard/orders?q=13800000042",
    "/dashboard/orders?q=SF42",
    "/dashboard/orders?q=0042",
    "/dashboard/orders?q=c42%40example.com",
    "/dashboard/orders?trouble=stalled",
    "/dashboard/orders?trouble=late",
    "/dashboard/orders?trouble=at_risk",
    "/dashboard/orders?complaints=damaged_in_transit&unhandled=1",
    "/dashboard/orders?failed=1",
    "/dashboard/orders/42",
    "/dashboard/upcoming",
    "/dashboard/upcoming?rule=follow-up",
    "/dashboard/feedback",
    "/dashboard/feedback?from=2026-09-01&to=2026-11-20&page=5",
    "/dashboard/feedback?from=2026-11-14&to=2026-11-20",
    "/dashboard/cases",
    "/dashboard/cases?status=active",
    "/dashboard/cases?status=resolved&from=2026-08-22&to=2026-11-20&page=3",
    "/dashboard/cases/42",
    "/dashboard/disruptions",
    "/dashboard/results",
    "/dashboard/results?from=2026-11-01&to=2026-11-20",
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


def _filled(path: Path, args: argparse.Namespace) -> None:
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    started = time.perf_counter()
    fill(db, notifications=args.notifications, orders=args.orders, cases=args.cases)
    with db.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    db.dispose()
    print(
        f"filled {args.notifications:,} notifications, {args.orders:,} orders, "
        f"{args.cases:,} cases in {time.perf_counter() - started:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget-ms", type=float, default=300.0)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--db", type=Path, default=None, help="keep and reuse the filled file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db_path = args.db or Path(folder) / "dashboard.db"
        if not db_path.exists():
            _filled(db_path, args)
        timings = asyncio.run(measure(db_path, args.runs))
    over = False
    print(f"{'page':66} {'median ms':>10} {'max ms':>10}")
    report = []
    for path, values in timings.items():
        slowest = max(values)
        over = over or slowest > args.budget_ms
        flag = "  OVER BUDGET" if slowest > args.budget_ms else ""
        print(f"{path:66} {statistics.median(values):10.1f} {slowest:10.1f}{flag}")
        report.append(
            {
                "page": path,
                "median_ms": round(statistics.median(values), 1),
                "max_ms": round(slowest, 1),
            }
        )
    figures = {
        "notifications": args.notifications,
        "orders": args.orders,
        "cases": args.cases,
        "runs": args.runs,
        "budget_ms": args.budget_ms,
        "load_average": list(os.getloadavg()),
        "pages": report,
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, ensure_ascii=False))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
