"""Event -> notifications: match triggers, evaluate conditions, compute due times, dedupe.

Pure: the planner reads an event, what the store knows around it, the rule book and ``now``,
and returns what to schedule and what to cancel. The pipeline makes it durable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebot.contacts import normalize_phone, valid_email, zone_for
from carebot.events import Event
from carebot.exceptions import ExpressionError
from carebot.facts import Facts
from carebot.notifications import NotificationStatus, PlannedNotification
from carebot.planning.cancellations import cancellations_for
from carebot.planning.context import build_context
from carebot.planning.policy import (
    ENDED_ORDER_STATUSES,
    MAX_DELAY,
    ORDER_ENDING_EVENTS,
    OptOutCheck,
    Plan,
    PlanningPolicy,
    nobody_opted_out,
)
from carebot.planning.recipients import Recipient, dedupe_key, recipients
from carebot.rulebook.expressions import compile_condition, render_value
from carebot.rulebook.schema import Audience, DedupeScope, Rule, Rulebook
from carebot.rulebook.windows import next_allowed, parse_duration

__all__ = ["Planner"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Due:
    """When a customer message is due, in which zone, and why then."""

    at: datetime
    zone: str
    why: list[str]
    # Held for the rule's ``wait_for`` (not yet true).
    waiting: bool


@dataclass(frozen=True)
class _Occasion:
    """What one event brings to every rule it is planned against."""

    event: Event
    facts: Facts
    context: dict[str, Any]
    now: datetime
    source: str
    opted_out: OptOutCheck


@dataclass(frozen=True)
class _Customer:
    """Where and how to reach the customer the facts name."""

    phone: str | None
    email: str | None
    zone: str
    locale: str


class Planner:
    """Turns one event into the notifications the rule book asks for."""

    def __init__(self, *, policy: PlanningPolicy) -> None:
        self.policy = policy

    def plan(
        self,
        event: Event,
        facts: Facts,
        *,
        rulebook: Rulebook,
        now: datetime,
        source: str = "carebot",
        opted_out: OptOutCheck | None = None,
    ) -> Plan:
        context = build_context(event, facts, rulebook=rulebook, shop_name=self.policy.shop_name)
        occasion = _Occasion(event, facts, context, now, source, opted_out or nobody_opted_out)
        plan = Plan(cancellations=cancellations_for(event, facts, rulebook))
        ended = facts.order_status in ENDED_ORDER_STATUSES
        for rule in rulebook.rules_on(str(event.type)):
            if (
                ended
                and event.type not in ORDER_ENDING_EVENTS
                and rule.audience == Audience.CUSTOMER
            ):
                # A late scan or a watcher's finding about a cancelled order is not news to
                # tell its customer; a rule on the cancellation itself (a refund notice) is.
                continue
            plan.notifications.extend(self._plan_logged(rule, occasion))
        if (facts.order_id or event.order_id) and not ended:
            plan.releases.extend(
                self._releases(replace(occasion, opted_out=nobody_opted_out), rulebook)
            )
        return plan

    def _plan_logged(self, rule: Rule, occasion: _Occasion) -> list[PlannedNotification]:
        """``_plan_rule``, with a rule that fails to evaluate logged and skipped."""
        try:
            return self._plan_rule(rule, occasion)
        except ExpressionError as exc:
            logger.warning(
                "rule skipped: %s",
                exc,
                extra={"action": "rule_error", "rule": rule.id, "event_id": occasion.event.id},
            )
            return []

    def _releases(self, occasion: _Occasion, rulebook: Rulebook) -> list[PlannedNotification]:
        """What this event would release of ``wait_for`` rules that it does not trigger."""
        released: list[PlannedNotification] = []
        for rule in rulebook.rules:
            if (
                not rule.wait_for
                or str(occasion.event.type) in rule.on
                or rule.audience != Audience.CUSTOMER
                or rule.scope_for(rule.on[0]) == DedupeScope.EVENT
            ):
                continue
            try:
                planned = self._plan_rule(rule, occasion)
            except ExpressionError:
                continue
            released.extend(p for p in planned if p.release_wait)
        return released

    def _plan_rule(self, rule: Rule, occasion: _Occasion) -> list[PlannedNotification]:
        if rule.when and not compile_condition(rule.when)(occasion.context):
            return []
        if rule.audience == Audience.MERCHANT:
            return [self._plan_alert(rule, occasion)]
        planned = self._plan_customer(rule, occasion)
        event, source = occasion.event, occasion.source
        stale = self._stale(rule, event, occasion.now)
        if stale is None:
            return planned
        # Recorded, not sent: the timeline says why. The key names the event, so the stale
        # row never stands in the way of a fresh notice for the same parcel later.
        return [
            replace(
                item,
                dedupe_key=f"{item.dedupe_key}:stale:{source}:{event.id}",
                status=NotificationStatus.EXPIRED,
                reason=stale,
            )
            for item in planned
        ]

    @staticmethod
    def _stale(rule: Rule, event: Event, now: datetime) -> str | None:
        """Why the event is too old for this rule to act on, or None."""
        limit = rule.max_age
        if limit is None:
            return None
        age = now - event.occurred_at.astimezone(UTC)
        if age <= limit:
            return None
        hours = int(age.total_seconds() // 3600)
        return (
            f"stale event: {event.type} occurred {hours // 24}d {hours % 24}h ago "
            f"({event.occurred_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC), "
            f"older than max_event_age {rule.max_event_age}"
        )

    def _customer(self, facts: Facts) -> _Customer:
        customer = facts.customer
        country = (facts.shipping_address or {}).get("country")
        phone = normalize_phone(customer.phone if customer else None, country)
        zone = zone_for(
            customer_zone=customer.timezone if customer else None,
            phone=phone,
            country=country,
            default=self.policy.default_timezone,
        )
        locale = self.policy.locale_for(
            customer.locale if customer else None,
            country,
            (facts.billing_address or {}).get("country"),
        )
        return _Customer(phone, customer.email if customer else None, zone, locale)

    def _due(
        self, rule: Rule, event: Event, context: dict[str, Any], zone: str, now: datetime
    ) -> _Due:
        why: list[str] = []
        base = event.occurred_at.astimezone(UTC)
        waiting = bool(rule.wait_for) and not compile_condition(rule.wait_for or "")(context)
        if waiting:
            # Waiting is for another webhook, which can only come after this one arrived.
            base = max(base, now) + rule.wait_timeout
            why.append(f"waits up to {rule.wait_up_to} for {rule.wait_for}")
        if rule.delay:
            delay = self._delay(rule, context)
            if delay > MAX_DELAY:
                raise ExpressionError(f"rule {rule.id!r}: delay {delay} is longer than {MAX_DELAY}")
            base += delay
            why.append(f"delay {rule.delay.strip()} = {delay}")
        due = max(base, now)
        windows = [w for w in (self.policy.send_window, rule.daily_window) if w is not None]
        held = next_allowed(due, ZoneInfo(zone), windows)
        if held > due:
            why.append(f"held to {held.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}")
        return _Due(at=held, zone=zone, why=why, waiting=waiting)

    def _plan_customer(self, rule: Rule, occasion: _Occasion) -> list[PlannedNotification]:
        customer = self._customer(occasion.facts)
        due = self._due(rule, occasion.event, occasion.context, customer.zone, occasion.now)
        return [
            self._customer_notice(rule, occasion, customer, due, recipient)
            for recipient in recipients(rule, customer.phone, customer.email, occasion.opted_out)
        ]

    def _customer_notice(
        self,
        rule: Rule,
        occasion: _Occasion,
        customer: _Customer,
        due: _Due,
        recipient: Recipient,
    ) -> PlannedNotification:
        return self._notice(
            rule,
            occasion,
            channel=recipient.channel,
            due_at=due.at,
            recipient=recipient.address,
            locale=customer.locale,
            timezone=due.zone,
            window=rule.window,
            transactional=rule.transactional,
            status=NotificationStatus.FAILED if recipient.problem else NotificationStatus.SCHEDULED,
            reason=recipient.problem,
            fallback_recipient=recipient.fallback,
            why=due.why,
            release_wait=bool(rule.wait_for) and not due.waiting,
        )

    def _plan_alert(self, rule: Rule, occasion: _Occasion) -> PlannedNotification:
        """An alert to the shop: due at once (after the rule's delay), in the shop's own zone."""
        occurred, now = occasion.event.occurred_at.astimezone(UTC), occasion.now
        due = max(occurred, now)
        why: list[str] = ["merchant alert: quiet hours and caps do not apply"]
        if rule.delay:
            delay = self._delay(rule, occasion.context)
            due = max(occurred + delay, now)
            why.append(f"delay {rule.delay.strip()} = {delay}")
        address = self.policy.alerts_email if valid_email(self.policy.alerts_email) else None
        return self._notice(
            rule,
            occasion,
            channel="email",
            due_at=due,
            recipient=address,
            locale=self.policy.default_locale,
            timezone=self.policy.default_timezone,
            window=None,
            transactional=True,
            status=NotificationStatus.SCHEDULED if address else NotificationStatus.FAILED,
            reason=None if address else "no alerts address: set CAREBOT_ALERTS__EMAIL",
            audience=str(Audience.MERCHANT),
            why=why,
        )

    def _notice(
        self, rule: Rule, occasion: _Occasion, *, channel: str, due_at: datetime, **fields: Any
    ) -> PlannedNotification:
        """A notification of ``rule`` for ``occasion``; ``fields`` are what its audience sets."""
        event, facts = occasion.event, occasion.facts
        return PlannedNotification(
            dedupe_key=dedupe_key(rule, event, facts, channel, occasion.source),
            rule_id=rule.id,
            channel=channel,
            template=rule.send.template,
            due_at=due_at,
            not_after=due_at + rule.expiry,
            context=occasion.context,
            order_id=facts.order_id or event.order_id,
            customer_id=facts.customer_id,
            shipment_id=facts.shipment_id,
            event_id=event.id,
            max_attempts=rule.max_attempts or self.policy.max_attempts,
            in_doubt=str(rule.in_doubt),
            **fields,
        )

    @staticmethod
    def _delay(rule: Rule, context: dict[str, Any]) -> timedelta:
        assert rule.delay is not None
        text = render_value(rule.delay, context) if "{{" in rule.delay else rule.delay
        try:
            delay = parse_duration(text)
        except ValueError as exc:
            raise ExpressionError(f"rule {rule.id!r}: delay {rule.delay!r} gave {exc}") from exc
        return delay
