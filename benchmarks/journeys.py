"""A reproducible file of mixed customer journeys, for replays that must not change.

Each order goes placed → paid → shipped → (out for delivery) → delivered, some are cancelled
or refunded, some customers write in ("1" after a feedback request, "TD" to opt out), some
buy with an email address only, in zh-CN or en and in several time zones; a few events come
twice, as platforms retry them. Same seed, same file.

    python benchmarks/journeys.py OUT.jsonl [--events 2000] [--seed 20261202]

Used to check that ``carebot simulate --json`` prints byte-identical output before and after
a change (issue 19): run both checkouts on the same file and compare.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)
ZONES = ["Asia/Shanghai", "Asia/Shanghai", "Asia/Tokyo", "Europe/Berlin", "America/New_York"]
ITEMS = [
    ("MILK-900G", "婴儿配方奶粉 900g", "179.00"),
    ("TEA-250G", "西湖龙井 250g", "268.00"),
    ("FILTER-3", "Water filter, pack of 3", "59.90"),
]
STATUSES = ["in_transit", "out_for_delivery"]


def _customer(n: int, rng: random.Random) -> dict[str, Any]:
    locale = rng.choice(["zh-CN", "zh-CN", "en"])
    customer: dict[str, Any] = {"id": f"c-{n}", "locale": locale, "timezone": rng.choice(ZONES)}
    customer["name"] = f"王{n}" if locale == "zh-CN" else f"Customer {n}"
    if rng.random() < 0.8:
        customer["phone"] = f"+86139{n:08d}"
    if rng.random() < 0.5 or "phone" not in customer:
        customer["email"] = f"buyer{n}@example.com"
    return customer


def _journey(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """The events of order ``n``, in the order they happened."""
    at = START + timedelta(minutes=37 * n + rng.randint(0, 30))
    sku, title, price = rng.choice(ITEMS)
    quantity = rng.randint(1, 3)
    order = {
        "id": f"o-{n}",
        "placed_at": at.isoformat(),
        "total": f"{float(price) * quantity:.2f}",
        "currency": "CNY",
        "customer": _customer(n, rng),
        "shipping_address": {"country": "CN", "province": "浙江省", "city": "杭州市"},
        "items": [{"sku": sku, "title": title, "quantity": quantity, "unit_price": price}],
    }
    shipment = {"id": f"s-{n}", "carrier": "SF Express", "tracking_number": f"SF{n:010d}"}
    events: list[tuple[str, datetime, dict[str, Any]]] = [
        ("order.placed", at, {"order": order}),
        ("order.paid", at + timedelta(minutes=3), {"order": {"id": order["id"]}}),
    ]
    if rng.random() < 0.08:
        events.append(("order.cancelled", at + timedelta(hours=2), {"order": {"id": order["id"]}}))
        return _stamp(n, events)
    shipped = at + timedelta(hours=rng.randint(4, 30))
    events.append(("order.shipped", shipped, {"order": order, "shipment": dict(shipment)}))
    moving = shipped + timedelta(hours=rng.randint(10, 40))
    for status in STATUSES[: rng.randint(1, 2)]:
        update = {**shipment, "status": status}
        events.append(
            ("shipment.updated", moving, {"order": {"id": order["id"]}, "shipment": update})
        )
        moving += timedelta(hours=rng.randint(2, 9))
    if rng.random() < 0.9:
        events.append(
            ("order.delivered", moving, {"order": {"id": order["id"]}, "shipment": shipment})
        )
        phone = order["customer"].get("phone")
        if phone and rng.random() < 0.3:
            body = rng.choice(["1", "5", "TD", "包装破了", "thanks"])
            message = {"channel": "sms", "from": phone, "body": body}
            events.append(("message.received", moving + timedelta(days=4), {"message": message}))
    if rng.random() < 0.03:
        events.append(
            ("order.refunded", moving + timedelta(days=6), {"order": {"id": order["id"]}})
        )
    return _stamp(n, events)


def _stamp(n: int, events: list[tuple[str, datetime, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {"id": f"evt-{n}-{i}-{kind}", "type": kind, "occurred_at": when.isoformat(), **body}
        for i, (kind, when, body) in enumerate(events)
    ]


def write_journeys(path: Path, count: int, seed: int = 20261202) -> int:
    """Write at least ``count`` events (whole journeys) to ``path``; return how many."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    n = 0
    while len(events) < count:
        events += _journey(n, rng)
        n += 1
    # A platform's retry (the same event again), now and then.
    for event in rng.sample(events, k=max(1, len(events) // 50)):
        events.append(dict(event))
    events.sort(key=lambda e: (e["occurred_at"], e["id"]))
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
    return len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    print(write_journeys(args.out, args.events, args.seed), "events written to", args.out)


if __name__ == "__main__":
    main()
