"""Ingest: one canonical event in, stored, merged and planned in a single transaction.

The pipeline also derives events of its own in that transaction: ``order.delivered`` when the
last shipment of an order is delivered, and ``feedback.received`` when a message answers a
feedback request (see ``carebot.feedback``); feedback and ``case.*`` events step the
service-recovery cases (see ``carebot.cases``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from carebot.cases import ServiceDesk
from carebot.clock import Clock
from carebot.events import Event, EventType, Order
from carebot.feedback import capture_reply
from carebot.inbound import Reply, apply_reply
from carebot.notifications import NotificationStatus, PlannedNotification
from carebot.planning import Plan, Planner
from carebot.rulebook.schema import Rulebook
from carebot.store import consent, entities, reorders, schedule
from carebot.store.database import Database

__all__ = ["IngestResult", "Pipeline"]

logger = logging.getLogger(__name__)

DERIVED_SOURCE = "derived"


@dataclass(frozen=True)
class IngestResult:
    event_id: str
    duplicate: bool
    scheduled: int = 0
    cancelled: int = 0
    # The earliest due time among what was scheduled, so the daemon can wake its dispatcher.
    earliest_due: datetime | None = None


def _opted_out(session: Session, channel: str, address: str) -> bool:
    return consent.is_opted_out(session, channel=channel, address=address)


def _recorded(session: Session, events: list[Event], now: datetime) -> list[Event]:
    """The derived events stored now: one already stored (a repeat) is not planned again."""
    return [
        follow
        for follow in events
        if entities.record_event(session, follow, source=DERIVED_SOURCE, received_at=now)
    ]


@dataclass
class _Tally:
    """What one ingest scheduled and cancelled, and the earliest due time it scheduled."""

    scheduled: int = 0
    cancelled: int = 0
    earliest: datetime | None = None

    def count(self, inserted: list[PlannedNotification]) -> None:
        for item in inserted:
            if item.status != NotificationStatus.SCHEDULED:
                continue
            self.scheduled += 1
            if self.earliest is None or item.due_at < self.earliest:
                self.earliest = item.due_at


class Pipeline:
    """The one path every event takes, in the daemon, in ``simulate`` and in the tests."""

    def __init__(
        self,
        *,
        db: Database,
        planner: Planner,
        rulebook: Callable[[], Rulebook],
        clock: Clock,
        on_scheduled: Callable[[datetime], None] | None = None,
        service: ServiceDesk | None = None,
    ) -> None:
        self.db = db
        self.service = service or ServiceDesk()
        self.planner = planner
        self.rulebook = rulebook
        self.clock = clock
        self.on_scheduled = on_scheduled
        # Called after a disruption is declared, changed or ended (the daemon rescans at once).
        self.on_disruption: Callable[[], None] | None = None

    def ingest(
        self, event: Event, *, source: str = "carebot", delivery_id: str | None = None
    ) -> IngestResult:
        """Store ``event`` and plan for it; a repeat of a stored event changes nothing."""
        now = self.clock.now()
        rules = self.rulebook()
        tally = _Tally()
        with self.db.transaction() as session:
            if not entities.record_event(
                session, event, source=source, received_at=now, delivery_id=delivery_id
            ):
                return IngestResult(event_id=event.id, duplicate=True)
            pending = [(event, source)]
            while pending:
                current, current_source = pending.pop(0)
                derived = self._ingest_one(session, current, current_source, rules, now, tally)
                pending.extend((follow, DERIVED_SOURCE) for follow in derived)
        logger.info(
            "event stored",
            extra={
                "action": "event_stored",
                "event_id": event.id,
                "event_type": str(event.type),
                "source": source,
                "scheduled": tally.scheduled,
                "cancelled": tally.cancelled,
            },
        )
        if tally.earliest is not None and self.on_scheduled is not None:
            self.on_scheduled(tally.earliest)
        if event.type == EventType.DISRUPTION_DECLARED and self.on_disruption is not None:
            self.on_disruption()
        return IngestResult(
            event_id=event.id,
            duplicate=False,
            scheduled=tally.scheduled,
            cancelled=tally.cancelled,
            earliest_due=tally.earliest,
        )

    def _ingest_one(
        self,
        session: Session,
        event: Event,
        source: str,
        rules: Rulebook,
        now: datetime,
        tally: _Tally,
    ) -> list[Event]:
        """Merge, plan and schedule one stored event; the derived events it recorded."""
        merged = entities.merge_event(session, event, now=now)
        if merged.stale and event.type == EventType.SHIPMENT_UPDATED:
            # An update older than what the store knows changes nothing.
            return []
        plan = self.planner.plan(
            event,
            entities.facts_for(session, merged),
            rulebook=rules,
            now=now,
            source=source,
            opted_out=partial(_opted_out, session),
        )
        tally.cancelled += self._cancel(session, plan, now)
        tally.count(self._schedule(session, plan, now))
        return self._derive(session, event, source, merged, rules, now)

    @staticmethod
    def _schedule(session: Session, plan: Plan, now: datetime) -> list[PlannedNotification]:
        """Insert the plan's notifications; release the waiting rows it makes go now."""
        inserted = schedule.insert_planned(session, plan.notifications, now=now)
        # What a rule's ``wait_for`` waited for came true: a waiting row goes now.
        inserted_keys = {item.dedupe_key for item in inserted}
        return inserted + schedule.release_waiting(
            session,
            [
                item
                for item in (*plan.notifications, *plan.releases)
                if item.release_wait and item.dedupe_key not in inserted_keys
            ],
            now=now,
        )

    def _derive(
        self,
        session: Session,
        event: Event,
        source: str,
        merged: entities.MergeResult,
        rules: Rulebook,
        now: datetime,
    ) -> list[Event]:
        """The events this one leads to, stored as they come (feedback, case steps, the whole
        order delivered); one stored before (a repeat) is left out."""
        derived: list[Event] = []
        if (
            event.type == EventType.MESSAGE_RECEIVED
            # The one consent path of every inbound route: STOP, 退订, START…
            and apply_reply(session, event, source=source) == Reply.MESSAGE
        ):
            # A reply to a feedback request becomes feedback.received, for the rules that
            # alert the merchant and acknowledge the customer.
            reply = capture_reply(session, event, rulebook=rules)
            if reply is not None:
                derived += _recorded(session, [reply], now)
        # Service recovery: feedback opens or joins a case, case events step it.
        derived += _recorded(
            session, self.service.derive(session, event, rulebook=rules, now=now), now
        )
        if merged.order_now_delivered and merged.order_id:
            whole = Event(
                id=f"{merged.order_id}:order.delivered",
                type=EventType.ORDER_DELIVERED,
                occurred_at=event.occurred_at,
                order=Order(id=merged.order_id),
            )
            derived += _recorded(session, [whole], now)
        return derived

    @staticmethod
    def _cancel(session: Session, plan: Plan, now: datetime) -> int:
        cancelled = 0
        for c in plan.cancellations:
            if c.customer_id is not None and c.rule_ids:
                cancelled += reorders.cancel_customer_pending(
                    session,
                    customer_id=c.customer_id,
                    rule_ids=c.rule_ids,
                    reason=c.reason,
                    now=now,
                )
                continue
            cancelled += schedule.cancel_pending(
                session,
                order_id=c.order_id,
                rule_ids=c.rule_ids,
                shipment_id=c.shipment_id,
                reason=c.reason,
                now=now,
                customer_only=c.customer_only,
                exact_shipment=c.exact_shipment,
            )
        return cancelled
