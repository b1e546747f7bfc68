"""Merging a capped row into a pending message of the same rule to the same address."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from carebot.channels.base import ChannelKind
from carebot.clock import Clock
from carebot.dispatch.caps import merge_entry
from carebot.exceptions import TemplateError
from carebot.rendering import Rendered, TemplateRenderer
from carebot.store import schedule
from carebot.store.schedule import Claimed

__all__ = ["Merging"]

logger = logging.getLogger("carebot.dispatch.dispatcher")


class Merging:
    """Folds a row the frequency cap turned away into a pending message, when its template
    shows the merged list."""

    def __init__(
        self, db: Callable[..., Awaitable[Any]], *, renderer: TemplateRenderer, clock: Clock
    ) -> None:
        self._db = db
        self.renderer = renderer
        self.clock = clock

    async def merge(self, row: Claimed, *, due_by: datetime) -> bool:
        """Fold ``row`` into a pending message of the same rule to the same address."""
        target = await self._db(schedule.merge_target, row=row, due_by=due_by)
        if target is None:
            return False
        merged = list(target.context.get("merged") or [merge_entry(target.context)])
        merged.append(merge_entry(row.context))
        context = {**target.context, "merged": merged}
        # Merge only where the template shows the merged list; otherwise the absorbed
        # notice would vanish from the text, so it waits for its own slot instead.
        if not await asyncio.to_thread(self._shows_merged, target, context):
            return False
        absorbed = await self._db(
            schedule.absorb,
            survivor_id=target.id,
            survivor_version=target.updated_at,
            absorbed_id=row.id,
            context=context,
            not_after=max(target.not_after, row.not_after),
            now=self.clock.now(),
        )
        if absorbed:
            logger.info(
                "notification merged",
                extra={
                    "action": "notification_merged",
                    "notification_id": row.id,
                    "into": target.id,
                    "rule": row.rule_id,
                    "channel": row.channel,
                },
            )
        return bool(absorbed)

    def _shows_merged(self, row: Claimed, context: dict[str, Any]) -> bool:
        kind = ChannelKind(row.channel)

        def render(ctx: Mapping[str, Any]) -> Rendered:
            return self.renderer.render(row.template, kind, row.locale, ctx)

        try:
            return render(context) != render({**context, "merged": []})
        except TemplateError:
            return False
