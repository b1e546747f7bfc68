"""What a channel is handed for a row: its render, and the outbound message.

A claimed batch is rendered in one go, off the event loop, before its rows are delivered.

A burst of thousands of messages would otherwise hand every render to a worker thread on its
own. A row whose context is complete when it is claimed (an SMS, a mail to the merchant) is
rendered here; a customer's email gets its unsubscribe link at send time and is rendered
then. A row that is then held, merged or finished without a send wasted only its render.
Rendering ahead stops after ``AHEAD_SECONDS`` (a merchant's template may take up to its render
budget): the rows left render at send time, each on its own, as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from carebot.channels.base import ChannelKind, OutboundMessage
from carebot.dispatch.decide import MERCHANT
from carebot.exceptions import TemplateError
from carebot.rendering import Rendered, TemplateRenderer
from carebot.store.schedule import Claimed

__all__ = ["AHEAD_SECONDS", "Prepared", "outbound", "render", "render_batch"]

# How long a batch may spend rendering ahead of its sends (well inside the claim lease).
AHEAD_SECONDS = 1.0

# A row's rendered message, or why its template failed.
Prepared = Rendered | TemplateError


def render(
    renderer: TemplateRenderer, row: Claimed, kind: ChannelKind, context: dict[str, object]
) -> Prepared:
    """``row`` rendered with ``context`` for ``kind``; a failing template is returned."""
    try:
        return renderer.render(row.template, kind, row.locale, context)
    except TemplateError as exc:
        return exc


def render_batch(
    renderer: TemplateRenderer, rows: Sequence[Claimed], *, within: float | None = None
) -> dict[int, Prepared]:
    """The rows of a batch that need nothing from send time, rendered, by id, as many as
    ``within`` seconds (default ``AHEAD_SECONDS``) allow."""
    prepared: dict[int, Prepared] = {}
    stop = time.monotonic() + (AHEAD_SECONDS if within is None else within)
    for row in rows:
        if time.monotonic() > stop:
            break
        kind = ChannelKind(row.channel)
        if kind == ChannelKind.EMAIL and row.audience != MERCHANT:
            continue
        prepared[row.id] = render(renderer, row, kind, dict(row.context))
    return prepared


def outbound(
    row: Claimed,
    kind: ChannelKind,
    rendered: Rendered,
    context: dict[str, Any],
    headers: dict[str, str],
    *,
    public_url: str,
    mail_domain: str,
) -> OutboundMessage:
    """What the channel is handed for ``row``, rendered (``public_url`` without a final /;
    ``mail_domain`` names the Message-ID's host)."""
    assert row.recipient is not None
    return OutboundMessage(
        notification_id=row.id,
        kind=kind,
        to=row.recipient,
        body=rendered.text,
        subject=rendered.subject,
        html=rendered.html,
        message_id=f"<carebot.{row.id}@{mail_domain}>",
        status_callback=f"{public_url}/twilio/status?notification={row.id}"
        if kind == ChannelKind.SMS
        else None,
        headers=headers,
        rule_id=row.rule_id,
        context=context,
    )
