"""Issue 5 through ``carebot simulate --json``: stock-up advice before a disruption."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .conftest import REPO

PEOPLE = {
    "wang": ("+8613800138000", {"country": "CN", "province": "浙江省", "city": "杭州市"}),
    "li": ("+8613900139000", {"country": "CN", "province": "上海市", "city": "上海市"}),
}
SUMMIT = {
    "id": "summit-hangzhou",
    "title": "峰会期间杭州物流管控",
    "regions": [{"country": "CN", "city": "杭州"}],
    "start": "2026-10-30",
    "end": "2026-11-06",
    "extra_transit_days": 7,
    "notice_days": 10,
}


def _monthly_formula() -> list[dict[str, Any]]:
    """Two customers, two orders of four tins 30 days apart, each delivered two days later."""
    events: list[dict[str, Any]] = []
    for month, day in ((1, "2026-09-01"), (2, "2026-10-01")):
        for n, (cid, (phone, address)) in enumerate(PEOPLE.items()):
            oid = f"{cid}-{month}"
            placed = datetime.fromisoformat(f"{day}T10:0{n}:00+08:00")
            customer = {"id": cid, "name": cid, "phone": phone, "timezone": "Asia/Shanghai"}
            item = {"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 4}
            order: dict[str, Any] = {
                "id": oid,
                "placed_at": placed.isoformat(),
                "customer": customer,
            }
            order |= {"shipping_address": address, "items": [item]}
            shipment = {"id": f"s-{oid}", "tracking_number": f"SF{month}{n}"}
            events += [
                {"id": f"{oid}-placed", "type": "order.placed", "order": order,
                 "occurred_at": placed.isoformat()},
                {"id": f"{oid}-shipped", "type": "order.shipped", "order": {"id": oid},
                 "shipment": {**shipment, "status": "in_transit"},
                 "occurred_at": (placed + timedelta(hours=8)).isoformat()},
                {"id": f"{oid}-delivered", "type": "shipment.updated", "order": {"id": oid},
                 "shipment": {"id": shipment["id"], "status": "delivered"},
                 "occurred_at": (placed + timedelta(days=2)).isoformat()},
            ]  # fmt: skip
    events.sort(key=lambda e: str(e["occurred_at"]))
    declared = {"id": "declare-summit", "type": "disruption.declared", "disruption": SUMMIT}
    return [*events, {**declared, "occurred_at": "2026-10-10T09:00:00+08:00"}]


def test_simulate_tells_the_hangzhou_customer_to_stock_up_days_before_the_ordinary_reminder(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("products.yaml", "restock.yaml"):
        shutil.copy(REPO / "rules" / name, rules / name)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in _monthly_formula()),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env |= {
        "CAREBOT_RULES_DIR": str(rules),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "carebot", "simulate", str(events), "--json",
         "--until", "2026-10-29T00:00:00+08:00"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]

    def sent(rule: str, to: str) -> list[dict[str, Any]]:
        return [r for r in records if (r["rule"], r["to"], r["status"]) == (rule, to, "sent")]

    [stock_up] = sent("stock-up-before-disruption", PEOPLE["wang"][0])
    ordinary = sent("restock-reminder", PEOPLE["li"][0])[-1]
    assert ordinary["order_id"] == "li-2"
    stock_up_at = datetime.fromisoformat(stock_up["sent_at"])
    assert stock_up_at <= datetime.fromisoformat(ordinary["sent_at"]) - timedelta(days=3)
    assert stock_up_at < datetime.fromisoformat("2026-10-30T00:00:00+08:00")
    assert "峰会期间杭州物流管控" in stock_up["body"] and "备3件" in stock_up["body"]
    assert sent("stock-up-before-disruption", PEOPLE["li"][0]) == []
