"""Service-recovery scans: cases past their response deadline, and the weekly digest.

``case.overdue`` is emitted once per case and step (``case:<id>:overdue:<step>``), dated at
the deadline, so that a rule on it alerts the merchant again once per step; ``digest.weekly``
once per week (``digest:<date>``), at the configured weekday and hour in the shop's zone, with
the week's figures for a merchant rule to send.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebot.cases import ServiceDesk
from carebot.events import Event, EventType, Order
from carebot.rulebook.schema import Rulebook
from carebot.store import cases as store
from carebot.store.case_report import case_report, scheduled_between, stalled_shipments
from carebot.store.database import Database
from carebot.watchers.base import Watcher

__all__ = ["OverdueCases", "WeeklyDigest"]

# A digest whose hour passed longer ago than this (the daemon was down) is skipped, not sent late.
DIGEST_GRACE = timedelta(hours=12)
WEEK = timedelta(days=7)


class OverdueCases(Watcher):
    """``case.overdue``: an open or contacted case past its step's deadline, once per step."""

    name = "case_deadlines"

    def __init__(
        self,
        *,
        db: Database,
        rules: Callable[[], Rulebook],
        desk: ServiceDesk | None = None,
        interval: timedelta = timedelta(minutes=10),
    ) -> None:
        self.db = db
        self.rules = rules
        self.desk = desk or ServiceDesk()
        self.interval = interval

    def scan(self, *, now: datetime) -> list[Event]:
        rulebook = self.rules()
        with self.db.transaction() as session:
            return [
                Event(
                    id=f"case:{case.id}:overdue:{case.step}",
                    type=EventType.CASE_OVERDUE,
                    occurred_at=case.deadline_at,
                    order=Order(id=case.order_id),
                    case=self.desk.describe(case, rulebook),
                )
                for case in store.overdue_cases(session, now=now)
                if case.deadline_at is not None
            ]

    def idle_until(self, *, now: datetime) -> datetime | None:
        with self.db.transaction() as session:
            return store.next_deadline(session)


class WeeklyDigest(Watcher):
    """``digest.weekly``: complaints of the week, parcels stalled now, what goes out tomorrow."""

    name = "weekly_digest"

    def __init__(
        self,
        *,
        db: Database,
        rules: Callable[[], Rulebook],
        zone: str,
        weekday: int = 0,
        hour: int = 9,
        stall_after: timedelta = timedelta(hours=48),
        recovery_days: int = 60,
        locale: str = "zh-CN",
        interval: timedelta = timedelta(minutes=10),
    ) -> None:
        self.db = db
        self.rules = rules
        self.zone = ZoneInfo(zone)
        self.weekday = weekday
        self.hour = hour
        self.stall_after = stall_after
        self.recovery_days = recovery_days
        self.locale = locale
        self.interval = interval

    def slot(self, now: datetime) -> datetime:
        """The latest digest instant at or before ``now`` (UTC)."""
        local = now.astimezone(self.zone)
        day = local.date() - timedelta(days=(local.weekday() - self.weekday) % 7)
        at = datetime.combine(day, time(self.hour), tzinfo=self.zone)
        if at > local:
            at = datetime.combine(day - WEEK, time(self.hour), tzinfo=self.zone)
        return at.astimezone(UTC)

    def _wanted(self) -> bool:
        return bool(self.rules().rules_on(str(EventType.DIGEST_WEEKLY)))

    def scan(self, *, now: datetime) -> list[Event]:
        slot = self.slot(now)
        ident = f"digest:{slot.astimezone(self.zone).date().isoformat()}"
        if now - slot > DIGEST_GRACE or not self._wanted():
            return []
        with self.db.transaction() as session:
            if store.event_recorded(session, source=self.source, event_id=ident):
                return []
            figures = self.figures(session, slot=slot, now=now)
        return [Event(id=ident, type=EventType.DIGEST_WEEKLY, occurred_at=slot, digest=figures)]

    def figures(self, session: Any, *, slot: datetime, now: datetime) -> dict[str, Any]:
        """The week before ``slot``: what the digest email shows (JSON-friendly)."""
        rulebook = self.rules()
        report = case_report(
            session, since=slot - WEEK, until=slot, recovery_days=self.recovery_days
        )
        stalled, oldest = stalled_shipments(session, now=now, stall_after=self.stall_after)
        local = now.astimezone(self.zone)
        tomorrow = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=self.zone)
        by_rule = scheduled_between(session, start=tomorrow, end=tomorrow + timedelta(days=1))

        def label(category: str) -> str:
            found = rulebook.category(category)
            return found.label_in(self.locale) if found is not None else category

        def rule_label(rule_id: str) -> str:
            rule = rulebook.rule(rule_id)
            return rule.label_in(self.locale) if rule is not None else rule_id

        for parcel in oldest:
            if parcel["last_seen_at"]:
                seen = datetime.fromisoformat(parcel["last_seen_at"]).astimezone(self.zone)
                parcel["last_seen_at"] = seen.isoformat()
        return {
            "since": (slot - WEEK).astimezone(self.zone).isoformat(),
            "until": slot.astimezone(self.zone).isoformat(),
            "complaints": report.cases,
            "by_category": [
                {"category": c, "label": label(c), "count": n}
                for c, n in sorted(report.by_category.items(), key=lambda p: (-p[1], p[0]))
            ],
            "by_product": report.by_product,
            "measures": report.as_json(),
            "stalled_now": stalled,
            "stalled": oldest,
            "tomorrow": tomorrow.date().isoformat(),
            "tomorrow_total": sum(by_rule.values()),
            "tomorrow_by_rule": [
                {"rule": r, "label": rule_label(r), "count": n} for r, n in by_rule.items()
            ],
        }

    def idle_until(self, *, now: datetime) -> datetime | None:
        return self.slot(now) + WEEK
