"""A Chinese shop's parcel, 揽收 to 签收: 快递100 pushes in, Alibaba Cloud SMS out.

``carebot run`` as a subprocess, the official Alibaba Cloud SDK against the local API server
(signatures checked), 快递100 pushes built from the documented format (tests/fixtures/china).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from support.china import FORM, SALT, fixture, kuaidi100_form, kuaidi100_push

from carebot.testing.aliyun_server import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
    FakeAliyunServer,
    Reply,
)

from .conftest import REPO, wait_until

TOKEN = "push-token-7f3a"

RULES = """
rules:
  - id: shipped
    on: order.shipped
    when: shipment.tracking_number
    send:
      channel: sms
      template: shipped
      aliyun:
        code: SMS_465120001
        params: {name: "{{ customer.name }}", order: "{{ order.id }}"}
    once_per: shipment
  - id: arrived-in-city
    on: shipment.updated
    when: checkpoint.in_customer_city and shipment.status == 'in_transit'
    send:
      channel: sms
      template: arrived_in_city
      aliyun:
        code: SMS_465120002
        params: {order: "{{ order.id }}", city: "{{ shipping_address.city }}"}
    once_per: shipment
  - id: out-for-delivery
    on: shipment.updated
    when: shipment.status == 'out_for_delivery'
    send:
      channel: sms
      template: out_for_delivery
      aliyun: {code: SMS_465120003, params: {order: "{{ order.id }}"}}
  - id: delivered
    on: order.delivered
    send:
      channel: sms
      template: delivered
      aliyun: {code: SMS_465120004, params: {order: "{{ order.id }}"}}
"""


def china_daemon(daemon_factory: Any, tmp_path: Path, aliyun: FakeAliyunServer) -> Any:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "china.yaml").write_text(RULES, encoding="utf-8")
    return daemon_factory(
        CAREBOT_RULES_DIR=str(rules),
        CAREBOT_SHOP_NAME="小熊母婴",
        CAREBOT_SMS__PROVIDER="aliyun",
        CAREBOT_ALIYUN__ACCESS_KEY_ID=DEFAULT_ACCESS_KEY_ID,
        CAREBOT_ALIYUN__ACCESS_KEY_SECRET=DEFAULT_ACCESS_KEY_SECRET,
        CAREBOT_ALIYUN__SIGN_NAME="小熊母婴",
        CAREBOT_ALIYUN__ENDPOINT=aliyun.endpoint,
        CAREBOT_ALIYUN__PROTOCOL="http",
        CAREBOT_ALIYUN__CALLBACK_TOKEN=TOKEN,
        CAREBOT_ALIYUN__THROTTLE_RETRY_SECONDS="1",
        CAREBOT_WEBHOOKS__KUAIDI100_SALT=SALT,
        CAREBOT_DISPATCH__BACKOFF_BASE_SECONDS="0.2",
        CAREBOT_DISPATCH__BACKOFF_MAX_SECONDS="1",
    )


def shipped_order() -> dict[str, Any]:
    return {
        "id": "evt-1001-shipped",
        "type": "order.shipped",
        "occurred_at": "2026-11-20T18:00:00+08:00",
        "order": {
            "id": "1001",
            "customer": {
                "id": "c-42",
                "name": "王芳",
                "phone": "+8613800138000",
                "locale": "zh-CN",
                "timezone": "Asia/Shanghai",
            },
            "shipping_address": {"country": "CN", "province": "浙江省", "city": "杭州市"},
            "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2}],
        },
        "shipment": {
            "id": "s-1",
            "carrier": "SF Express",
            "tracking_number": "SF1234567890",
            "status": "in_transit",
        },
    }


def push(daemon: Any, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{daemon.url}/webhooks/kuaidi100", content=kuaidi100_form(body, **kwargs), headers=FORM
    )


def notification(daemon: Any, rule: str) -> tuple[Any, ...] | None:
    rows = daemon.query(
        "SELECT status, attempts, reason, provider_id FROM notifications WHERE rule_id = ?", rule
    )
    return rows[0] if rows else None


def test_a_parcel_from_pickup_to_signed_texts_approved_templates_until_the_customer_opts_out(
    daemon_factory: Any, tmp_path: Path
) -> None:
    with FakeAliyunServer() as aliyun:
        daemon = china_daemon(daemon_factory, tmp_path, aliyun)
        # Alibaba Cloud's per-number flow control refuses the first send.
        aliyun.script([Reply(code="isv.BUSINESS_LIMIT_CONTROL", message="触发分钟级流控Permits:1")])
        daemon.start(timeout=60)
        assert daemon.post(shipped_order()).status_code == 202

        # 揽收: the carrier has it; the shop's order.shipped already told the customer.
        picked = kuaidi100_push(
            "1", ftime="2026-11-20 18:05:00", context="顺丰速运 已收取快件", area="广东,深圳市"
        )
        answer = push(daemon, picked)
        assert answer.status_code == 200
        assert answer.json() == {"result": True, "returnCode": "200", "message": "成功"}

        # The throttled shipped text is retried and goes out with its template and params.
        assert aliyun.wait_for(1, timeout=15, accepted=True)
        assert aliyun.answers[:2] == ["isv.BUSINESS_LIMIT_CONTROL", "OK"]
        first = aliyun.accepted[0]
        assert first["TemplateCode"] == "SMS_465120001"
        assert json.loads(first["TemplateParam"]) == {"name": "王芳", "order": "1001"}
        assert first["PhoneNumbers"] == "13800138000"
        assert first["SignName"] == "小熊母婴"
        assert wait_until(lambda: (notification(daemon, "shipped") or ("",))[0] == "sent")
        _status, attempts, _reason, biz_id = notification(daemon, "shipped") or ()
        assert attempts == 2 and biz_id
        assert first["OutId"] == str(daemon.query("SELECT id FROM notifications")[0][0])

        # The receipt push settles it as delivered.
        report = fixture("aliyun_sms_report.json")
        report[0]["out_id"], report[0]["biz_id"] = first["OutId"], biz_id
        receipt = httpx.post(f"{daemon.url}/aliyun/sms/report/{TOKEN}", json=report)
        assert receipt.json() == {"code": 0, "msg": "成功"}
        assert notification(daemon, "shipped")[0] == "delivered"  # type: ignore[index]

        # 在途 in 杭州 (the customer's city, from the checkpoint's areaName): the 同城 text.
        arrived = kuaidi100_push(
            "0",
            ftime="2026-11-21 07:40:00",
            context="快件已到达【杭州萧山集散中心】",
            area="浙江,杭州市,萧山区",
        )
        assert push(daemon, arrived).status_code == 200
        assert aliyun.wait_for(2, timeout=10, accepted=True)
        second = aliyun.accepted[1]
        assert second["TemplateCode"] == "SMS_465120002"
        assert json.loads(second["TemplateParam"]) == {"order": "1001", "city": "杭州市"}
        # The same push again (快递100 retries) changes nothing.
        assert push(daemon, arrived).status_code == 200

        # The customer replies 退订 (pushed twice, as a retried push would be).
        up = fixture("aliyun_sms_up.json")
        for _ in range(2):
            reply = httpx.post(f"{daemon.url}/aliyun/sms/up/{TOKEN}", json=up)
            assert reply.json() == {"code": 0, "msg": "成功"}
        assert daemon.query("SELECT count(*) FROM events WHERE source = 'aliyun'") == [(1,)]

        # 派件 and 签收: planned, but the customer opted out, so nothing more is sent.
        out = kuaidi100_push("5", ftime="2026-11-21 09:12:00", context="快递员正在派件")
        assert push(daemon, out).status_code == 200
        signed = kuaidi100_push("3", ftime="2026-11-21 11:30:00", context="已签收，签收人：本人")
        assert push(daemon, signed).status_code == 200
        assert wait_until(
            lambda: (
                {(notification(daemon, r) or ("",))[0] for r in ("out-for-delivery", "delivered")}
                == {"suppressed"}
            )
        )
        assert len(aliyun.requests) == 3
        assert daemon.query("SELECT status FROM orders WHERE id = '1001'") == [("delivered",)]


def test_pushes_with_a_wrong_sign_or_token_are_refused_and_nothing_is_stored(
    daemon_factory: Any, tmp_path: Path
) -> None:
    with FakeAliyunServer() as aliyun:
        daemon = china_daemon(daemon_factory, tmp_path, aliyun)
        daemon.start(timeout=60)
        body = kuaidi100_push("5", ftime="2026-11-21 09:12:00", context="快递员正在派件")
        refused = push(daemon, body, salt="not-the-salt")
        assert refused.status_code == 401
        assert refused.json()["result"] is False
        up = httpx.post(f"{daemon.url}/aliyun/sms/up/wrong", json=fixture("aliyun_sms_up.json"))
        assert up.status_code == 403
        assert daemon.query("SELECT count(*) FROM events") == [(0,)]
        assert daemon.query("SELECT count(*) FROM consents") == [(0,)]
        broken = httpx.post(
            f"{daemon.url}/webhooks/kuaidi100",
            content=kuaidi100_form({"lastResult": {"nu": "SF1", "state": "99", "data": []}}),
            headers=FORM,
        )
        assert broken.status_code == 400
        assert broken.json()["result"] is False
        assert daemon.query("SELECT count(*) FROM rejected_payloads") == [(1,)]


def _validate(rules_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "carebot", "validate", str(rules_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**clean, **env},
        timeout=120,
    )


def test_validate_with_aliyun_names_every_sms_rule_without_an_approved_template(
    tmp_path: Path,
) -> None:
    sample = _validate(REPO / "rules", CAREBOT_SMS__PROVIDER="aliyun")
    assert sample.returncode == 1
    unmapped = [line for line in sample.stdout.splitlines() if "send.aliyun" in line]
    assert unmapped and all(line.startswith(str(REPO / "rules")) for line in unmapped)
    assert any("rule 'shipped'" in line for line in unmapped)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "china.yaml").write_text(RULES, encoding="utf-8")
    mapped = _validate(rules, CAREBOT_SMS__PROVIDER="aliyun")
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr
