"""Sample rendering contexts: realistic data in the shape the planner builds.

``carebot validate`` evaluates conditions and renders templates against these, so a template
that names a field the planner does not provide fails before a customer would notice.
All values are JSON-friendly: datetimes are ISO 8601 strings with an offset, dates YYYY-MM-DD.
"""

from __future__ import annotations

import copy
from typing import Any

from carebot.events import EVENT_TYPES

__all__ = ["sample_context"]

_ZH: dict[str, Any] = {
    "order": {
        "id": "1001",
        "number": "#1001",
        "placed_at": "2026-11-19T21:13:00+08:00",
        "total": "358.00",
        "currency": "CNY",
    },
    "customer": {
        "id": "c-42",
        "name": "王芳",
        "phone": "+8613800138000",
        "email": "wang@example.com",
        "locale": "zh-CN",
        "timezone": "Asia/Shanghai",
    },
    "shipping_address": {
        "country": "CN",
        "province": "浙江省",
        "city": "杭州市",
        "postal_code": "310000",
    },
    "shipment": {
        "id": "s-1",
        "carrier": "SF Express",
        "tracking_number": "SF1234567890",
        "tracking_url": "https://www.sf-express.com/cn/sc/waybill/waybill-detail/SF1234567890",
        "expected_delivery": "2026-11-22",
        "last_scan_at": "2026-11-20T18:42:00+08:00",
    },
    "items": [
        {
            "sku": "MILK-900G",
            "title": "婴儿配方奶粉 900g",
            "quantity": 2,
            "unit_price": "179.00",
            "tags": ["baby", "formula"],
            "follow_up_days": 5,
            "days_per_unit": 7,
            "restock_lead_days": 4,
        }
    ],
    "message": {"channel": "sms", "from": "+8613800138000", "body": "5 非常满意"},
    "disruption": {
        "id": "summit-hangzhou",
        "title": "峰会期间杭州物流管控",
        "start": "2026-08-24",
        "end": "2026-09-06",
        "extra_transit_days": 7,
        "notice_days": 10,
        "regions": [{"country": "CN", "city": "杭州市"}],
        # What the disruption watchers add for the customer at hand.
        "sku": "MILK-900G",
        "product": "婴儿配方奶粉 900g",
        "suggested_quantity": 4,
        "run_out_on": "2026-08-28",
        "order_by": "2026-08-17",
        "normal_again_on": "2026-09-14",
        "expected_delivery": "2026-08-25",
    },
    "restock": {
        "sku": "MILK-900G",
        "title": "婴儿配方奶粉 900g",
        "quantity": 2,
        "run_out_on": "2026-12-04",
        "order_by": "2026-11-27",
        "transit_days": 3,
        "days_per_unit": 7,
        "pulled_earlier": False,
    },
    "feedback": {
        "score": 2,
        "text": "2 罐子压坏了",
        "category": "damaged_in_transit",
        "category_label": "运输破损",
        "complaint": True,
        "needs_attention": True,
        "request_id": 1,
        "history": [
            {
                "occurred_at": "2026-11-20T10:00:00+08:00",
                "type": "order.shipped",
                "shipment_id": "s-1",
                "status": "in_transit",
                "carrier": "SF Express",
                "tracking_number": "SF1234567890",
            },
            {
                "occurred_at": "2026-11-22T14:05:00+08:00",
                "type": "shipment.updated",
                "shipment_id": "s-1",
                "status": "delivered",
                "carrier": None,
                "tracking_number": None,
            },
        ],
    },
    "case": {
        "id": 7,
        "order_id": "1001",
        "customer_id": "c-42",
        "products": [{"sku": "MILK-900G", "title": "婴儿奶粉 900g"}],
        "category": "damaged_in_transit",
        "category_label": "运输破损",
        "text": "2 罐子压坏了",
        "status": "open",
        "step": 0,
        "opened_at": "2026-11-23T10:00:00+08:00",
        "deadline_at": "2026-11-23T14:00:00+08:00",
        "overdue_at": None,
        "contacted_at": None,
        "resolved_at": None,
        "recovered": None,
        "history": [
            {
                "at": "2026-11-23T10:00:00+08:00",
                "who": "customer",
                "status": "open",
                "note": "2 罐子压坏了",
            }
        ],
    },
    "digest": {
        "since": "2026-11-16T09:00:00+08:00",
        "until": "2026-11-23T09:00:00+08:00",
        "complaints": 3,
        "by_category": [{"category": "damaged_in_transit", "label": "运输破损", "count": 3}],
        "by_product": [
            {
                "sku": "MILK-900G",
                "title": "婴儿奶粉 900g",
                "cases": 3,
                "by_category": {"damaged_in_transit": 3},
            }
        ],
        "measures": {
            "cases": 3,
            "median_first_contact_hours": 2.5,
            "median_resolution_hours": 20.0,
            "past_deadline": 1,
            "recovered": 2,
            "recoverable": 3,
        },
        "stalled_now": 1,
        "stalled": [
            {
                "shipment_id": "s-1",
                "order_id": "1001",
                "carrier": "SF Express",
                "tracking_number": "SF1234567890",
                "last_seen_at": "2026-11-20T10:00:00+08:00",
            }
        ],
        "tomorrow": "2026-11-24",
        "tomorrow_total": 12,
        "tomorrow_by_rule": [{"rule": "follow-up", "label": "follow-up", "count": 12}],
    },
    "shop": {"name": "小熊母婴"},
}

_EN: dict[str, Any] = {
    **_ZH,
    "order": {**_ZH["order"], "total": "42.50", "currency": "USD"},
    "customer": {
        "id": "c-77",
        "name": "Emma Johnson",
        "phone": "+14155550123",
        "email": "emma@example.com",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
    },
    "shipping_address": {
        "country": "US",
        "province": "CA",
        "city": "San Francisco",
        "postal_code": "94107",
    },
    "shipment": {
        **_ZH["shipment"],
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
        "last_scan_at": "2026-11-20T02:42:00-08:00",
    },
    "items": [
        {
            **_ZH["items"][0],
            "sku": "MILK-900G",
            "title": "Infant formula 900 g",
            "unit_price": "21.25",
        }
    ],
    "message": {"channel": "sms", "from": "+14155550123", "body": "5 - great, thanks"},
    "disruption": {
        **_ZH["disruption"],
        "title": "Courier pause for the summit",
        "product": "Infant formula 900 g",
    },
    "restock": {**_ZH["restock"], "title": "Infant formula 900 g"},
    "shop": {"name": "Little Bear Baby"},
}

# (order status, shipment status) as they stand when each event is planned.
_STATUS: dict[str, tuple[str, str]] = {
    "order.placed": ("placed", "pending"),
    "order.paid": ("paid", "pending"),
    "order.shipped": ("shipped", "in_transit"),
    "shipment.updated": ("shipped", "out_for_delivery"),
    "order.delivered": ("delivered", "delivered"),
    "order.cancelled": ("cancelled", "pending"),
    "order.refunded": ("refunded", "delivered"),
    "restock.due": ("delivered", "delivered"),
    "disruption.stock_up": ("delivered", "delivered"),
}


def sample_context(event_type: str, *, locale: str | None = None) -> dict[str, Any]:
    """A fresh sample context for ``event_type``; English data when ``locale`` starts ``en``."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    base = copy.deepcopy(_EN if (locale or "").lower().startswith("en") else _ZH)
    order_status, shipment_status = _STATUS.get(event_type, ("shipped", "in_transit"))
    shipment = {**base["shipment"], "status": shipment_status}
    context: dict[str, Any] = {
        "event": {
            "id": f"evt-{base['order']['id']}-{event_type.replace('.', '-')}",
            "type": event_type,
            "occurred_at": "2026-11-20T10:00:00+08:00",
        },
        "order": {**base["order"], "status": order_status},
        "customer": base["customer"],
        "shipping_address": base["shipping_address"],
        "shipment": shipment,
        "shipments": [copy.deepcopy(shipment)],
        "items": base["items"],
        "shop": base["shop"],
        "unsubscribe_url": "https://shop.example/unsubscribe/c42-sample-token",
    }
    if event_type == "message.received":
        context["message"] = base["message"]
    if event_type.startswith("disruption."):
        context["disruption"] = base["disruption"]
    if event_type == "feedback.received":
        context["feedback"] = base["feedback"]
    if event_type == "shipment.updated":
        # Tracking sources attach their newest checkpoint (see carebot/sources/kuaidi100.py).
        context["checkpoint"] = {
            "time": "2026-11-21T07:40:00+08:00",
            "description": "快件已到达【杭州萧山集散中心】",
            "area": "浙江省,杭州市,萧山区",
            "state": "1001",
            "state_name": "到达派件城市",
            "carrier_code": "shunfeng",
            "signed": False,
            "in_customer_city": True,
        }
    if event_type.startswith("case."):
        context["case"] = base["case"]
    if event_type == "digest.weekly":
        context["digest"] = base["digest"]
    if event_type in ("restock.due", "disruption.stock_up"):
        # Watchers attach it as the event's ``restock`` field (see carebot/watchers/restock.py).
        context["restock"] = base["restock"]
    return context
