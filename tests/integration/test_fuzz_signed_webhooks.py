"""Authentic but wrong-shaped payloads (hypothesis, signed): never a 5xx, always a reason.

Each body is a real sample payload with random parts replaced by values of the wrong shape
(a string where an object belongs, a list, 1e30, nesting), then signed correctly for its route:
Standard Webhooks for ``/webhooks/carebot``, HMAC-SHA256 base64 for Shopify, WooCommerce and
AfterShip, ``X-Twilio-Signature`` for the Twilio callbacks. The signature holds, so only the
shape can be refused: with 400 and a reason, and the payload is kept for inspection.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook
from support.core import MESSAGE_TEMPLATES, RULES, migrated_database
from twilio.request_validator import RequestValidator

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.runtime import Runtime, build_runtime
from carebot.settings import Settings
from carebot.sources.signatures import hmac_sha256_base64
from carebot.store.models import RejectedPayloadRow
from carebot.web.app import create_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"
PUBLIC_URL = "https://care.example.com"
CAREBOT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = {"shopify": "shpss_test", "woocommerce": "woo-secret", "aftership": "as-secret"}
TWILIO_TOKEN = "twilio-token"
HEADERS = {
    "shopify": "X-Shopify-Hmac-Sha256",
    "woocommerce": "X-WC-Webhook-Signature",
    "aftership": "aftership-hmac-sha256",
}
CANONICAL = {
    "id": "evt-1001-shipped",
    "type": "order.shipped",
    "occurred_at": "2026-11-20T10:00:00+08:00",
    "order": {
        "id": "1001",
        "placed_at": "2026-11-19T21:13:00+08:00",
        "total": "358.00",
        "currency": "CNY",
        "customer": {"id": "c-42", "name": "王芳", "phone": "+8613800138000",
                     "email": "wang@example.com", "locale": "zh-CN", "timezone": "Asia/Shanghai"},
        "shipping_address": {"country": "CN", "province": "浙江省", "city": "杭州市"},
        "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2,
                   "unit_price": "179.00"}],
    },
    "shipment": {"id": "s-1", "carrier": "SF Express", "tracking_number": "SF1234567890",
                 "status": "in_transit", "expected_delivery": "2026-11-22"},
}  # fmt: skip
SAMPLES: dict[str, list[tuple[str, Any]]] = {
    "carebot": [("", CANONICAL)],
    "shopify": [
        ("orders/create", "shopify_orders_create.json"),
        ("fulfillments/create", "shopify_fulfillments_create.json"),
        ("fulfillments/update", "shopify_fulfillments_update.json"),
        ("refunds/create", "shopify_refunds_create.json"),
    ],
    "woocommerce": [
        ("order.created", "woocommerce_order_created.json"),
        ("order.updated", "woocommerce_order_updated.json"),
    ],
    "aftership": [
        ("", "aftership_tracking_update_intransit.json"),
        ("", "aftership_tracking_update_delivered_min.json"),
    ],
}
TWILIO = {
    "/twilio/status": "twilio_status_callback.txt",
    "/twilio/inbound": "twilio_inbound_sms.txt",
}

# Stands for a value nested thousands deep, spliced into the JSON text (json.dumps would recurse).
DEEP = "\u0000deep\u0000"
DEEP_JSON = b"[" * 3000 + b"]" * 3000

WRONG = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([1e30, -1e30, 10**30, -(10**30), 1.5, 0, -1, "", "1e30", "x", "2026-13-45"])
    | st.just(DEEP)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _sample(source: str, name: Any) -> Any:
    if isinstance(name, str):
        return json.loads((FIXTURES / name).read_text())
    return name


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*prefix, i))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    # An earlier replacement may have removed this place.
    with contextlib.suppress(KeyError, IndexError, TypeError):
        value[head] = _replace(value[head], rest, new)
    return value


def _nested(depth: int) -> bytes:
    return b'{"order":' * depth + b'{"id":"x"}' + b"}" * depth


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    path = tmp_path_factory.mktemp("signed-fuzz") / "carebot.db"
    db = migrated_database(path)
    settings = Settings(
        database_url=f"sqlite:///{path}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        public_url=PUBLIC_URL,
        quiet_hours="none",
        webhooks={
            "carebot_secret": CAREBOT_SECRET,
            "shopify_secret": SECRETS["shopify"],
            "woocommerce_secret": SECRETS["woocommerce"],
            "aftership_secret": SECRETS["aftership"],
        },
        twilio={"auth_token": TWILIO_TOKEN},
    )
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    yield build_runtime(settings, clock=VirtualClock(datetime.now(UTC)), channels=channels, db=db)
    db.dispose()


def _signed(source: str, topic: str, body: bytes, delivery: int) -> dict[str, str]:
    if source == "carebot":
        now = datetime.now(UTC)
        webhook_id = f"msg_{delivery}"
        return {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(CAREBOT_SECRET).sign(webhook_id, now, body.decode()),
        }
    headers = {
        "Content-Type": "application/json",
        HEADERS[source]: hmac_sha256_base64(SECRETS[source], body),
    }
    if source == "shopify":
        headers |= {"X-Shopify-Topic": topic, "X-Shopify-Event-Id": f"e-{delivery}"}
    if source == "woocommerce":
        headers |= {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Delivery-ID": f"d-{delivery}"}
    return headers


def _post(runtime: Runtime, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    app = create_app(runtime)

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(post())


def _rejected(runtime: Runtime) -> int:
    with runtime.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(RejectedPayloadRow)) or 0)


def _post_signed(runtime: Runtime, source: str, topic: str, payload: Any) -> httpx.Response:
    if isinstance(payload, bytes):
        body = payload
    else:
        text = json.dumps(payload, ensure_ascii=False).encode()
        body = text.replace(json.dumps(DEEP).encode(), DEEP_JSON)
    delivery = abs(hash(body))
    before = _rejected(runtime)
    response = _post(runtime, f"/webhooks/{source}", body, _signed(source, topic, body, delivery))
    assert response.status_code < 500, (source, topic, response.text, body[:300])
    assert response.status_code not in (401, 403), response.text  # the signature held
    if response.status_code == 400:
        assert response.json()["error"], "a 400 says why"
        assert _rejected(runtime) == before + 1, "a refused authentic payload is kept"
    return response


_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(data=st.data(), source=st.sampled_from(sorted(SAMPLES)))
def test_signed_payloads_of_wrong_shapes_are_never_a_5xx(
    runtime: Runtime, data: st.DataObject, source: str
) -> None:
    topic, name = data.draw(st.sampled_from(SAMPLES[source]))
    payload = copy.deepcopy(_sample(source, name))
    places = list(_paths(payload))
    for place in data.draw(st.lists(st.sampled_from(places), min_size=1, max_size=3)):
        payload = _replace(payload, place, data.draw(WRONG))
    _post_signed(runtime, source, topic, payload)


@_SETTINGS
@given(data=st.data(), path=st.sampled_from(sorted(TWILIO)))
def test_signed_twilio_callbacks_of_wrong_shapes_are_never_a_5xx(
    runtime: Runtime, data: st.DataObject, path: str
) -> None:
    params = dict(parse_qsl((FIXTURES / TWILIO[path]).read_text().strip(), keep_blank_values=True))
    params["Body"] = "Hi there"  # keyword replies (STOP/START) are another issue's concern
    for key in data.draw(st.lists(st.sampled_from(sorted(params)), max_size=4)):
        params[key] = data.draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=30))
    query = data.draw(
        st.sampled_from(["", "?notification=1", "?notification=" + "9" * 23, "?notification=²"])
    )
    if path == "/twilio/inbound":
        query = ""
    url = path + query
    signed_url = str(httpx.URL(PUBLIC_URL + url))  # as sent: the query percent-encoded
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(signed_url, params)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    response = _post(runtime, url, urlencode(params).encode(), headers)
    assert response.status_code < 500, (url, params, response.text)
    assert response.status_code != 403, "the signature held"


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_a_signed_body_nested_thousands_deep_is_400_and_kept(runtime: Runtime, source: str) -> None:
    topic = SAMPLES[source][0][0]
    response = _post_signed(runtime, source, topic, _nested(5000))
    assert response.status_code == 400
    assert "nested" in response.json()["error"]


def test_a_signed_body_nested_past_the_json_parser_is_400(runtime: Runtime) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    before = _rejected(runtime)
    response = _post(runtime, "/webhooks/aftership", body, _signed("aftership", "", body, 1))
    assert response.status_code == 400 and "nested" in response.json()["error"]
    assert _rejected(runtime) == before + 1


def test_an_aftership_timestamp_of_1e30_is_400_with_a_reason(runtime: Runtime) -> None:
    payload = _sample("aftership", "aftership_tracking_update_intransit.json")
    payload["ts"] = 1e30
    response = _post_signed(runtime, "aftership", "", payload)
    assert response.status_code == 400


def test_a_shopify_address_that_is_a_string_is_400_with_a_reason(runtime: Runtime) -> None:
    payload = _sample("shopify", "shopify_orders_create.json")
    payload["shipping_address"] = "123 Main St"
    payload["billing_address"] = "123 Main St"
    response = _post_signed(runtime, "shopify", "orders/create", payload)
    assert response.status_code in (202, 400)  # read as no address, or refused: never a 500


def test_a_twilio_status_for_an_id_out_of_range_is_404(runtime: Runtime) -> None:
    params = dict(parse_qsl((FIXTURES / TWILIO["/twilio/status"]).read_text().strip()))
    for raw in ("9" * 23, "9223372036854775808", "0"):
        url = f"/twilio/status?notification={raw}"
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + url, params)
        response = _post(
            runtime,
            url,
            urlencode(params).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )
        assert response.status_code == 404, (raw, response.text)
