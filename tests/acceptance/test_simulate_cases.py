"""``carebot simulate`` replays service recovery: cases, deadline alerts, the question, the digest.

The expected figures are worked out here from the generated inputs, not read back from carebot.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .conftest import REPO

SHANGHAI = ZoneInfo("Asia/Shanghai")
ALERTS = "ops@shop.example"
# The complaint words of three categories, as a customer writes them; and a happy reply.
COMPLAINTS = {
    "damaged_in_transit": ("Damaged in transit", "1分，罐子压坏了"),
    "wrong_item": ("Wrong item or size", "2 发错货了"),
    "logistics_speed": ("Slow delivery", "物流太慢了 3分"),
}
HAPPY = "5分 很好"
PRODUCTS = [("TEA-100", "Green tea"), ("CUP-200", "Tea cup"), ("POT-300", "Tea pot")]


def _event(kind: str, at: datetime, ident: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "type": kind, "occurred_at": at.isoformat(), **fields}


def _order(n: int, shipped: datetime, sku: str, title: str) -> list[dict[str, Any]]:
    phone = f"+86138000{n:05d}"
    return [
        _event(
            "order.shipped",
            shipped,
            f"ship-{n}",
            order={
                "id": f"o-{n}",
                "customer": {"id": f"c-{n}", "phone": phone},
                "shipping_address": {"country": "CN", "city": "杭州市"},
                "items": [{"sku": sku, "title": title, "quantity": 1}],
            },
            shipment={"id": f"s-{n}", "carrier": "SF Express", "tracking_number": f"SF{n}"},
        ),
        _event(
            "shipment.updated",
            shipped + timedelta(days=1, hours=4),
            f"deliver-{n}",
            shipment={"id": f"s-{n}", "status": "delivered"},
        ),
    ]


def _reply(n: int, at: datetime, body: str) -> dict[str, Any]:
    phone = f"+86138000{n:05d}"
    return _event(
        "message.received", at, f"sms-{n}-{at:%m%d%H%M}", message={"from": phone, "body": body}
    )


def _simulate(tmp_path: Path, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in events), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env |= {
        "CAREBOT_RULES_DIR": str(REPO / "rules"),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
        "CAREBOT_ALERTS__EMAIL": ALERTS,
        "CAREBOT_DEFAULT_LOCALE": "en",
    }
    result = subprocess.run(
        [sys.executable, "-m", "carebot", "simulate", str(path), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _section(body: str, start: str, end: str) -> dict[str, int]:
    """``- Label (key): n`` lines between two headings, as {key: n}."""
    part = body.split(start, 1)[1].split(end, 1)[0]
    return {key: int(n) for key, n in re.findall(r"^- .*\(([^()]+)\): (\d+)$", part, re.M)}


def test_a_month_of_complaints_in_three_categories_gives_digests_that_match_the_cases(
    tmp_path: Path,
) -> None:
    chance = random.Random(21)
    start = datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)  # a Monday
    events: list[dict[str, Any]] = []
    # (reply instant, category or None, sku) for every reply the customers send.
    replies: list[tuple[datetime, str | None, str]] = []
    for n in range(1, 41):
        shipped = start + timedelta(days=chance.randrange(0, 24), hours=chance.randrange(0, 8))
        sku, title = chance.choice(PRODUCTS)
        events += _order(n, shipped, sku, title)
        # The follow-up goes 3 days after delivery (no product profile), in 10:00-20:00 (so
        # at the latest the next morning); the customer answers a day after delivery + 3 days.
        answered = shipped + timedelta(days=5, hours=4)
        category = chance.choice([*COMPLAINTS, None])
        events.append(_reply(n, answered, COMPLAINTS[category][1] if category else HAPPY))
        replies.append((answered, category, sku))
    # One parcel that never moves again: stalled 48 h after shipping.
    stuck = datetime(2026, 11, 10, 10, 0, tzinfo=SHANGHAI)
    events += _order(99, stuck, "TEA-100", "Green tea")[:1]

    records = _simulate(tmp_path, events)
    digests = [r for r in records if r["rule"] == "weekly-digest"]
    assert digests and all(d["status"] == "sent" and d["to"] == ALERTS for d in digests)
    checked = 0
    for number, digest in enumerate(digests):
        found = re.search(r"Week \d{4}-\d\d-\d\d to (\d{4}-\d\d-\d\d)", digest["body"])
        assert found
        until = datetime.fromisoformat(f"{found.group(1)}T09:00:00+08:00")
        assert until.weekday() == 0  # Monday 09:00, the shop's zone
        if number:  # the first may go when the replay starts, later that Monday morning
            assert datetime.fromisoformat(digest["sent_at"]) == until
        week = [(c, sku) for at, c, sku in replies if c and until - timedelta(days=7) <= at < until]
        body = digest["body"]
        assert f"Complaints: {len(week)}\n" in body
        assert _section(body, "By category:", "By product:") == dict(Counter(c for c, _ in week))
        assert _section(body, "By product:", "Median") == dict(Counter(s for _, s in week))
        stalled = 1 if until > stuck + timedelta(hours=48) else 0
        assert f"Parcels stalled now: {stalled}\n" in body
        checked += bool(week)
    assert checked >= 3  # the month's weeks with complaints were all reported
    total = sum(1 for _, c, _ in replies if c)
    counted = [re.search(r"Complaints: (\d+)", d["body"]) for d in digests]
    assert all(counted), "every digest states its complaints"
    assert sum(int(m.group(1)) for m in counted if m) == total


def test_the_replay_opens_a_case_alerts_past_its_deadline_and_asks_once_resolved(
    tmp_path: Path,
) -> None:
    shipped = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    friday = datetime(2026, 11, 27, 17, 0, tzinfo=SHANGHAI)  # 1 business hour left today
    tuesday = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)
    events = [
        *_order(1, shipped, "TEA-100", "Green tea"),
        _reply(1, friday, "1分，罐子压坏了"),
        # The merchant's part, as the dashboard would record it.
        _event(
            "case.updated",
            tuesday,
            "merchant-1",
            order={"id": "o-1"},
            case={"status": "resolved", "note": "sent a new tin", "who": "Li"},
        ),
        _reply(1, tuesday + timedelta(hours=2), "5"),
    ]
    records = _simulate(tmp_path, events)
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_rule.setdefault(record["rule"], []).append(record)
    [alert] = by_rule["service-alert"]
    assert alert["sent_at"] == friday.isoformat()
    # 4 business hours for a damaged parcel: Friday 17-18, Monday 09-12.
    [overdue] = by_rule["case-overdue"]
    assert overdue["to"] == ALERTS and overdue["sent_at"].startswith("2026-11-30T12:0")
    [question] = by_rule["recovery-check"]
    assert question["sent_at"] == tuesday.isoformat() and question["to"] == "+8613800000001"
    thanks = by_rule["feedback-thanks"]
    assert len(thanks) == 2 and "sorry" not in (thanks[-1]["body"] or "").lower()
