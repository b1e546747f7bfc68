"""The care journey of issue 4 through ``carebot simulate`` (a subprocess) on the sample rules.

One order goes shipped → stalled → scanned → out for delivery at 08:30 → delivered → follow-up
→ a complaint by SMS reply; a second order is cancelled; a third stalls at night and is
delivered before the morning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import REPO

SHANGHAI = ZoneInfo("Asia/Shanghai")
ALERTS = "ops@shop.example"
WANG = "+8613800138000"
LI = "+8613900139000"
ZHAO = "+8613700137000"


def at(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).isoformat()


def order(oid: str, cid: str, phone: str) -> dict[str, Any]:
    return {
        "id": oid,
        "placed_at": at("2026-11-19T21:00"),
        "total": "358.00",
        "currency": "CNY",
        "customer": {"id": cid, "name": "王芳", "phone": phone, "timezone": "Asia/Shanghai"},
        "shipping_address": {"country": "CN", "province": "浙江省", "city": "杭州市"},
        "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2}],
    }


def shipped(oid: str, cid: str, phone: str, when: str) -> dict[str, Any]:
    return {
        "id": f"evt-{oid}-shipped",
        "type": "order.shipped",
        "occurred_at": at(when),
        "order": order(oid, cid, phone),
        "shipment": {
            "id": f"s-{oid}",
            "carrier": "SF Express",
            "tracking_number": f"SF{oid}000",
            "status": "in_transit",
            "expected_delivery": "2026-11-28",
        },
    }


def scan(oid: str, status: str, when: str) -> dict[str, Any]:
    return {
        "id": f"evt-{oid}-{status}-{when}",
        "type": "shipment.updated",
        "occurred_at": at(when),
        "shipment": {"id": f"s-{oid}", "status": status},
    }


HISTORY = [
    shipped("1001", "c-42", WANG, "2026-11-20T10:00"),
    shipped("1002", "c-43", LI, "2026-11-20T11:00"),
    {
        "id": "evt-1002-cancelled",
        "type": "order.cancelled",
        "occurred_at": at("2026-11-20T20:00"),
        "order": {"id": "1002"},
    },
    shipped("1003", "c-44", ZHAO, "2026-11-20T22:30"),
    scan("1002", "out_for_delivery", "2026-11-21T09:30"),
    # 1003 stalls at 22:30 on the 22nd (quiet hours) and is delivered before 09:00.
    scan("1003", "delivered", "2026-11-23T08:00"),
    # 1001 sat without a scan from the 20th to the 23rd: stalled at 10:00 on the 22nd.
    scan("1001", "in_transit", "2026-11-23T15:00"),
    scan("1001", "out_for_delivery", "2026-11-24T08:30"),
    scan("1001", "delivered", "2026-11-24T14:00"),
    {
        "id": "twilio:SM-reply-1",
        "type": "message.received",
        "occurred_at": at("2026-11-29T15:00"),
        "message": {"channel": "sms", "from": WANG, "body": "2 罐子压坏了"},
    },
]


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("journey")
    events = tmp / "history.jsonl"
    events.write_text(
        "\n".join(json.dumps(e, ensure_ascii=False) for e in HISTORY), encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env |= {
        "CAREBOT_RULES_DIR": str(REPO / "rules"),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
        "CAREBOT_ALERTS__EMAIL": ALERTS,
        "CAREBOT_SHOP_NAME": "小熊母婴",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "carebot",
            "simulate",
            str(events),
            "--until",
            at("2026-12-05T00:00"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def only(records: list[dict[str, Any]], rule: str, order_id: str) -> dict[str, Any]:
    found = [r for r in records if r["rule"] == rule and r["order_id"] == order_id]
    assert len(found) == 1, (rule, order_id, found)
    return found[0]


def local(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI)


def test_the_shipped_message_carries_the_tracking_number_at_ship_time(
    records: list[dict[str, Any]],
) -> None:
    notice = only(records, "shipped", "1001")
    assert notice["status"] == "sent" and notice["to"] == WANG
    assert local(notice["sent_at"]) == local(at("2026-11-20T10:00"))
    assert "SF1001000" in notice["body"]


def test_a_parcel_without_a_scan_for_two_days_gets_a_delay_warning(
    records: list[dict[str, Any]],
) -> None:
    warning = only(records, "delay-warning", "1001")
    assert warning["status"] == "sent"
    # 48 hours after shipping, well within the three days it sat without a scan.
    assert local(warning["sent_at"]) == local(at("2026-11-22T10:00"))
    assert "没有更新" in warning["body"]


def test_an_out_for_delivery_scan_at_0830_is_texted_at_0900(
    records: list[dict[str, Any]],
) -> None:
    notice = only(records, "out-for-delivery", "1001")
    assert local(notice["sent_at"]) == local(at("2026-11-24T09:00"))
    assert "今天送达杭州市" in notice["body"]


def test_the_delivered_notice_goes_within_the_hour(records: list[dict[str, Any]]) -> None:
    notice = only(records, "delivered", "1001")
    sent = local(notice["sent_at"])
    assert local(at("2026-11-24T14:00")) <= sent <= local(at("2026-11-24T15:00"))


def test_the_follow_up_waits_the_products_own_five_days_and_asks_for_a_score(
    records: list[dict[str, Any]],
) -> None:
    follow_up = only(records, "follow-up", "1001")
    # MILK-* has follow_up_days: 5 in rules/products.yaml (the default would be 3).
    assert local(follow_up["sent_at"]) == local(at("2026-11-29T14:00"))
    assert "1-5" in follow_up["body"]


def test_the_reply_alerts_the_merchant_within_15_minutes_as_damaged_in_transit(
    records: list[dict[str, Any]],
) -> None:
    alert = only(records, "service-alert", "1001")
    assert (alert["channel"], alert["to"], alert["status"]) == ("email", ALERTS, "sent")
    replied = local(at("2026-11-29T15:00"))
    assert replied <= local(alert["sent_at"]) <= replied + timedelta(minutes=15)
    assert "1001" in alert["subject"] and "运输破损" in alert["subject"]
    assert "damaged_in_transit" in alert["body"]
    assert "2 罐子压坏了" in alert["body"]
    # The shipment history: the tracking number and the delivery scan.
    assert "SF1001000" in alert["body"] and "delivered" in alert["body"]


def test_the_customer_who_complained_gets_an_apology(records: list[dict[str, Any]]) -> None:
    apology = only(records, "feedback-thanks", "1001")
    assert apology["to"] == WANG and apology["status"] == "sent"
    assert "抱歉" in apology["body"]


def test_no_customer_message_is_sent_in_quiet_hours(records: list[dict[str, Any]]) -> None:
    customer_sent = [r for r in records if r["status"] == "sent" and r["to"] != ALERTS]
    assert customer_sent
    assert [r for r in customer_sent if not 9 <= local(r["sent_at"]).hour < 21] == []


def test_a_delay_warning_held_for_the_morning_is_cancelled_by_the_delivery(
    records: list[dict[str, Any]],
) -> None:
    warning = only(records, "delay-warning", "1003")
    assert warning["status"] == "cancelled"
    assert "shipment.updated" in warning["reason"]


def test_no_delay_warning_is_sent_after_the_parcel_was_delivered(
    records: list[dict[str, Any]],
) -> None:
    delivered = {"1001": at("2026-11-24T14:00"), "1003": at("2026-11-23T08:00")}
    after = [
        r
        for r in records
        if r["rule"] == "delay-warning"
        and r["status"] == "sent"
        and r["order_id"] in delivered
        and local(r["sent_at"]) >= local(delivered[r["order_id"]])
    ]
    assert after == []


def test_a_cancelled_order_gets_nothing_more(records: list[dict[str, Any]]) -> None:
    cancelled_at = local(at("2026-11-20T20:00"))
    later = [
        r
        for r in records
        if r["order_id"] == "1002" and r["status"] == "sent" and local(r["sent_at"]) > cancelled_at
    ]
    assert later == []
    assert only(records, "shipped", "1002")["status"] == "sent"
