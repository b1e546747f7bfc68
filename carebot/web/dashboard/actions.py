"""The dashboard's forms: log in and out, cancel, resend, end a disruption.

Every action needs a session (else 401) and that session's CSRF token (else 403); each is
recorded with who (``dashboard``) and when, and answers with a redirect back to a page that
shows the result (``?done=…``).
"""

from __future__ import annotations

import hmac
import logging
import math
from datetime import timedelta
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from carebot.disruptions.active import active_disruptions
from carebot.events import Event, EventType
from carebot.store import admin
from carebot.store.history import declared_disruptions
from carebot.web._payload import parse_id
from carebot.web.dashboard.session import COOKIE
from carebot.web.dashboard.throttle import LoginThrottle
from carebot.web.dashboard.views import (
    PREFIX,
    View,
    bounded_form,
    end_all_sessions,
    guarded,
    language_of,
    render,
    session_generation,
    signer_of,
)
from carebot.web.state import runtime_of

__all__ = ["cancel", "end_disruption", "login", "login_page", "logout", "resend"]

logger = logging.getLogger(__name__)

WHO = "dashboard"


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


def _back(form: FormData, done: str) -> Response:
    target = _safe_next(str(form.get("next") or ""))
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}{urlencode({'done': done})}", status_code=303)


async def login_page(request: Request) -> Response:
    """The login form (404 when no admin token is configured)."""
    if signer_of(request) is None:
        return PlainTextResponse("not found", status_code=404)
    context = {"next": _safe_next(request.query_params.get("next")), "wrong": False}
    return render(request, "login.html", context, language=language_of(request))


async def login(request: Request) -> Response:
    """Check the posted admin token; set the session cookie and go where the user was going."""
    signer = signer_of(request)
    if signer is None:
        return PlainTextResponse("not found", status_code=404)
    runtime = runtime_of(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.wait(client, runtime.clock.now())
    if wait > timedelta(0):
        # Refused before the form is even read: guessing costs the guesser, not the server.
        seconds = math.ceil(wait.total_seconds())
        logger.warning("dashboard login throttled", extra={"action": "dashboard_login_throttled"})
        return PlainTextResponse(
            f"too many wrong tokens; try again in {seconds} s",
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )
    form = await bounded_form(request)
    given = str(form.get("token") or "").encode()
    expected = (runtime.settings.admin_secret or "").encode()
    target = _safe_next(str(form.get("next") or ""))
    if not hmac.compare_digest(given, expected):
        delay = throttle.failed(client, runtime.clock.now())
        logger.warning(
            "dashboard login refused",
            extra={"action": "dashboard_login_refused", "wait_seconds": delay.total_seconds()},
        )
        context = {"next": target, "wrong": True}
        return render(
            request, "login.html", context, language=language_of(request), status_code=401
        )
    throttle.succeeded(client)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        signer.issue(runtime.clock.now(), await session_generation(runtime)),
        max_age=int(signer.lifetime.total_seconds()),
        path=PREFIX,
        secure=runtime.settings.public_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    logger.info("dashboard login", extra={"action": "dashboard_login"})
    return response


async def _checked_form(view: View) -> FormData | Response:
    form = await bounded_form(view.request)
    signer = signer_of(view.request)
    token = form.get("csrf")
    if signer is None or not signer.csrf_ok(
        view.session_id, token if isinstance(token, str) else None
    ):
        logger.warning("dashboard action without CSRF token", extra={"action": "dashboard_csrf"})
        return PlainTextResponse("CSRF token missing or wrong", status_code=403)
    return form


@guarded
async def logout(view: View) -> Response:
    """End the session on the server (a new session generation) and forget the cookie."""
    form = await _checked_form(view)
    if isinstance(form, Response):
        return form
    await end_all_sessions(view.runtime)
    logger.info("dashboard logout", extra={"action": "dashboard_logout"})
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


async def _change(view: View, action: str) -> Response:
    form = await _checked_form(view)
    if isinstance(form, Response):
        return form
    notification_id = parse_id(view.request.path_params["notification_id"])
    if notification_id is None:
        return _back(form, "missing")
    change = admin.cancel_notification if action == "cancel" else admin.resend_notification
    runtime = view.runtime

    def apply() -> admin.Outcome:
        with runtime.db.transaction() as session:
            return change(
                session, notification_id=notification_id, who=WHO, now=runtime.clock.now()
            )

    outcome = await run_in_threadpool(apply)
    logger.info(
        "notification changed on the dashboard",
        extra={
            "action": f"dashboard_{action}",
            "notification_id": notification_id,
            "outcome": str(outcome),
        },
    )
    if outcome is admin.Outcome.DONE:
        return _back(form, action)
    return _back(form, "conflict" if outcome is admin.Outcome.CONFLICT else "missing")


@guarded
async def cancel(view: View) -> Response:
    """Cancel a pending message."""
    return await _change(view, "cancel")


@guarded
async def resend(view: View) -> Response:
    """Put a failed, expired or undelivered message back on the schedule."""
    return await _change(view, "resend")


@guarded
async def end_disruption(view: View) -> Response:
    """End a disruption today: a ``disruption.declared`` event from the dashboard says so.

    Its last day becomes yesterday; one that starts today or later is withdrawn instead (an
    end before the start is invalid).
    """
    form = await _checked_form(view)
    if isinstance(form, Response):
        return form
    runtime = view.runtime
    ident = view.request.path_params["disruption_id"]
    now = runtime.clock.now()
    today = now.astimezone(view.zone).date()

    def apply() -> bool:
        with runtime.db.transaction() as session:
            declared = declared_disruptions(session)
        current = {d.id: d for d in active_disruptions(runtime.rules(), declared, today=today)}
        found = current.get(ident)
        if found is None:
            return False
        if found.start < today:
            # Over now: its last day was yesterday, so the watchers warn no one from today
            # and the disruptions page shows it ended at once.
            ended = today - timedelta(days=1)
            fields = found.model_dump(mode="json") | {"end": ended.isoformat()}
        else:
            fields = {"id": found.id, "cancelled": True}
        event = Event(
            id=f"{WHO}:{ident}:ended:{int(now.timestamp())}",
            type=EventType.DISRUPTION_DECLARED,
            occurred_at=now,
            disruption=fields,
        )
        runtime.pipeline.ingest(event, source=WHO)
        return True

    done = await run_in_threadpool(apply)
    logger.info(
        "disruption ended on the dashboard",
        extra={"action": "dashboard_end_disruption", "disruption_id": ident, "done": done},
    )
    return _back(form, "end" if done else "missing")
