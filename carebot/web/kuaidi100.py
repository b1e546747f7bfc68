"""``POST /webhooks/kuaidi100``: 快递100 subscription pushes, ``sign`` checked.

The body is a form with ``param`` (the JSON push) and ``sign`` = MD5(param + salt), the salt
given when the parcel was subscribed (``CAREBOT_WEBHOOKS__KUAIDI100_SALT``). A wrong or missing
sign is 401; a push that cannot be mapped is 400 (and kept). Every answer is 快递100's shape,
``{"result": …, "returnCode": …, "message": …}``: only ``result: true`` stops its retries.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from carebot.events import Event
from carebot.exceptions import SourceError
from carebot.runtime import Runtime
from carebot.sources import kuaidi100
from carebot.store import entities
from carebot.web._body import read_body
from carebot.web.platforms import join_known_shipments
from carebot.web.state import runtime_of
from carebot.web.webhooks import bad_request

__all__ = ["kuaidi100_webhook"]

logger = logging.getLogger(__name__)

SOURCE = "kuaidi100"


def _answer(ok: bool, code: str, message: str, status: int) -> Response:
    return JSONResponse({"result": ok, "returnCode": code, "message": message}, status_code=status)


def _in_customer_city(runtime: Runtime, event: Event) -> Event:
    """Mark the checkpoint ``in_customer_city`` when its area is the order's shipping city."""
    checkpoint = (event.model_extra or {}).get("checkpoint")
    shipment = event.shipment
    if not isinstance(checkpoint, dict) or checkpoint.get("in_customer_city") or shipment is None:
        return event
    with runtime.db.transaction() as session:
        facts = entities.load_facts(session, order_id=shipment.order_id, shipment_id=shipment.id)
    city = (facts.shipping_address or {}).get("city")
    if not kuaidi100.is_same_city(checkpoint.get("area"), city):
        return event
    return event.model_copy(update={"checkpoint": {**checkpoint, "in_customer_city": True}})


def _ingest(runtime: Runtime, events: list[Event]) -> int:
    fresh = 0
    for event in join_known_shipments(runtime, events):
        result = runtime.pipeline.ingest(_in_customer_city(runtime, event), source=SOURCE)
        fresh += not result.duplicate
    return fresh


async def kuaidi100_webhook(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await read_body(request, runtime.settings.http.max_body_bytes)
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        form = {}
    param = form.get("param", "")
    salt = runtime.settings.webhooks.kuaidi100_salt
    if salt is None or not kuaidi100.verify_sign(param, form.get("sign"), salt.get_secret_value()):
        logger.warning(
            "webhook signature refused", extra={"action": "webhook_unauthorized", "source": SOURCE}
        )
        return _answer(False, "401", "sign 校验失败 (invalid or missing sign)", 401)
    try:
        events = kuaidi100.map_push(kuaidi100.parse_param(param))
    except SourceError as exc:
        reason = str(exc)
    except ValidationError as exc:
        reason = f"push maps to an invalid event: {exc.errors()[0]['msg']}"
    else:
        fresh = await run_in_threadpool(_ingest, runtime, events) if events else 0
        log = {"action": "kuaidi100_push", "events": len(events), "new": fresh}
        logger.info("kuaidi100 push", extra=log)
        return _answer(True, "200", "成功", 200)
    await bad_request(runtime, SOURCE, request, body, reason)
    return _answer(False, "400", reason, 400)
