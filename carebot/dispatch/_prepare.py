"""A claimed batch rendered in one go, off the event loop, before its rows are delivered.

A burst of thousands of messages would otherwise hand every render to a worker thread on its
own. A row whose context is complete when it is claimed (an SMS, a mail to the merchant) is
rendered here; a customer's email gets its unsubscribe link at send time and is rendered
then. A row that is then held, merged or finished without a send wasted only its render.
"""

from __future__ import annotations

from collections.abc import Sequence

from carebot.channels.base import ChannelKind
from carebot.dispatch.decide import MERCHANT
from carebot.exceptions import TemplateError
from carebot.rendering import Rendered, TemplateRenderer
from carebot.store.schedule import Claimed

__all__ = ["Prepared", "render", "render_batch"]

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


def render_batch(renderer: TemplateRenderer, rows: Sequence[Claimed]) -> dict[int, Prepared]:
    """The rows of a batch that need nothing from send time, rendered, by id."""
    prepared: dict[int, Prepared] = {}
    for row in rows:
        kind = ChannelKind(row.channel)
        if kind == ChannelKind.EMAIL and row.audience != MERCHANT:
            continue
        prepared[row.id] = render(renderer, row, kind, dict(row.context))
    return prepared
