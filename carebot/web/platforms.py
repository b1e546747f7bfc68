"""Platform webhook routes: Shopify, WooCommerce and AfterShip, verified their own way.

Each route checks the signature over the exact raw bytes (401 when it is missing or wrong, or
no secret is configured), maps the payload with ``carebot.sources`` (400, kept, when it cannot
be mapped) and ingests every event before answering 2xx.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from carebot.events import Event, Order
from carebot.exceptions import SourceError
from carebot.runtime import Runtime
from carebot.sources import aftership, shopify, woocommerce
from carebot.sources.signatures import verify_hmac_sha256_base64
from carebot.store import lookups
from carebot.web._body import read_body
from carebot.web.state import runtime_of
from carebot.web.webhooks import bad_request

__all__ = ["aftership_webhook", "join_known_shipments", "shopify_webhook", "woocommerce_webhook"]

logger = logging.getLogger(__name__)

Mapper = Callable[[Mapping[str, str], Any], list[Event]]


def _unauthorized(source: str) -> Response:
    logger.warning(
        "webhook signature refused", extra={"action": "webhook_unauthorized", "source": source}
    )
    return JSONResponse({"error": "invalid or missing webhook signature"}, status_code=401)


def _joined(event: Event, order_id: str | None, known: lookups.KnownShipment | None) -> Event:
    """``event`` joined to a stored order and shipment: what the shop said stays.

    The shop's carrier name and tracking link win over a tracking service's; a known order's
    customer is not rewritten from a tracking service's copy.
    """
    update: dict[str, Any] = {}
    shipment = event.shipment
    if shipment is not None and known is not None:
        fields: dict[str, Any] = {"id": known.id, "order_id": order_id or known.order_id}
        if known.carrier:
            fields["carrier"] = None
        if known.tracking_url:
            fields["tracking_url"] = None
        update["shipment"] = shipment.model_copy(update=fields)
    elif shipment is not None and order_id:
        update["shipment"] = shipment.model_copy(update={"order_id": order_id})
    if event.order is not None and order_id:
        update["order"] = Order(id=order_id)
    return event.model_copy(update=update) if update else event


def join_known_shipments(runtime: Runtime, events: list[Event]) -> list[Event]:
    """Join each event's shipment and order to what the store knows.

    A shipment with a stored shipment's tracking number takes that shipment's id and order:
    this is how an AfterShip update finds its order, and how a shipment first seen from
    AfterShip (with no order) is joined to the order when the shop's fulfillment arrives.
    Otherwise a tracking service's order (AfterShip ``order_id`` / ``order_number``) joins a
    stored order of that id or number, and that order's one parcel without tracking number.
    """
    joined: list[Event] = []
    with runtime.db.transaction() as session:
        for event in events:
            shipment = event.shipment
            if shipment is None or not shipment.tracking_number:
                joined.append(event)
                continue
            known = lookups.shipment_by_tracking(
                session, shipment.tracking_number, shipment.carrier
            )
            own_order = shipment.order_id or event.order_id
            if known is not None and known.id != shipment.id:
                if (
                    own_order
                    and known.order_id
                    and own_order != known.order_id
                    and lookups.order_known(session, own_order)
                ):
                    # Two stored orders claim this tracking number: leave them apart.
                    joined.append(event)
                    continue
                provisional = (known.order_id or "").startswith(aftership.ORDER_ID_PREFIX)
                if known.order_id is not None and not (provisional and own_order):
                    joined.append(_joined(event, known.order_id, known))
                else:
                    # The stored shipment has no order yet (or only AfterShip's provisional
                    # one): this event's order, if any, is it.
                    fields = {"id": known.id, "order_id": own_order}
                    joined.append(
                        event.model_copy(update={"shipment": shipment.model_copy(update=fields)})
                    )
                continue
            if known is not None or event.order is None:
                joined.append(event)
                continue
            order_id = event.order.id if lookups.order_known(session, event.order.id) else None
            if order_id is None and event.order.number:
                order_id = lookups.order_id_by_number(session, event.order.number)
            if order_id is None:
                joined.append(event)  # an order carebot does not know: this creates it
                continue
            joined.append(_joined(event, order_id, lookups.untracked_shipment(session, order_id)))
    return joined


def _ingest_all(
    runtime: Runtime, events: list[Event], source: str, delivery_id: str | None
) -> list[tuple[str, bool, int]]:
    results = []
    for event in join_known_shipments(runtime, events):
        result = runtime.pipeline.ingest(event, source=source, delivery_id=delivery_id)
        results.append((result.event_id, result.duplicate, result.scheduled))
    return results


async def _platform_webhook(
    request: Request,
    *,
    source: str,
    secret: SecretStr | None,
    signature_header: str,
    mapper: Mapper,
    delivery_id: Callable[[Mapping[str, str], Any], str | None],
) -> Response:
    runtime = runtime_of(request)
    body = await read_body(request, runtime.settings.http.max_body_bytes)
    headers = dict(request.headers)
    if source == "woocommerce" and woocommerce.is_ping(headers, body):
        return JSONResponse({"status": "ping"}, status_code=200)
    signature = request.headers.get(signature_header)
    if secret is None or not verify_hmac_sha256_base64(secret.get_secret_value(), body, signature):
        return _unauthorized(source)
    try:
        payload: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return await bad_request(runtime, source, request, body, f"body is not JSON: {exc}")
    try:
        events = mapper(headers, payload)
    except SourceError as exc:
        return await bad_request(runtime, source, request, body, str(exc))
    except ValidationError as exc:
        reason = f"payload maps to an invalid event: {exc.errors()[0]['msg']}"
        return await bad_request(runtime, source, request, body, reason)
    if not events:
        return JSONResponse({"status": "ignored"}, status_code=200)
    results = await run_in_threadpool(
        _ingest_all, runtime, events, source, delivery_id(headers, payload)
    )
    fresh = [r for r in results if not r[1]]
    return JSONResponse(
        {
            "status": "accepted" if fresh else "duplicate",
            "event_ids": [r[0] for r in results],
            "scheduled": sum(r[2] for r in results),
        },
        status_code=202 if fresh else 200,
    )


async def shopify_webhook(request: Request) -> Response:
    """``POST /webhooks/shopify``: ``X-Shopify-Hmac-Sha256``, routed on ``X-Shopify-Topic``."""
    return await _platform_webhook(
        request,
        source="shopify",
        secret=runtime_of(request).settings.webhooks.shopify_secret,
        signature_header=shopify.HMAC_HEADER,
        mapper=shopify.map_webhook,
        delivery_id=lambda headers, _payload: shopify.delivery_id(headers),
    )


async def woocommerce_webhook(request: Request) -> Response:
    """``POST /webhooks/woocommerce``: ``X-WC-Webhook-Signature``; the creation ping is 200."""
    settings = runtime_of(request).settings
    zone = ZoneInfo(settings.webhooks.woocommerce_timezone or settings.default_timezone)
    return await _platform_webhook(
        request,
        source="woocommerce",
        secret=settings.webhooks.woocommerce_secret,
        signature_header=woocommerce.SIGNATURE_HEADER,
        mapper=partial(woocommerce.map_webhook, store_zone=zone),
        delivery_id=lambda headers, _payload: woocommerce.delivery_id(headers),
    )


async def aftership_webhook(request: Request) -> Response:
    """``POST /webhooks/aftership``: ``aftership-hmac-sha256``; tracking updates."""
    return await _platform_webhook(
        request,
        source="aftership",
        secret=runtime_of(request).settings.webhooks.aftership_secret,
        signature_header=aftership.SIGNATURE_HEADER,
        mapper=aftership.map_webhook,
        delivery_id=lambda _headers, payload: aftership.delivery_id(payload),
    )
