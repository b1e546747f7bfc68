"""The 快递100 and Alibaba Cloud push routes in process: a real SQLite file, the real pipeline."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from support.china import FORM, SALT, fixture, kuaidi100_form, kuaidi100_push
from support.core import MESSAGE_TEMPLATES, RULES, migrated_database

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.reload import RulesReloader
from carebot.rendering import TemplateRenderer
from carebot.rulebook.ruleset import RuleSet
from carebot.runtime import Runtime, build_runtime
from carebot.settings import AliyunSettings, Settings, WebhookSettings
from carebot.store import consent
from carebot.store.models import EventRow, RejectedPayloadRow, ShipmentRow
from carebot.web.app import create_app

NOW = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
TOKEN = "push-token"


@dataclass
class App:
    client: httpx.AsyncClient
    runtime: Runtime

    def count(self, model: Any, *where: Any) -> int:
        with self.runtime.db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def opted_out(self, number: str) -> bool:
        with self.runtime.db.transaction() as session:
            return consent.is_opted_out(session, channel="sms", address=number)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'carebot.db'}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
        webhooks=WebhookSettings(kuaidi100_salt=SALT),
        aliyun=AliyunSettings(callback_token=TOKEN),
    )
    db = migrated_database(tmp_path / "carebot.db")
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(
        settings, clock=VirtualClock(NOW), channels=channels, db=db, inline_db=True
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield App(client=client, runtime=runtime)
    db.dispose()


async def test_a_push_joins_the_known_shipment_and_arrival_in_its_city_is_marked(
    app: App,
) -> None:
    shipped = parse_event(
        {
            "id": "evt-1001-shipped",
            "type": "order.shipped",
            "occurred_at": "2026-11-20T18:00:00+08:00",
            "order": {
                "id": "1001",
                "customer": {"id": "c-1", "name": "王芳", "phone": "+8613800138000"},
                "shipping_address": {"country": "CN", "city": "杭州市"},
            },
            "shipment": {"id": "s-1", "tracking_number": "SF1234567890", "status": "in_transit"},
        }
    )
    app.runtime.pipeline.ingest(shipped)
    answer = await app.client.post(
        "/webhooks/kuaidi100",
        content=kuaidi100_form(fixture("kuaidi100_push_intransit.json")),
        headers=FORM,
    )
    assert answer.json() == {"result": True, "returnCode": "200", "message": "成功"}
    # No second shipment: the push's parcel is the order's s-1, now by its Chinese carrier name.
    assert app.count(ShipmentRow) == 1
    with app.runtime.db.transaction() as session:
        row = session.scalars(select(EventRow).where(EventRow.source == "kuaidi100")).one()
        assert row.shipment_id == "s-1"
        assert row.payload["checkpoint"]["in_customer_city"] is True
        carrier = session.scalar(select(ShipmentRow.carrier))
    assert carrier == "顺丰速运"


async def test_a_push_for_a_parcel_of_another_city_is_not_in_the_customer_city(
    app: App,
) -> None:
    push = kuaidi100_push("0", ftime="2026-11-20 20:00:00", context="深圳转运", area="广东,深圳市")
    await app.client.post("/webhooks/kuaidi100", content=kuaidi100_form(push), headers=FORM)
    with app.runtime.db.transaction() as session:
        row = session.scalars(select(EventRow)).one()
    assert row.payload["checkpoint"]["in_customer_city"] is False


async def test_a_push_without_a_sign_or_a_salt_is_401(app: App) -> None:
    body = kuaidi100_form(fixture("kuaidi100_push_intransit.json"), salt="other")
    answer = await app.client.post("/webhooks/kuaidi100", content=body, headers=FORM)
    assert answer.status_code == 401
    assert answer.json()["result"] is False
    garbage = await app.client.post("/webhooks/kuaidi100", content=b"\xff\xfe", headers=FORM)
    assert garbage.status_code == 401
    assert app.count(EventRow) == 0


async def test_an_unmappable_push_is_400_in_kuaidi100s_shape_and_kept(app: App) -> None:
    push = fixture("kuaidi100_push_intransit.json")
    push["lastResult"]["state"] = "42"
    answer = await app.client.post(
        "/webhooks/kuaidi100", content=kuaidi100_form(push), headers=FORM
    )
    assert answer.status_code == 400
    assert answer.json()["result"] is False and "42" in answer.json()["message"]
    assert app.count(RejectedPayloadRow) == 1


async def test_replies_opt_out_and_back_in_once_each_by_sequence_id(app: App) -> None:
    up = fixture("aliyun_sms_up.json")
    for _ in range(2):
        answer = await app.client.post(f"/aliyun/sms/up/{TOKEN}", json=up)
        assert answer.json() == {"code": 0, "msg": "成功"}
    assert app.opted_out("+8613800138000")
    start = [{**up[0], "content": " start ", "sequence_id": 1234567891}]
    await app.client.post(f"/aliyun/sms/up/{TOKEN}", json=start)
    assert not app.opted_out("+8613800138000")
    # The first 退订 pushed again (a retry) must not opt the number out again.
    await app.client.post(f"/aliyun/sms/up/{TOKEN}", json=up)
    assert not app.opted_out("+8613800138000")


async def test_other_replies_become_message_received_events(app: App) -> None:
    up = [{**fixture("aliyun_sms_up.json")[0], "content": "奶粉什么时候到？"}]
    await app.client.post(f"/aliyun/sms/up/{TOKEN}", json=up)
    await app.client.post(f"/aliyun/sms/up/{TOKEN}", json=up)
    with app.runtime.db.transaction() as session:
        rows = list(session.scalars(select(EventRow)))
    assert [(r.type, r.payload["message"]["body"]) for r in rows] == [
        ("message.received", "奶粉什么时候到？")
    ]
    assert not app.opted_out("+8613800138000")


async def test_pushes_with_a_wrong_token_or_a_broken_body_change_nothing(app: App) -> None:
    wrong = await app.client.post("/aliyun/sms/up/nope", json=fixture("aliyun_sms_up.json"))
    assert wrong.status_code == 403
    broken = await app.client.post(f"/aliyun/sms/report/{TOKEN}", content=b"{not json")
    assert broken.status_code == 400
    not_a_push = await app.client.post(f"/aliyun/sms/report/{TOKEN}", json=[{"out_id": "1"}])
    assert not_a_push.status_code == 400
    assert app.count(RejectedPayloadRow) == 2
    assert app.count(EventRow) == 0


MAPPED = """\
rules:
  - id: shipped
    on: order.shipped
    send:
      channel: sms
      template: shipped
      aliyun: {code: SMS_465120001, params: {order: "{{ order.id }}"}}
"""


def test_with_aliyun_a_hot_reload_that_drops_a_template_keeps_the_last_good_rules(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    path = rules / "china.yaml"
    path.write_text(MAPPED, encoding="utf-8")
    reloader = RulesReloader(
        rules=RuleSet(rules),
        renderer=TemplateRenderer(templates_dir=MESSAGE_TEMPLATES, default_locale="zh-CN"),
        db=migrated_database(tmp_path / "carebot.db"),
        templates_dir=MESSAGE_TEMPLATES,
        default_locale="zh-CN",
        sms_provider="aliyun",
        now=lambda: NOW,
    )
    path.write_text(MAPPED.split("      aliyun:")[0], encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    outcome = reloader.poll()
    assert outcome.changed and not outcome.applied
    assert any("send.aliyun" in p.message for p in outcome.problems)
    kept = reloader.rules().rule("shipped")
    assert kept is not None and kept.send.aliyun is not None
