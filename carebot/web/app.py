"""The HTTP application: webhooks, health, and the hooks the daemon needs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carebot import __version__
from carebot.metrics import MetricsMiddleware
from carebot.runtime import Runtime
from carebot.web.admin import cancel, case_step, cases, consents, notifications, resend
from carebot.web.aliyun_callbacks import aliyun_report, aliyun_up
from carebot.web.dashboard import routes as dashboard_routes
from carebot.web.dashboard.throttle import LoginThrottle
from carebot.web.kuaidi100 import kuaidi100_webhook
from carebot.web.limits import RequestLimits
from carebot.web.platforms import aftership_webhook, shopify_webhook, woocommerce_webhook
from carebot.web.state import runtime_of
from carebot.web.twilio_callbacks import twilio_inbound, twilio_status
from carebot.web.unsubscribe import unsubscribe_confirm, unsubscribe_page
from carebot.web.webhooks import carebot_webhook

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    runtime = runtime_of(request)

    def probe() -> None:
        with runtime.db.transaction() as session:
            session.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(probe)
    except Exception:
        # The error text can name the database host and user: it goes to the log only.
        logger.exception("health check failed", extra={"action": "healthz_failed"})
        return JSONResponse({"status": "error", "error": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})


async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await run_in_threadpool(generate_latest, runtime.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(
    runtime: Runtime,
    *,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[Any]] | None = None,
) -> Starlette:
    """The ASGI app for ``runtime``; ``lifespan`` lets the daemon start its scheduler with it."""

    @asynccontextmanager
    async def no_lifespan(app: Starlette) -> AsyncIterator[None]:
        yield

    app = Starlette(
        routes=[
            Route("/webhooks/carebot", carebot_webhook, methods=["POST"]),
            Route("/webhooks/shopify", shopify_webhook, methods=["POST"]),
            Route("/webhooks/woocommerce", woocommerce_webhook, methods=["POST"]),
            Route("/webhooks/aftership", aftership_webhook, methods=["POST"]),
            Route("/twilio/status", twilio_status, methods=["POST"]),
            Route("/twilio/inbound", twilio_inbound, methods=["POST"]),
            # China: 快递100 tracking pushes, Alibaba Cloud SMS receipts and replies.
            Route("/webhooks/kuaidi100", kuaidi100_webhook, methods=["POST"]),
            Route("/aliyun/sms/report/{token}", aliyun_report, methods=["POST"]),
            Route("/aliyun/sms/up/{token}", aliyun_up, methods=["POST"]),
            Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe/{token}", unsubscribe_confirm, methods=["POST"]),
            Route("/api/consents", consents, methods=["POST"]),
            Route("/api/notifications", notifications, methods=["GET"]),
            Route("/api/notifications/{notification_id}/cancel", cancel, methods=["POST"]),
            Route("/api/notifications/{notification_id}/resend", resend, methods=["POST"]),
            Route("/api/cases", cases, methods=["GET"]),
            Route("/api/cases/{case_id}/{step}", case_step, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *dashboard_routes(),
        ],
        middleware=[
            Middleware(MetricsMiddleware, metrics=runtime.metrics),
            Middleware(
                RequestLimits,
                max_body_bytes=runtime.settings.http.max_body_bytes,
                read_timeout=runtime.settings.http.read_timeout_seconds,
            ),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan or no_lifespan,
    )
    app.state.runtime = runtime
    app.state.webhook_secret = runtime.webhook_secret()
    app.state.login_throttle = LoginThrottle()
    return app
