"""Platform webhook routes: Shopify, WooCommerce and AfterShip, verified their own way.

Each route checks the signature over the exact raw bytes (401 when it is missing or wrong, or
no secret is configured), maps the payload with ``carebot.sources`` (400, kept, when it cannot
be mapped) and ingests every event before answering 2xx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from carebot.events import Event, Order, Shipment
from carebot.runtime import Runtime
from carebot.sources import aftership, shopify, woocommerce
from carebot.sources.signatures import verify_hmac_sha256_base64
from carebot.store import lookups
from carebot.web._body import read_body
from carebot.web._payload import PayloadError, mapped, parse_json
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


def _joined(
    event: Event,
    order_id: str | None,
    known: lookups.KnownShipment | None,
    *,
    order_stored: bool = True,
) -> Event:
    """A tracking service's ``event`` joined to an order and a stored shipment.

    The shop's carrier name and tracking link win over the tracking service's, and a stored
    order's customer is not rewritten from the tracking service's copy.
    """
    update: dict[str, Any] = {}
    shipment = event.shipment
    if shipment is not None:
        fields: dict[str, Any] = {"order_id": order_id or shipment.order_id}
        if known is not None:
            fields["id"] = known.id
            if known.carrier:
                fields["carrier"] = None
            if known.tracking_url:
                fields["tracking_url"] = None
        update["shipment"] = shipment.model_copy(update=fields)
    if event.order is not None and order_id and order_stored:
        update["order"] = Order(id=order_id)
    return event.model_copy(update=update)


def join_known_shipments(
    runtime: Runtime, events: list[Event], *, tracking_service: bool = False
) -> list[Event]:
    """Join each event's shipment (and, from a tracking service, its order) to the store.

    A shipment with a stored shipment's tracking number takes that shipment's id and order:
    this is how an AfterShip update finds its order, and how a shipment first seen from
    AfterShip is joined to the order when the shop's fulfillment arrives (the shop's order
    takes over AfterShip's provisional one). A ``tracking_service`` event (AfterShip) that
    matches no stored shipment joins the stored order its ``order_id`` or ``order_number``
    names, and that order's one parcel without tracking number; an order carebot does not
    know is created from it.
    """
    joined: list[Event] = []
    with runtime.db.transaction() as session:
        for event in events:
            joined.append(_join(session, event, tracking_service=tracking_service))
    return joined


def _join(session: Session, event: Event, *, tracking_service: bool) -> Event:
    shipment = event.shipment
    if shipment is None or not shipment.tracking_number:
        return event
    known = lookups.shipment_by_tracking(session, shipment.tracking_number, shipment.carrier)
    if known is not None and known.id != shipment.id:
        return _join_known(session, event, shipment, known, tracking_service=tracking_service)
    if known is not None or event.order is None or not tracking_service:
        return event
    return _join_untracked(session, event, event.order)


def _join_known(
    session: Session,
    event: Event,
    shipment: Shipment,
    known: lookups.KnownShipment,
    *,
    tracking_service: bool,
) -> Event:
    """``event``'s ``shipment`` is one carebot stores under another id: use that one."""
    own_order = shipment.order_id or event.order_id
    if (
        own_order
        and known.order_id
        and own_order != known.order_id
        and lookups.order_known(session, own_order)
    ):
        return event  # two stored orders claim this tracking number: leave them apart
    provisional = (known.order_id or "").startswith(aftership.ORDER_ID_PREFIX)
    if tracking_service:
        stored = known.order_id is not None or (
            own_order is not None and lookups.order_known(session, own_order)
        )
        return _joined(event, known.order_id or own_order, known, order_stored=stored)
    order_id = own_order if provisional else (own_order or known.order_id)
    fields = {"id": known.id, "order_id": order_id}
    return event.model_copy(update={"shipment": shipment.model_copy(update=fields)})


def _join_untracked(session: Session, event: Event, order: Order) -> Event:
    """A tracking service's new parcel for an order carebot knows: its untracked shipment."""
    order_id = order.id if lookups.order_known(session, order.id) else None
    if order_id is None and order.number:
        order_id = lookups.order_id_by_number(session, order.number)
    if order_id is None:
        return event  # an order carebot does not know: this creates it
    return _joined(event, order_id, lookups.untracked_shipment(session, order_id))


def _ingest_all(
    runtime: Runtime, events: list[Event], source: str, delivery_id: str | None
) -> list[tuple[str, bool, int]]:
    results = []
    tracking_service = source == "aftership"
    for event in join_known_shipments(runtime, events, tracking_service=tracking_service):
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
        payload: Any = parse_json(body, max_depth=runtime.settings.http.max_json_depth)
        events = mapped(mapper, headers, payload)
        delivery = mapped(delivery_id, headers, payload)
    except PayloadError as exc:
        return await bad_request(runtime, source, request, body, str(exc))
    if not events:
        return JSONResponse({"status": "ignored"}, status_code=200)
    results = await run_in_threadpool(_ingest_all, runtime, events, source, delivery)
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
