"""Email unsubscribe: ``GET /unsubscribe/{token}`` asks, ``POST`` (RFC 8058 one-click) records.

No login: the random token is the authority (see ``carebot.unsubscribe``). A mail client's
one-click POST carries ``List-Unsubscribe=One-Click``; the page's own button posts the same.
A token that does not verify is 404 and changes nothing.
"""

from __future__ import annotations

import logging
from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from carebot.masking import mask_email
from carebot.runtime import Runtime
from carebot.store import consent
from carebot.unsubscribe import address_of
from carebot.web._body import read_body
from carebot.web.state import runtime_of

__all__ = ["unsubscribe_confirm", "unsubscribe_page"]

logger = logging.getLogger(__name__)

SOURCE = "unsubscribe-link"

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
{body}
</body></html>
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


def _address(runtime: Runtime, token: str) -> str | None:
    with runtime.db.transaction() as session:
        return address_of(session, token)


def _not_found() -> HTMLResponse:
    return _page(
        "链接无效 / Invalid link",
        "<p>此退订链接无效。</p><p>This unsubscribe link is not valid.</p>",
        status=404,
    )


async def unsubscribe_page(request: Request) -> Response:
    """``GET /unsubscribe/{token}``: a confirmation page; a GET never unsubscribes.

    Mail scanners follow links; only the POST below records anything.
    """
    runtime = runtime_of(request)
    token = request.path_params["token"]
    address = await run_in_threadpool(_address, runtime, token)
    if address is None:
        return _not_found()
    shop = escape(runtime.settings.shop_name)
    who = escape(mask_email(address))
    action = escape(f"/unsubscribe/{token}")
    return _page(
        "退订邮件 / Unsubscribe",
        f"<h1>退订邮件 / Unsubscribe</h1>"
        f"<p>{who} 将不再收到{shop}的邮件通知。</p>"
        f"<p>{who} will no longer receive email from {shop}.</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">确认退订 / Unsubscribe</button></form>',
    )


def _opt_out(runtime: Runtime, address: str) -> None:
    with runtime.db.transaction() as session:
        consent.set_consent(
            session,
            channel="email",
            address=address,
            opted_out=True,
            source=SOURCE,
            now=runtime.clock.now(),
        )


async def unsubscribe_confirm(request: Request) -> Response:
    """``POST /unsubscribe/{token}``: record the email opt-out and answer 200."""
    runtime = runtime_of(request)
    # Read (and bound) the body, whatever it says: the signed token is what authorises.
    await read_body(request, runtime.settings.http.max_body_bytes)
    address = await run_in_threadpool(_address, runtime, request.path_params["token"])
    if address is None:
        return _not_found()
    await run_in_threadpool(_opt_out, runtime, address)
    logger.info(
        "email unsubscribed",
        extra={"action": "email_unsubscribed", "to": mask_email(address), "source": SOURCE},
    )
    shop = escape(runtime.settings.shop_name)
    return _page(
        "已退订 / Unsubscribed",
        f"<p>已退订，您将不再收到{shop}的邮件通知。</p>"
        f"<p>You are unsubscribed and will no longer receive email from {shop}.</p>",
    )
