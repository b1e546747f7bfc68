"""Alert emails to the shop read line by line: no field runs into the next."""

from __future__ import annotations

from pathlib import Path

import pytest

from carebot.channels import ChannelKind
from carebot.rendering import TemplateRenderer

TEMPLATES = Path(__file__).resolve().parents[2] / "message_templates"
CONTEXT = {
    "order": {"id": "1001", "total": "358.00", "currency": "CNY"},
    "customer": {"id": "c-1", "name": "王芳", "phone": "+8618800188001", "email": "w@example.com"},
    "shipping_address": {"province": "浙江省", "city": "杭州市"},
    "items": [{"title": "奶粉", "sku": "MILK", "quantity": 1}],
    "shop": {"name": "小店"},
    "feedback": {
        "score": None,
        "category": "damaged_in_transit",
        "category_label": "运输破损",
        "text": "奶粉罐子压坏了，很失望",
        "history": [
            {
                "occurred_at": "2026-11-20T10:00:00+08:00",
                "type": "order.shipped",
                "carrier": "SF",
                "tracking_number": "SF1",
            },
            {"occurred_at": "2026-11-21T10:00:00+08:00", "type": "order.delivered"},
        ],
    },
    "case": {
        "id": 7,
        "history": [
            {"at": "2026-11-22T10:00:00+08:00", "status": "open", "who": "carebot", "note": "开"},
            {"at": "2026-11-22T11:00:00+08:00", "status": "contacted", "who": "店长", "note": ""},
        ],
    },
}


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_service_alert_puts_each_field_and_each_scan_on_its_own_line(locale: str) -> None:
    renderer = TemplateRenderer(templates_dir=TEMPLATES, default_locale="zh-CN")
    text = renderer.render("service_alert", ChannelKind.EMAIL, locale, CONTEXT).text
    lines = text.splitlines()
    contact = next(line for line in lines if "+8618800188001" in line)
    assert contact.endswith("w@example.com"), contact
    assert sum("SF1" in line for line in lines) == 1
    assert not any("SF1" in line and "order.delivered" in line for line in lines), text
