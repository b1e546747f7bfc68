"""Twilio callbacks: delivery receipts and inbound replies, ``X-Twilio-Signature`` checked.

The signature covers ``CAREBOT_PUBLIC_URL`` + path + query string and the form parameters;
a missing or wrong one is 403. Answers are TwiML.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from carebot import inbound
from carebot.runtime import Runtime
from carebot.sources import twilio
from carebot.store import consent, schedule
from carebot.web._body import read_body
from carebot.web._payload import PayloadError, mapped, parse_id
from carebot.web.state import runtime_of

__all__ = ["help_text", "twilio_inbound", "twilio_status"]

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _twiml(message: str | None = None) -> Response:
    if message is None:
        return Response(EMPTY_TWIML, media_type="application/xml")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(message)}</Message></Response>"
    )
    return Response(body, media_type="application/xml")


def help_text(runtime: Runtime) -> str:
    """What a HELP / INFO reply answers, in the shop's default language."""
    shop = runtime.settings.shop_name
    if runtime.settings.default_locale.lower().startswith("zh"):
        return f"{shop}：订单与物流通知。回复 退订 或 STOP 停止短信，回复 START 恢复。"
    return f"{shop}: order and delivery updates. Reply STOP to opt out, START to opt back in."


async def _verified_params(request: Request) -> dict[str, str] | None:
    """The form parameters when the Twilio signature is right, else None."""
    runtime = runtime_of(request)
    body = await read_body(request, runtime.settings.http.max_body_bytes)
    try:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None
    token = runtime.settings.twilio.auth_token
    url = runtime.settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get(twilio.SIGNATURE_HEADER)
    if token is None or not twilio.verify_signature(
        token.get_secret_value(), url, params, signature
    ):
        logger.warning("twilio signature refused", extra={"action": "twilio_unauthorized"})
        return None
    return params


def _forbidden() -> Response:
    return JSONResponse({"error": "invalid or missing X-Twilio-Signature"}, status_code=403)


def _apply_status(runtime: Runtime, notification_id: int, update: twilio.StatusUpdate) -> bool:
    now = runtime.clock.now()
    settled = False
    with runtime.db.transaction() as session:
        if update.status is not None:
            settled = schedule.settle_from_provider(
                session,
                notification_id=notification_id,
                status=update.status,
                provider_id=update.provider_id,
                provider_status=update.provider_status,
                reason=update.reason,
                now=now,
            )
        if update.opted_out:
            consent.set_consent(
                session,
                channel="sms",
                address=update.opted_out,
                opted_out=True,
                source=f"twilio:error:{twilio.OPTED_OUT_ERROR}",
                now=now,
            )
    return settled


async def twilio_status(request: Request) -> Response:
    """``POST /twilio/status?notification=ID``: a message status receipt."""
    params = await _verified_params(request)
    if params is None:
        return _forbidden()
    runtime = runtime_of(request)
    raw_id = request.query_params.get("notification", "")
    if not raw_id:
        return JSONResponse({"error": "notification query parameter missing"}, status_code=400)
    notification_id = parse_id(raw_id)
    if notification_id is None:
        return JSONResponse({"error": "no such notification"}, status_code=404)
    try:
        update = mapped(twilio.status_update, params)
    except PayloadError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    settled = await run_in_threadpool(_apply_status, runtime, notification_id, update)
    logger.info(
        "twilio status",
        extra={
            "action": "twilio_status",
            "notification_id": notification_id,
            "provider_status": update.provider_status,
            "settled": settled,
        },
    )
    return _twiml()


async def twilio_inbound(request: Request) -> Response:
    """``POST /twilio/inbound``: every reply takes the consent path (``carebot.inbound``).

    The reply is stored once per ``MessageSid``: a replayed request changes nothing. HELP is
    answered with the help text.
    """
    params = await _verified_params(request)
    if params is None:
        return _forbidden()
    runtime = runtime_of(request)
    sender = (params.get("From") or "").strip()
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    if not sender or not sid:
        return JSONResponse({"error": "inbound message without From or MessageSid"}, 400)
    body = params.get("Body") or ""
    try:
        result = await run_in_threadpool(
            mapped,
            inbound.receive_reply,
            runtime.pipeline,
            provider="twilio",
            message_id=sid,
            sender=sender,
            body=body,
            received_at=runtime.clock.now(),
        )
    except PayloadError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if not result.duplicate and inbound.classify_reply(body) == inbound.Reply.HELP:
        return _twiml(help_text(runtime))
    return _twiml()
