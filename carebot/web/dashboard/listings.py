"""The rows behind the overview's and the disruptions page's numbers.

Each number links to ``/dashboard/orders?<kind>=<value>``; the listing reads the same filter
the count did (``carebot.store.answers``), so a number and its rows cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from carebot.disruptions.active import active_disruptions
from carebot.disruptions.reach import catches, expected_arrival
from carebot.rulebook.schema import Disruption
from carebot.store import answers
from carebot.store import dashboard as queries
from carebot.store.history import declared_disruptions
from carebot.web.dashboard.views import View

__all__ = [
    "IN_TRANSIT_WINDOW",
    "LISTINGS",
    "Answers",
    "answers_now",
    "caught",
    "current_disruptions",
    "listing_orders",
]

# Parcels shipped this long ago or since count as on their way (as the watchers read it).
IN_TRANSIT_WINDOW = timedelta(days=30)
# A disruption ended this recently is still listed, marked ended.
RECENTLY_ENDED = timedelta(days=7)
# "This week" on the overview: the last 7 local days, today included.
WEEK = 7
NEXT_DAY = timedelta(hours=24)
# The query parameters a listing is asked for by.
LISTINGS = ("disruption", "trouble", "complaints", "unhandled", "failed")


def current_disruptions(view: View, session: Session, *, now: datetime) -> list[Disruption]:
    """Disruptions not over, and those ended in the last week (the page shows them ended)."""
    today = now.astimezone(view.zone).date()
    declared = declared_disruptions(session)
    return active_disruptions(view.runtime.rules(), declared, today=today - RECENTLY_ENDED)


def caught(
    disruption: Disruption, parcels: list[queries.ParcelGroup], *, zone: ZoneInfo, now: datetime
) -> list[queries.ParcelGroup]:
    """The parcels (groups) ``disruption`` catches: going there, arriving after it starts."""
    return Reach([disruption], zone=zone, now=now).caught(parcels)


class Reach:
    """Which parcels any of ``disruptions`` catches (``catches`` for each), decided once per
    address and arrival: thousands of parcels go to a few hundred addresses and days."""

    def __init__(self, disruptions: list[Disruption], *, zone: ZoneInfo, now: datetime) -> None:
        self.disruptions = disruptions
        self.zone = zone
        self.now = now
        self._known: dict[tuple[str, date | None, datetime | None], bool] = {}

    def catches(self, parcel: queries.ParcelGroup) -> bool:
        # The ship time matters only without an expected day (see ``expected_arrival``).
        shipped = parcel.shipped_at if parcel.expected_delivery is None else None
        key = (repr(parcel.address), parcel.expected_delivery, shipped)
        found = self._known.get(key)
        if found is None:
            arrival = expected_arrival(
                parcel.expected_delivery, parcel.shipped_at, zone=self.zone, now=self.now
            )
            found = self._known[key] = any(
                catches(d, parcel.address, arrival, zone=self.zone, now=self.now)
                for d in self.disruptions
            )
        return found

    def caught(self, parcels: list[queries.ParcelGroup]) -> list[queries.ParcelGroup]:
        return [p for p in parcels if self.catches(p)]


def _at_risk_orders(view: View, session: Session, *, now: datetime, ident: str | None) -> list[str]:
    """Orders with a parcel caught by disruption ``ident`` (None: by any in force)."""
    every = current_disruptions(view, session, now=now)
    chosen = [d for d in every if d.id == ident] if ident else every
    if not chosen:
        return []
    parcels = queries.parcel_orders_in_transit(session, since=now - IN_TRANSIT_WINDOW)
    reach = Reach(chosen, zone=view.zone, now=now)
    ids: dict[str, None] = {}
    for parcel in parcels:  # newest first; the listing shows the first LISTING_LIMIT
        if parcel.order_id and reach.catches(parcel):
            ids[parcel.order_id] = None
            if len(ids) == answers.LISTING_LIMIT:
                break
    return list(ids)


def _trouble(view: View, now: datetime) -> answers.Trouble:
    return answers.Trouble(
        now=now,
        today=now.astimezone(view.zone).date(),
        stall_after=timedelta(hours=view.runtime.settings.watchers.stall_after_hours),
        since=now - IN_TRANSIT_WINDOW,
    )


def _week_start(view: View, now: datetime) -> datetime:
    today = now.astimezone(view.zone).date()
    start = today - timedelta(days=WEEK - 1)
    return datetime.combine(start, datetime.min.time(), tzinfo=view.zone)


def listing_orders(view: View, session: Session, params: dict[str, str]) -> list[Any]:
    """The orders behind one number, by the query parameters it linked with."""
    now = view.runtime.clock.now()
    ids: list[str] = []
    if "disruption" in params:
        ids = _at_risk_orders(view, session, now=now, ident=params["disruption"])
    elif params.get("trouble") == "at_risk":
        ids = _at_risk_orders(view, session, now=now, ident=None)
    elif "trouble" in params:
        ids = answers.trouble_orders(session, _trouble(view, now), params["trouble"])
    elif "complaints" in params:
        ids = answers.complaint_orders(
            session,
            since=_week_start(view, now),
            category=params["complaints"],
            unhandled=params.get("unhandled") == "1",
        )
    elif "failed" in params:
        ids = answers.failed_orders(session, since=_week_start(view, now))
    return queries.orders_by_ids(session, list(dict.fromkeys(ids)))


@dataclass(frozen=True)
class Answers:
    # category → (this week, still unhandled)
    complaints: dict[str, tuple[int, int]]
    # kind → parcels now (stalled, late, failed_attempt, exception, at_risk)
    trouble: dict[str, int]
    # rule → messages going out in the next 24 hours
    next_day: dict[str, int]
    failures: int


def answers_now(view: View, session: Session, *, now: datetime) -> Answers:
    """The overview's four questions, answered for ``now``."""
    week = _week_start(view, now)
    trouble = answers.trouble_counts(session, _trouble(view, now))
    today = now.astimezone(view.zone).date()
    in_force = [d for d in current_disruptions(view, session, now=now) if d.end >= today]
    at_risk = 0
    if in_force:
        groups = queries.parcels_in_transit(session, since=now - IN_TRANSIT_WINDOW)
        at_risk = sum(g.shipments for g in Reach(in_force, zone=view.zone, now=now).caught(groups))
    trouble["at_risk"] = at_risk
    return Answers(
        complaints=answers.complaints_by_category(session, since=week),
        trouble=trouble,
        next_day=answers.due_by_rule(session, now=now, until=now + NEXT_DAY),
        failures=answers.failures_needing_action(session, since=week),
    )
