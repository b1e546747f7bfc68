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
from carebot.notifications import NotificationStatus
from carebot.planner import Plan, Planner
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
        scheduled = cancelled = 0
        earliest: datetime | None = None
        with self.db.transaction() as session:
            if not entities.record_event(
                session, event, source=source, received_at=now, delivery_id=delivery_id
            ):
                return IngestResult(event_id=event.id, duplicate=True)
            pending = [(event, source)]
            while pending:
                current, current_source = pending.pop(0)
                merged = entities.merge_event(session, current, now=now)
                if merged.stale and current.type == EventType.SHIPMENT_UPDATED:
                    # An update older than what the store knows changes nothing.
                    continue
                facts = entities.facts_for(session, merged)
                plan = self.planner.plan(
                    current,
                    facts,
                    rulebook=rules,
                    now=now,
                    source=current_source,
                    opted_out=partial(_opted_out, session),
                )
                cancelled += self._cancel(session, plan, now)
                inserted = schedule.insert_planned(session, plan.notifications, now=now)
                # What a rule's ``wait_for`` waited for came true: a waiting row goes now.
                inserted_keys = {item.dedupe_key for item in inserted}
                inserted += schedule.release_waiting(
                    session,
                    [
                        item
                        for item in (*plan.notifications, *plan.releases)
                        if item.release_wait and item.dedupe_key not in inserted_keys
                    ],
                    now=now,
                )
                for item in inserted:
                    if item.status != NotificationStatus.SCHEDULED:
                        continue
                    scheduled += 1
                    if earliest is None or item.due_at < earliest:
                        earliest = item.due_at
                if (
                    current.type == EventType.MESSAGE_RECEIVED
                    # The one consent path of every inbound route: STOP, 退订, START…
                    and apply_reply(session, current, source=current_source) == Reply.MESSAGE
                ):
                    # A reply to a feedback request becomes feedback.received, for the rules
                    # that alert the merchant and acknowledge the customer.
                    reply = capture_reply(session, current, rulebook=rules)
                    if reply is not None and entities.record_event(
                        session, reply, source=DERIVED_SOURCE, received_at=now
                    ):
                        pending.append((reply, DERIVED_SOURCE))
                # Service recovery: feedback opens or joins a case, case events step it.
                for follow in self.service.derive(session, current, rulebook=rules, now=now):
                    if entities.record_event(
                        session, follow, source=DERIVED_SOURCE, received_at=now
                    ):
                        pending.append((follow, DERIVED_SOURCE))
                if merged.order_now_delivered and merged.order_id:
                    derived = Event(
                        id=f"{merged.order_id}:order.delivered",
                        type=EventType.ORDER_DELIVERED,
                        occurred_at=current.occurred_at,
                        order=Order(id=merged.order_id),
                    )
                    if entities.record_event(
                        session, derived, source=DERIVED_SOURCE, received_at=now
                    ):
                        pending.append((derived, DERIVED_SOURCE))
        logger.info(
            "event stored",
            extra={
                "action": "event_stored",
                "event_id": event.id,
                "event_type": str(event.type),
                "source": source,
                "scheduled": scheduled,
                "cancelled": cancelled,
            },
        )
        if earliest is not None and self.on_scheduled is not None:
            self.on_scheduled(earliest)
        if event.type == EventType.DISRUPTION_DECLARED and self.on_disruption is not None:
            self.on_disruption()
        return IngestResult(
            event_id=event.id,
            duplicate=False,
            scheduled=scheduled,
            cancelled=cancelled,
            earliest_due=earliest,
        )

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
