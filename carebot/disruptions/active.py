"""Which disruptions hold, and when each one starts and ends in a customer's time zone.

Three sources make the calendar: ``disruptions:`` in the rules folder, the built-in calendars
named in ``calendars:``, and ``disruption.declared`` events. A later declaration with the same
id replaces an earlier entry (a merchant moves the ``end`` to end it early); one with
``cancelled: true`` withdraws it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from carebot.disruptions.calendars import CalendarOptions, calendar_disruptions
from carebot.rulebook.schema import Disruption, Rulebook

__all__ = ["DisruptionWindow", "active_disruptions", "window_of"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DisruptionWindow:
    """A disruption's dates as instants in one zone.

    ``start``: the first day at 00:00; ``end``: the day after the last at 00:00;
    ``normal_again``: ``end`` plus the extra transit days (parcels sent during it still late).
    """

    disruption: Disruption
    start: datetime
    end: datetime
    normal_again: datetime

    def notice_at(self) -> datetime:
        """When customers are told: ``notice_days`` before the start."""
        return self.start - timedelta(days=self.disruption.notice_days)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def window_of(disruption: Disruption, zone: ZoneInfo) -> DisruptionWindow:
    """The disruption's dates read as local days in ``zone``."""
    start = _midnight(disruption.start, zone)
    end = _midnight(disruption.end + timedelta(days=1), zone)
    return DisruptionWindow(
        disruption=disruption,
        start=start,
        end=end,
        normal_again=end + timedelta(days=disruption.extra_transit_days),
    )


def _declared(payloads: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Disruption], set[str]]:
    changed: dict[str, Disruption] = {}
    withdrawn: set[str] = set()
    for payload in payloads:
        fields = dict(payload)
        cancelled = bool(fields.pop("cancelled", False))
        ident = fields.get("id")
        if cancelled and isinstance(ident, str):
            withdrawn.add(ident)
            changed.pop(ident, None)
            continue
        try:
            disruption = Disruption.model_validate(fields)
        except ValidationError as exc:
            logger.warning(
                "declared disruption ignored: %s",
                exc.errors()[0]["msg"],
                extra={"action": "disruption_ignored", "disruption_id": ident},
            )
            continue
        withdrawn.discard(disruption.id)
        changed[disruption.id] = disruption
    return changed, withdrawn


def active_disruptions(
    rulebook: Rulebook,
    declared: Iterable[Mapping[str, Any]],
    *,
    today: date,
    calendar: CalendarOptions | None = None,
) -> list[Disruption]:
    """Every disruption not yet over on ``today``: rules, built-in calendars, declarations.

    ``declared`` are the ``disruption`` fields of ``disruption.declared`` events, oldest first.
    """
    by_id: dict[str, Disruption] = {}
    years = range(today.year, today.year + 2)
    for disruption in (
        *rulebook.disruptions,
        *calendar_disruptions(rulebook.calendars, years, calendar),
    ):
        by_id[disruption.id] = disruption
    changed, withdrawn = _declared(declared)
    by_id.update(changed)
    return sorted(
        (d for d in by_id.values() if d.id not in withdrawn and d.end >= today),
        key=lambda d: (d.start, d.id),
    )
