"""The dashboard's request plumbing: who is logged in, which language, rendering a page."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from carebot.masking import mask_recipient, mask_text
from carebot.runtime import Runtime
from carebot.store import meta
from carebot.web.dashboard.i18n import Names, Translator, pick_language
from carebot.web.dashboard.session import COOKIE, GENERATION_KEY, SessionSigner
from carebot.web.state import runtime_of

__all__ = [
    "LANG_COOKIE",
    "PREFIX",
    "View",
    "bounded_form",
    "end_all_sessions",
    "guarded",
    "language_of",
    "render",
    "session_generation",
    "signer_of",
]

LANG_COOKIE = "carebot_lang"
PREFIX = "/dashboard"

_env = Environment(
    loader=PackageLoader("carebot.web", "templates/dashboard"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["mask"] = lambda value: mask_recipient(value) if value else ""
_env.filters["mask_text"] = lambda value: mask_text(value) if value else ""


def _read_generation(runtime: Runtime) -> str:
    with runtime.db.transaction() as session:
        return meta.get(session, GENERATION_KEY) or "0"


async def session_generation(runtime: Runtime) -> str:
    """The current session generation: only cookies issued under it are valid."""
    return await run_in_threadpool(_read_generation, runtime)


async def end_all_sessions(runtime: Runtime) -> None:
    """Start a new session generation: every cookie issued so far stops working."""

    def bump() -> None:
        with runtime.db.transaction() as session:
            meta.put(session, GENERATION_KEY, secrets.token_urlsafe(8))

    await run_in_threadpool(bump)


def signer_of(request: Request) -> SessionSigner | None:
    """The signer for the configured admin token; None when no token is set."""
    token = runtime_of(request).settings.admin_secret
    return None if token is None else SessionSigner(token)


@dataclass(frozen=True)
class View:
    """What a logged-in request carries into a page."""

    request: Request
    runtime: Runtime
    session_id: str
    csrf: str
    language: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.runtime.settings.default_timezone)

    def local(self, instant: datetime | None) -> str:
        """An instant as the merchant reads it: local date and time in the shop's zone."""
        if instant is None:
            return "—"
        return instant.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")


def language_of(request: Request) -> str:
    return pick_language(
        request.query_params,
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language", ""),
        runtime_of(request).settings.default_locale,
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    language: str,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` with the common context; remember an explicit ``?lang=``."""
    translate = Translator(language)
    page = _env.get_template(template).render(
        t=translate,
        channel_label=lambda channel: translate(f"channel.{channel}"),
        names=Names(
            runtime_of(request).rules(),
            language,
            zone=ZoneInfo(runtime_of(request).settings.default_timezone),
        ),
        lang=language,
        path=request.url.path,
        done=request.query_params.get("done"),
        **context,
    )
    response = HTMLResponse(page, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    if "lang" in request.query_params:
        response.set_cookie(LANG_COOKIE, language, httponly=True, samesite="strict")
    return response


async def bounded_form(request: Request) -> FormData:
    """The posted form, parsed within the configured limits (no files; 400 past them).

    The body as a whole is already bounded by ``carebot.web.limits``; these bound the parts.
    """
    http = runtime_of(request).settings.http
    return await request.form(
        max_files=0, max_fields=http.max_form_fields, max_part_size=http.max_form_part_bytes
    )


Handler = Callable[[View], Awaitable[Response]]


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """404 without an admin token; without a valid session: GET → login page, POST → 401."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        signer = signer_of(request)
        if signer is None:
            return PlainTextResponse("not found", status_code=404)
        runtime = runtime_of(request)
        generation = await session_generation(runtime)
        session_id = signer.session_id(request.cookies.get(COOKIE), runtime.clock.now(), generation)
        if session_id is None:
            if request.method in ("GET", "HEAD"):
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse(
                    f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303
                )
            return PlainTextResponse("log in first", status_code=401)
        view = View(
            request, runtime, session_id, signer.csrf_token(session_id), language_of(request)
        )
        return await handler(view)

    return endpoint
