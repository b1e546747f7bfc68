"""Event → notifications: match triggers, evaluate conditions, compute due times, dedupe.

Pure: the planner reads an event, what the store knows around it, the rule book and ``now``,
and returns what to schedule and what to cancel. The pipeline makes it durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebot.contacts import email_problem, normalize_phone, valid_email, zone_for
from carebot.events import Event, EventType, ShipmentStatus
from carebot.exceptions import ExpressionError
from carebot.notifications import NotificationStatus, PlannedNotification
from carebot.rulebook.expressions import compile_condition, render_value
from carebot.rulebook.schema import Audience, ChannelChoice, DedupeScope, Rule, Rulebook
from carebot.rulebook.windows import DailyWindow, next_allowed, parse_duration
from carebot.store.entities import Facts

__all__ = [
    "DEFAULT_COUNTRY_LOCALES",
    "Cancellation",
    "Plan",
    "Planner",
    "PlanningPolicy",
    "build_context",
]

logger = logging.getLogger(__name__)

# Care messages are about this order's life; a longer delay is a mistake, not a plan.
MAX_DELAY = timedelta(days=3660)


# After these, an order gets nothing more: every pending customer message of it is cancelled.
ORDER_ENDING_EVENTS = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_REFUNDED})
_ENDED_ORDER_STATUSES = frozenset({"cancelled", "refunded"})

# (channel, address) -> True when that address opted out of that channel.
OptOutCheck = Callable[[str, str], bool]


def _nobody_opted_out(channel: str, address: str) -> bool:
    return False


# The default quiet hours (CAREBOT_QUIET_HOURS), customer's local time.
QUIET_HOURS = DailyWindow(time(21), time(9))

# The language of a customer whose order names none, by shipping (else billing) country; "*"
# stands for every other country. Templates exist for zh-CN and en.
DEFAULT_COUNTRY_LOCALES: Mapping[str, str] = {
    "CN": "zh-CN",
    "HK": "zh-CN",
    "MO": "zh-CN",
    "TW": "zh-CN",
    "*": "en",
}


@dataclass(frozen=True)
class PlanningPolicy:
    """The merchant-wide settings planning depends on."""

    default_timezone: str = "Asia/Shanghai"
    default_locale: str = "zh-CN"
    # Customer's local time; None: no quiet hours.
    quiet_hours: DailyWindow | None = QUIET_HOURS
    max_attempts: int = 6
    shop_name: str = "carebot"
    # Where rules with ``audience: merchant`` write (CAREBOT_ALERTS__EMAIL).
    alerts_email: str | None = None
    # Country (ISO 3166 alpha-2, or "*") → locale, for customers without one (COUNTRY_LOCALES).
    country_locales: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_COUNTRY_LOCALES)
    )

    def locale_for(self, customer_locale: Any, *countries: Any) -> str:
        """The customer's own locale, else their country's, else the default locale."""
        if isinstance(customer_locale, str) and customer_locale.strip():
            return customer_locale.strip()
        for country in countries:
            if isinstance(country, str) and country.strip():
                key = country.strip().upper()
                found = self.country_locales.get(key) or self.country_locales.get("*")
                if found:
                    return found
        return self.default_locale

    @property
    def send_window(self) -> DailyWindow | None:
        """The hours outside quiet hours, when a customer may be messaged."""
        return None if self.quiet_hours is None else self.quiet_hours.inverse()


# Derived events about a customer's supply rather than about one order.
SUPPLY_EVENTS = frozenset({str(EventType.RESTOCK_DUE), str(EventType.DISRUPTION_STOCK_UP)})


@dataclass(frozen=True)
class Cancellation:
    order_id: str
    shipment_id: str | None
    # None: every rule's pending rows (an order that ended).
    rule_ids: tuple[str, ...] | None
    reason: str
    customer_only: bool = False
    # Only the rows of ``shipment_id`` (a voided parcel), not those of the whole order.
    exact_shipment: bool = False
    # Set for reminders about a customer's supply: they belong to the order being used up,
    # so the reorder that makes them moot must reach them through the customer.
    customer_id: str | None = None


@dataclass(frozen=True)
class Plan:
    notifications: list[PlannedNotification] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)
    # Messages of ``wait_for`` rules this event may release; never inserted themselves.
    releases: list[PlannedNotification] = field(default_factory=list)


def build_context(
    event: Event, facts: Facts, *, rulebook: Rulebook, shop_name: str
) -> dict[str, Any]:
    """The JSON-friendly values conditions, delays and templates see."""
    items = []
    for item in facts.items:
        enriched = dict(item)
        enriched.update(rulebook.profile_for(item.get("sku"), item.get("tags") or []))
        items.append(enriched)
    order = dict(facts.order or {})
    if order and not order.get("number"):
        # The number the customer knows; a source that gives none means the id is that number.
        order["number"] = order.get("id")
    context: dict[str, Any] = {
        "event": {
            "id": event.id,
            "type": str(event.type),
            "occurred_at": event.occurred_at.isoformat(),
        },
        "order": order,
        "customer": facts.customer or {},
        "shipping_address": facts.shipping_address or {},
        "billing_address": facts.billing_address or {},
        "shipment": facts.shipment or {},
        "shipments": facts.shipments,
        "items": items,
        "shop": {"name": shop_name},
    }
    if event.message is not None:
        context["message"] = event.message.model_dump(mode="json", by_alias=True)
    if event.disruption is not None:
        context["disruption"] = dict(event.disruption)
    extra = event.model_extra or {}
    if isinstance(extra.get("restock"), dict):
        # What the restock watcher worked out: run-out date, order-by date, the product.
        context["restock"] = dict(extra["restock"])
    if isinstance(extra.get("checkpoint"), dict):
        # A tracking source's newest carrier scan (where, what, whether in the customer's city).
        context["checkpoint"] = dict(extra["checkpoint"])
    if event.feedback is not None:
        context["feedback"] = dict(event.feedback)
    if event.case is not None:
        context["case"] = dict(event.case)
    if event.digest is not None:
        context["digest"] = dict(event.digest)
    return context


@dataclass(frozen=True)
class _Recipient:
    channel: str
    address: str | None
    problem: str | None = None
    # The other channel's address, for dispatch to fall back to if this one is refused.
    fallback: str | None = None


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
        plan = Plan()
        order_id = (facts.order or {}).get("id") or event.order_id
        shipment_id = (facts.shipment or {}).get("id")
        cancelling = rulebook.rules_cancelled_by(str(event.type))
        ended = (facts.order or {}).get("status") in _ENDED_ORDER_STATUSES
        if event.type in ORDER_ENDING_EVENTS and order_id:
            # Whatever the rules' cancel_on say, a cancelled or refunded order gets nothing more.
            plan.cancellations.append(
                Cancellation(
                    order_id=order_id,
                    shipment_id=None,
                    rule_ids=None,
                    reason=f"order {str(event.type).split('.')[1]}: {event.type} ({event.id})",
                    customer_only=True,
                )
            )
        elif (
            event.shipment is not None
            and event.shipment.status == ShipmentStatus.CANCELLED
            and order_id
            and shipment_id
        ):
            # The platform voided this parcel: nothing more is said about it.
            plan.cancellations.append(
                Cancellation(
                    order_id=order_id,
                    shipment_id=shipment_id,
                    rule_ids=None,
                    reason=f"shipment cancelled: {event.type} ({event.id})",
                    customer_only=True,
                    exact_shipment=True,
                )
            )
        elif cancelling and order_id:
            about_supply = [r for r in cancelling if set(r.on) <= SUPPLY_EVENTS]
            about_order = [r for r in cancelling if r not in about_supply]
            reason = f"cancelled by {event.type} ({event.id})"
            if about_order:
                plan.cancellations.append(
                    Cancellation(
                        order_id=order_id,
                        shipment_id=shipment_id if event.type.startswith("shipment.") else None,
                        rule_ids=tuple(r.id for r in about_order),
                        reason=reason,
                    )
                )
            customer_id = (facts.customer or {}).get("id")
            if about_supply and customer_id:
                plan.cancellations.append(
                    Cancellation(
                        order_id=order_id,
                        shipment_id=None,
                        rule_ids=tuple(r.id for r in about_supply),
                        reason=reason,
                        customer_id=customer_id,
                    )
                )
        for rule in rulebook.rules_on(str(event.type)):
            if (
                ended
                and event.type not in ORDER_ENDING_EVENTS
                and rule.audience == Audience.CUSTOMER
            ):
                # A late scan or a watcher's finding about a cancelled order is not news to
                # tell its customer; a rule on the cancellation itself (a refund notice) is.
                continue
            try:
                plan.notifications.extend(
                    self._plan_rule(
                        rule,
                        event,
                        facts,
                        context,
                        now=now,
                        source=source,
                        opted_out=opted_out or _nobody_opted_out,
                    )
                )
            except ExpressionError as exc:
                logger.warning(
                    "rule skipped: %s",
                    exc,
                    extra={"action": "rule_error", "rule": rule.id, "event_id": event.id},
                )
        if order_id and not ended:
            plan.releases.extend(
                self._releases(event, facts, context, rulebook, now=now, source=source)
            )
        return plan

    def _releases(
        self,
        event: Event,
        facts: Facts,
        context: dict[str, Any],
        rulebook: Rulebook,
        *,
        now: datetime,
        source: str,
    ) -> list[PlannedNotification]:
        """What this event would release of ``wait_for`` rules that it does not trigger."""
        released: list[PlannedNotification] = []
        for rule in rulebook.rules:
            if (
                not rule.wait_for
                or str(event.type) in rule.on
                or rule.audience != Audience.CUSTOMER
                or rule.scope_for(rule.on[0]) == DedupeScope.EVENT
            ):
                continue
            try:
                planned = self._plan_rule(
                    rule,
                    event,
                    facts,
                    context,
                    now=now,
                    source=source,
                    opted_out=_nobody_opted_out,
                )
            except ExpressionError:
                continue
            released.extend(p for p in planned if p.release_wait)
        return released

    def _plan_rule(
        self,
        rule: Rule,
        event: Event,
        facts: Facts,
        context: dict[str, Any],
        *,
        now: datetime,
        source: str,
        opted_out: OptOutCheck,
    ) -> list[PlannedNotification]:
        if rule.when and not compile_condition(rule.when)(context):
            return []
        if rule.audience == Audience.MERCHANT:
            return [self._plan_alert(rule, event, facts, context, now=now, source=source)]
        planned = self._plan_customer(
            rule, event, facts, context, now=now, source=source, opted_out=opted_out
        )
        stale = self._stale(rule, event, now)
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

    def _plan_customer(
        self,
        rule: Rule,
        event: Event,
        facts: Facts,
        context: dict[str, Any],
        *,
        now: datetime,
        source: str,
        opted_out: OptOutCheck,
    ) -> list[PlannedNotification]:
        customer = facts.customer or {}
        address = facts.shipping_address or {}
        phone = normalize_phone(customer.get("phone"), address.get("country"))
        zone_name = zone_for(
            customer_zone=customer.get("timezone"),
            phone=phone,
            country=address.get("country"),
            default=self.policy.default_timezone,
        )
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
        held = next_allowed(due, ZoneInfo(zone_name), windows)
        if held > due:
            why.append(f"held to {held.astimezone(ZoneInfo(zone_name)):%Y-%m-%d %H:%M} {zone_name}")
        locale = self.policy.locale_for(
            customer.get("locale"),
            address.get("country"),
            (facts.billing_address or {}).get("country"),
        )
        planned = []
        for recipient in self._recipients(rule, phone, customer.get("email"), opted_out):
            planned.append(
                PlannedNotification(
                    dedupe_key=self._dedupe_key(rule, event, facts, recipient.channel, source),
                    rule_id=rule.id,
                    channel=recipient.channel,
                    recipient=recipient.address,
                    template=rule.send.template,
                    locale=locale,
                    timezone=zone_name,
                    window=rule.window,
                    due_at=held,
                    not_after=held + rule.expiry,
                    context=context,
                    order_id=(facts.order or {}).get("id") or event.order_id,
                    customer_id=customer.get("id"),
                    shipment_id=(facts.shipment or {}).get("id"),
                    event_id=event.id,
                    max_attempts=rule.max_attempts or self.policy.max_attempts,
                    transactional=rule.transactional,
                    in_doubt=str(rule.in_doubt),
                    status=NotificationStatus.FAILED
                    if recipient.problem
                    else NotificationStatus.SCHEDULED,
                    reason=recipient.problem,
                    fallback_recipient=recipient.fallback,
                    why=why,
                    release_wait=bool(rule.wait_for) and not waiting,
                )
            )
        return planned

    def _plan_alert(
        self,
        rule: Rule,
        event: Event,
        facts: Facts,
        context: dict[str, Any],
        *,
        now: datetime,
        source: str,
    ) -> PlannedNotification:
        """An alert to the shop: due at once (after the rule's delay), in the shop's own zone."""
        due = max(event.occurred_at.astimezone(UTC), now)
        why: list[str] = ["merchant alert: quiet hours and caps do not apply"]
        if rule.delay:
            delay = self._delay(rule, context)
            due = max(event.occurred_at.astimezone(UTC) + delay, now)
            why.append(f"delay {rule.delay.strip()} = {delay}")
        address = self.policy.alerts_email if valid_email(self.policy.alerts_email) else None
        return PlannedNotification(
            dedupe_key=self._dedupe_key(rule, event, facts, "email", source),
            rule_id=rule.id,
            channel="email",
            recipient=address,
            template=rule.send.template,
            locale=self.policy.default_locale,
            timezone=self.policy.default_timezone,
            window=None,
            due_at=due,
            not_after=due + rule.expiry,
            context=context,
            order_id=(facts.order or {}).get("id") or event.order_id,
            customer_id=(facts.customer or {}).get("id"),
            shipment_id=(facts.shipment or {}).get("id"),
            event_id=event.id,
            max_attempts=rule.max_attempts or self.policy.max_attempts,
            transactional=True,
            in_doubt=str(rule.in_doubt),
            status=NotificationStatus.SCHEDULED if address else NotificationStatus.FAILED,
            reason=None if address else "no alerts address: set CAREBOT_ALERTS__EMAIL",
            audience=str(Audience.MERCHANT),
            why=why,
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

    @staticmethod
    def _recipients(
        rule: Rule, phone: str | None, email: str | None, opted_out: OptOutCheck
    ) -> list[_Recipient]:
        # Why a given address cannot be used (control characters, non-ASCII, bad shape).
        email_refused = email_problem(email) if email else None
        email = None if email_refused else email
        choice = rule.send.channel
        if choice == ChannelChoice.PREFERRED:
            # The dedupe key names the choice, not the outcome, so a customer who gains a
            # phone number between two events is not sent the same notice twice.
            # Consent may change before dispatch, so the other channel's address rides along.
            if phone and not opted_out("sms", phone):
                return [_Recipient("sms", phone, fallback=email)]
            if email and not opted_out("email", email):
                return [_Recipient("email", email, fallback=phone)]
            # Nothing allowed: plan it anyway so that dispatch records why it was suppressed.
            if phone:
                return [_Recipient("sms", phone, fallback=email)]
            if email:
                return [_Recipient("email", email)]
            return [_Recipient("sms", None, "no valid phone number or email address")]
        wanted = ["sms", "email"] if choice == ChannelChoice.BOTH else [str(choice)]
        out = []
        for channel in wanted:
            address = phone if channel == "sms" else email
            problem = (
                None
                if address
                else f"no valid {'phone number' if channel == 'sms' else 'email address'}"
            )
            if channel == "email" and email_refused:
                problem = f"no valid email address: {email_refused}"
            out.append(_Recipient(channel, address, problem))
        return out

    @staticmethod
    def _dedupe_key(rule: Rule, event: Event, facts: Facts, channel: str, source: str) -> str:
        label = "preferred" if rule.send.channel == ChannelChoice.PREFERRED else channel
        # A wait_for rule released by an event it does not trigger keeps its own scope.
        trigger = str(event.type) if str(event.type) in rule.on else rule.on[0]
        scope = rule.scope_for(trigger)
        order_id = (facts.order or {}).get("id") or event.order_id
        shipment_id = (facts.shipment or {}).get("id")
        customer_id = (facts.customer or {}).get("id")
        if scope == DedupeScope.SHIPMENT and shipment_id:
            subject = f"shipment:{shipment_id}"
        elif scope in (DedupeScope.ORDER, DedupeScope.SHIPMENT) and order_id:
            subject = f"order:{order_id}"
        elif scope == DedupeScope.CUSTOMER and customer_id:
            subject = f"customer:{customer_id}"
        else:
            subject = f"event:{source}:{event.id}"
        return f"{subject}:{rule.id}:{label}"
