"""The HTTP application: webhooks, health, and the hooks the daemon needs."""

from __future__ import annotations

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
from carebot.web.dashboard import routes as dashboard_routes
from carebot.web.platforms import aftership_webhook, shopify_webhook, woocommerce_webhook
from carebot.web.state import runtime_of
from carebot.web.twilio_callbacks import twilio_inbound, twilio_status
from carebot.web.unsubscribe import unsubscribe_confirm, unsubscribe_page
from carebot.web.webhooks import carebot_webhook

__all__ = ["create_app"]


async def healthz(request: Request) -> Response:
    runtime = runtime_of(request)

    def probe() -> None:
        with runtime.db.transaction() as session:
            session.execute(text("SELECT 1"))

    try:
        await run_in_threadpool(probe)
    except Exception as exc:
        return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})


async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await run_in_threadpool(generate_latest, runtime.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


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
        middleware=[Middleware(MetricsMiddleware, metrics=runtime.metrics)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan or no_lifespan,
    )
    app.state.runtime = runtime
    app.state.webhook_secret = runtime.webhook_secret()
    return app
