"""Issue 6 acceptance, replayed in virtual time through ``carebot.simulate`` with the sample
rules (``shipped``: channel ``preferred``) and the default quiet hours and caps."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from support.core import MESSAGE_TEMPLATES, RULES

from carebot.events import Event, parse_event
from carebot.settings import Settings
from carebot.simulate import SimulationRecord, simulate

SHANGHAI = ZoneInfo("Asia/Shanghai")
LA = ZoneInfo("America/Los_Angeles")


def settings(tmp_path: Path, rules: Path | None = None) -> Settings:
    if rules is None:
        # The sample ``shipped`` rule alone: these tests count its messages, and the other
        # sample rules (delay warnings from the watchers, …) would add theirs.
        rules = tmp_path / "shipping-rules"
        rules.mkdir(exist_ok=True)
        shutil.copy(RULES / "shipping.yaml", rules)
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        rules_dir=rules,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="21:00-09:00",
        default_timezone="Asia/Shanghai",
        default_locale="zh-CN",
        public_url="https://care.example.com",
        shop_name="测试小店",
    )


def shipped(
    n: int,
    at: datetime,
    *,
    phone: str | None = "+8613800138000",
    email: str | None = "wang@example.com",
    timezone: str | None = None,
    country: str = "CN",
    locale: str = "zh-CN",
) -> Event:
    customer: dict[str, Any] = {"id": "c-42", "name": "王芳", "locale": locale}
    customer |= {"phone": phone, "email": email, "timezone": timezone}
    return parse_event(
        {
            "id": f"evt-{n}",
            "type": "order.shipped",
            "occurred_at": at.isoformat(),
            "order": {
                "id": f"100{n}",
                "customer": customer,
                "shipping_address": {"country": country},
            },
            "shipment": {"id": f"s-{n}", "carrier": "SF Express", "tracking_number": f"SF000{n}"},
        }
    )


def sent(records: list[SimulationRecord], channel: str) -> list[SimulationRecord]:
    return [r for r in records if r.channel == channel and r.status == "sent"]


async def test_five_shipments_one_morning_give_at_most_three_sms_a_day_and_every_number(
    tmp_path: Path,
) -> None:
    morning = datetime(2026, 11, 20, 9, 0, tzinfo=SHANGHAI)
    events = [shipped(n, morning + timedelta(minutes=30 * (n - 1))) for n in range(1, 6)]

    records = await simulate(events, settings=settings(tmp_path))

    texts = sent(records, "sms")
    times = sorted(datetime.fromisoformat(r.sent_at or "") for r in texts)
    # No four texts within 24 hours of each other: at most three in any rolling day.
    for a, _, _, d in combinations(times, 4):
        assert d - a >= timedelta(hours=24)
    bodies = "\n".join(r.body or "" for r in texts)
    for n in range(1, 6):
        assert f"SF000{n}" in bodies
    assert len(texts) == 4
    assert [r.status for r in records if r.status != "sent"] == ["cancelled"]
    [absorbed] = [r for r in records if r.status == "cancelled"]
    assert absorbed.reason is not None and absorbed.reason.startswith("merged into notification")
    assert sent(records, "email") == []


async def test_a_shipment_at_2230_pacific_texts_the_customer_at_0900_pacific_next_morning(
    tmp_path: Path,
) -> None:
    evening = datetime(2026, 11, 20, 22, 30, tzinfo=LA)
    event = shipped(
        1, evening, phone="+12135550123", timezone="America/Los_Angeles", country="US", locale="en"
    )

    [record] = await simulate([event], settings=settings(tmp_path))

    assert (record.channel, record.status) == ("sms", "sent")
    assert record.sent_at == datetime(2026, 11, 21, 9, 0, tzinfo=LA).isoformat()


async def test_a_customer_with_no_zone_and_a_plus_86_number_gets_shanghai_quiet_hours(
    tmp_path: Path,
) -> None:
    # 22:30 in Shanghai; the shipping address says US, but the phone number speaks first.
    evening = datetime(2026, 11, 20, 22, 30, tzinfo=SHANGHAI)
    event = shipped(1, evening, timezone=None, country="US")

    [record] = await simulate([event], settings=settings(tmp_path))

    assert record.sent_at == datetime(2026, 11, 21, 9, 0, tzinfo=SHANGHAI).isoformat()


async def test_a_customer_with_no_zone_and_no_phone_gets_their_countrys_zone(
    tmp_path: Path,
) -> None:
    evening = datetime(2026, 11, 20, 22, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    event = shipped(1, evening, phone=None, timezone=None, country="DE", locale="en")

    [record] = await simulate([event], settings=settings(tmp_path))

    assert (record.channel, record.status) == ("email", "sent")
    assert (
        record.sent_at == datetime(2026, 11, 21, 9, 0, tzinfo=ZoneInfo("Europe/Berlin")).isoformat()
    )


async def test_a_customer_with_phone_12345_and_an_email_gets_the_email_and_no_sms(
    tmp_path: Path,
) -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)

    [record] = await simulate([shipped(1, at, phone="12345")], settings=settings(tmp_path))

    assert (record.channel, record.to, record.status) == ("email", "wang@example.com", "sent")
    assert record.body is not None and "SF0001" in record.body


async def test_with_sms_plus_email_a_phone_12345_fails_its_sms_with_the_reason_and_emails(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(
        "rules:\n"
        "  - id: shipped\n"
        "    on: order.shipped\n"
        "    send: {channel: sms+email, template: shipped}\n",
        encoding="utf-8",
    )
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)

    records = await simulate([shipped(1, at, phone="12345")], settings=settings(tmp_path, rules))

    by_channel = {r.channel: r for r in records}
    assert (by_channel["sms"].status, by_channel["sms"].reason) == (
        "failed",
        "no valid phone number",
    )
    assert by_channel["email"].status == "sent"
