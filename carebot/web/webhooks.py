"""Webhook routes: verify, parse, store durably, and only then answer 2xx."""

from __future__ import annotations

import logging
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from carebot.events import Event, parse_event
from carebot.runtime import Runtime
from carebot.store import entities
from carebot.web._body import read_body
from carebot.web._payload import PayloadError, mapped, parse_json
from carebot.web.state import runtime_of

__all__ = ["carebot_webhook"]

logger = logging.getLogger(__name__)

# Header values worth keeping with a rejected payload (never a signature or a secret).
_KEPT_HEADERS = ("content-type", "user-agent", "webhook-id", "webhook-timestamp")


def _rejected(runtime: Runtime, source: str, request: Request, body: bytes, reason: str) -> None:
    headers = {k: v for k, v in request.headers.items() if k.lower() in _KEPT_HEADERS}
    with runtime.db.transaction() as session:
        entities.reject_payload(
            session,
            source=source,
            reason=reason,
            headers=headers,
            body=body,
            received_at=runtime.clock.now(),
        )


async def bad_request(
    runtime: Runtime, source: str, request: Request, body: bytes, reason: str
) -> Response:
    """Answer 400 with the reason, after keeping the payload for inspection."""
    await run_in_threadpool(_rejected, runtime, source, request, body, reason)
    logger.warning(
        "webhook rejected", extra={"action": "webhook_rejected", "source": source, "reason": reason}
    )
    return JSONResponse({"error": reason}, status_code=400)


async def store_event(
    runtime: Runtime, event: Event, *, source: str, delivery_id: str | None
) -> Response:
    """Ingest ``event``; the response is sent only after the transaction committed."""
    result = await runtime.db.call(
        runtime.pipeline.ingest, event, source=source, delivery_id=delivery_id
    )
    return JSONResponse(
        {
            "status": "duplicate" if result.duplicate else "accepted",
            "event_id": result.event_id,
            "scheduled": result.scheduled,
            "cancelled": result.cancelled,
        },
        status_code=200 if result.duplicate else 202,
    )


async def carebot_webhook(request: Request) -> Response:
    """``POST /webhooks/carebot``: canonical events signed per Standard Webhooks."""
    runtime = runtime_of(request)
    body = await read_body(request, runtime.settings.http.max_body_bytes)
    secret: str = request.app.state.webhook_secret
    try:
        Webhook(secret).verify(body, dict(request.headers), json_parse=False)
    except Exception:  # every verification failure is the same 401, whatever raised it
        return JSONResponse({"error": "invalid or missing webhook signature"}, status_code=401)
    try:
        data: Any = parse_json(body, max_depth=runtime.settings.http.max_json_depth)
        event = mapped(parse_event, data)
    except PayloadError as exc:
        return await bad_request(runtime, "carebot", request, body, str(exc))
    return await store_event(
        runtime, event, source="carebot", delivery_id=request.headers.get("webhook-id")
    )
