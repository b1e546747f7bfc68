"""The admin API under ``/api``, behind ``Authorization: Bearer <CAREBOT_ADMIN_TOKEN>``.

Without a configured admin token the API does not exist (404); a missing or wrong token is
401. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from carebot.contacts import normalize_phone, valid_email
from carebot.masking import mask_recipient
from carebot.store import admin, consent
from carebot.store import cases as case_store
from carebot.web._body import read_body
from carebot.web._cases import VERBS, apply_step
from carebot.web._payload import PayloadError, parse_id, parse_json
from carebot.web.state import runtime_of

__all__ = ["cancel", "case_step", "cases", "consents", "notifications", "resend"]

logger = logging.getLogger(__name__)

PAST = {"cancel": "cancelled", "resend": "resent"}


def _refusal(request: Request) -> Response | None:
    """None when the request carries the admin token; else the response to send instead."""
    configured = runtime_of(request).settings.admin_secret
    if configured is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = configured.encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        return JSONResponse(
            {"error": "admin token missing or wrong"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


def _bad(reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=400)


async def consents(request: Request) -> Response:
    """``POST /api/consents``: ``{"channel": "sms"|"email", "address": …, "opted_out": bool}``."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    runtime = runtime_of(request)
    body = await read_body(request, runtime.settings.http.max_body_bytes)
    try:
        payload: Any = parse_json(body, max_depth=runtime.settings.http.max_json_depth)
    except PayloadError as exc:
        return _bad(str(exc))
    if not isinstance(payload, dict):
        return _bad("body must be a JSON object")
    channel = payload.get("channel")
    raw = payload.get("address")
    opted_out = payload.get("opted_out")
    if channel not in ("sms", "email"):
        return _bad('channel must be "sms" or "email"')
    if not isinstance(raw, str) or not raw.strip():
        return _bad("address must be a non-empty string")
    if not isinstance(opted_out, bool):
        return _bad("opted_out must be true or false")
    address = normalize_phone(raw.strip()) if channel == "sms" else raw.strip().lower()
    if address is None:
        return _bad("address is not a valid phone number in international (+…) form")
    if channel == "email" and not valid_email(address):
        return _bad("address is not a valid email address")

    def record() -> None:
        with runtime.db.transaction() as session:
            consent.set_consent(
                session,
                channel=channel,
                address=address,
                opted_out=opted_out,
                source="admin-api",
                now=runtime.clock.now(),
            )

    await run_in_threadpool(record)
    logger.info(
        "consent set by admin",
        extra={
            "action": "admin_consent",
            "channel": channel,
            "to": mask_recipient(address),
            "opted_out": opted_out,
        },
    )
    return JSONResponse({"channel": channel, "address": address, "opted_out": opted_out})


async def notifications(request: Request) -> Response:
    """``GET /api/notifications?order_id=…&customer_id=…``: what was and will be sent."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    order_id = request.query_params.get("order_id")
    customer_id = request.query_params.get("customer_id")
    if not order_id and not customer_id:
        return _bad("give order_id or customer_id")
    runtime = runtime_of(request)

    def load() -> list[dict[str, Any]]:
        with runtime.db.transaction() as session:
            return admin.list_notifications(session, order_id=order_id, customer_id=customer_id)

    return JSONResponse({"notifications": await run_in_threadpool(load)})


async def _act(request: Request, action: str) -> Response:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    runtime = runtime_of(request)
    notification_id = parse_id(request.path_params["notification_id"])
    if notification_id is None:
        return JSONResponse({"error": "no such notification"}, status_code=404)
    change = admin.cancel_notification if action == "cancel" else admin.resend_notification

    def apply() -> admin.Outcome:
        with runtime.db.transaction() as session:
            return change(
                session, notification_id=notification_id, who="admin-api", now=runtime.clock.now()
            )

    outcome = await run_in_threadpool(apply)
    if outcome is admin.Outcome.NOT_FOUND:
        return JSONResponse({"error": "no such notification"}, status_code=404)
    if outcome is admin.Outcome.CONFLICT:
        allowed = "pending" if action == "cancel" else "failed, expired or undelivered"
        return JSONResponse(
            {"error": f"only {allowed} notifications can be {PAST[action]}"}, status_code=409
        )
    logger.info(
        "notification changed by admin",
        extra={"action": f"admin_{action}", "notification_id": notification_id},
    )
    return JSONResponse({"id": notification_id, "action": action, "result": "done"})


async def cancel(request: Request) -> Response:
    """``POST /api/notifications/{id}/cancel``: cancel a pending notification."""
    return await _act(request, "cancel")


async def resend(request: Request) -> Response:
    """``POST /api/notifications/{id}/resend``: send a failed one again, now."""
    return await _act(request, "resend")


async def cases(request: Request) -> Response:
    """``GET /api/cases?status=…&order_id=…``: service-recovery cases, newest first (100)."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    runtime = runtime_of(request)
    status = request.query_params.get("status")
    order_id = request.query_params.get("order_id")

    def load() -> list[dict[str, Any]]:
        with runtime.db.transaction() as session:
            found = case_store.list_cases(session, status=status, order_id=order_id)
            return [case_store.case_json(c) for c in found]

    return JSONResponse({"cases": await run_in_threadpool(load)})


async def case_step(request: Request) -> Response:
    """``POST /api/cases/{id}/contacted|resolved|dismissed|reopen``, body ``{"note": …}``."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    runtime = runtime_of(request)
    verb = request.path_params["step"]
    if verb not in VERBS:
        return JSONResponse({"error": f"unknown step {verb!r}"}, status_code=404)
    case_id = parse_id(request.path_params["case_id"])
    if case_id is None:
        return JSONResponse({"error": "no such case"}, status_code=404)
    body = await read_body(request, runtime.settings.http.max_body_bytes)
    note = ""
    if body.strip():
        try:
            payload: Any = parse_json(body, max_depth=runtime.settings.http.max_json_depth)
        except PayloadError as exc:
            return _bad(str(exc))
        if not isinstance(payload, dict) or not isinstance(payload.get("note", ""), str):
            return _bad('body must be a JSON object like {"note": "…"}')
        note = payload.get("note", "")

    def apply() -> tuple[Any, dict[str, Any] | None]:
        return apply_step(runtime, case_id=case_id, verb=verb, who="admin-api", note=note)

    outcome, found = await run_in_threadpool(apply)
    if found is None:
        if outcome == "not_found":
            return JSONResponse({"error": "no such case"}, status_code=404)
        return JSONResponse(
            {"error": f"the case's status does not allow {verb} (or the order has an active case)"},
            status_code=409,
        )
    logger.info("case stepped by admin", extra={"action": f"admin_case_{verb}", "case_id": case_id})
    return JSONResponse(found)
