"""Alibaba Cloud SMS pushes: receipts at ``/aliyun/sms/report/{token}``, replies at ``/up/{token}``.

Alibaba Cloud's HTTP push does not sign its requests, so the push URLs carry a secret token
(``CAREBOT_ALIYUN__CALLBACK_TOKEN``); a wrong or unset one is 403. Each push is applied, then
answered ``{"code": 0, "msg": "成功"}`` as Alibaba Cloud expects; a body that is not a push is
400 (and kept), which Alibaba Cloud pushes again later.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from carebot import inbound
from carebot.exceptions import SourceError
from carebot.runtime import Runtime
from carebot.sources import aliyun_sms
from carebot.store import schedule
from carebot.web._body import read_body
from carebot.web.state import runtime_of
from carebot.web.webhooks import bad_request

__all__ = ["aliyun_report", "aliyun_up"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _token_ok(runtime: Runtime, request: Request) -> bool:
    configured = runtime.settings.aliyun.callback_token
    expected = configured.get_secret_value() if configured is not None else ""
    given = str(request.path_params.get("token", ""))
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


async def _push(
    request: Request, source: str, parse: Callable[[Any], list[T]]
) -> tuple[Runtime, list[T]] | Response:
    """The runtime and the parsed push; or the answer to a wrong token or a bad body."""
    runtime = runtime_of(request)
    if not _token_ok(runtime, request):
        logger.warning("aliyun push refused", extra={"action": "aliyun_unauthorized"})
        return JSONResponse({"code": 403, "msg": "invalid push token"}, status_code=403)
    body = await read_body(request, runtime.settings.http.max_body_bytes)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return await bad_request(runtime, source, request, body, f"body is not JSON: {exc}")
    try:
        return runtime, parse(payload)
    except SourceError as exc:
        return await bad_request(runtime, source, request, body, str(exc))


def _apply_receipts(runtime: Runtime, receipts: list[aliyun_sms.Receipt]) -> int:
    now = runtime.clock.now()
    settled = 0
    with runtime.db.transaction() as session:
        for receipt in receipts:
            if receipt.notification_id is None:
                continue
            settled += schedule.settle_from_provider(
                session,
                notification_id=receipt.notification_id,
                status=receipt.status,
                provider_id=receipt.provider_id,
                provider_status=receipt.provider_status,
                reason=receipt.reason,
                now=now,
            )
    return settled


async def aliyun_report(request: Request) -> Response:
    """``POST /aliyun/sms/report/{token}``: SmsReport, the delivery receipts."""
    got = await _push(request, "aliyun-report", aliyun_sms.parse_receipts)
    if isinstance(got, Response):
        return got
    runtime, receipts = got
    settled = await run_in_threadpool(_apply_receipts, runtime, receipts)
    logger.info(
        "aliyun receipts",
        extra={"action": "aliyun_report", "receipts": len(receipts), "settled": settled},
    )
    return JSONResponse(aliyun_sms.ACCEPTED)


def _apply_replies(runtime: Runtime, replies: list[aliyun_sms.Reply]) -> None:
    """Every reply takes the one consent path (``carebot.inbound``), once per ``sequence_id``."""
    for reply in replies:
        inbound.receive_reply(
            runtime.pipeline,
            provider="aliyun",
            message_id=reply.sequence_id,
            sender=reply.sender,
            body=reply.body,
            received_at=runtime.clock.now(),
        )


async def aliyun_up(request: Request) -> Response:
    """``POST /aliyun/sms/up/{token}``: SmsUp; 退订 / TD / T opt out, other replies are events."""
    got = await _push(request, "aliyun-up", aliyun_sms.parse_replies)
    if isinstance(got, Response):
        return got
    runtime, replies = got
    await run_in_threadpool(_apply_replies, runtime, replies)
    return JSONResponse(aliyun_sms.ACCEPTED)
