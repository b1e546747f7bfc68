"""Who a customer message goes to on which channel, and the key that sends it once."""

from __future__ import annotations

from dataclasses import dataclass

from carebot.contacts import email_problem
from carebot.events import Event
from carebot.facts import Facts
from carebot.planning.policy import OptOutCheck
from carebot.rulebook.schema import ChannelChoice, DedupeScope, Rule

__all__ = ["Recipient", "dedupe_key", "recipients"]

_WHAT = {"sms": "phone number", "email": "email address"}


@dataclass(frozen=True)
class Recipient:
    channel: str
    address: str | None
    problem: str | None = None
    # The other channel's address, for dispatch to fall back to if this one is refused.
    fallback: str | None = None


def _preferred(phone: str | None, email: str | None, opted_out: OptOutCheck) -> Recipient:
    """The phone unless it opted out, else the email; one of them, whatever consent says."""
    # Consent may change before dispatch, so the other channel's address rides along.
    if phone and not opted_out("sms", phone):
        return Recipient("sms", phone, fallback=email)
    if email and not opted_out("email", email):
        return Recipient("email", email, fallback=phone)
    # Nothing allowed: plan it anyway so that dispatch records why it was suppressed.
    if phone:
        return Recipient("sms", phone, fallback=email)
    if email:
        return Recipient("email", email)
    return Recipient("sms", None, "no valid phone number or email address")


def _on(channel: str, address: str | None, email_refused: str | None) -> Recipient:
    problem = None if address else f"no valid {_WHAT[channel]}"
    if channel == "email" and email_refused:
        problem = f"no valid email address: {email_refused}"
    return Recipient(channel, address, problem)


def recipients(
    rule: Rule, phone: str | None, email: str | None, opted_out: OptOutCheck
) -> list[Recipient]:
    """One recipient per channel the rule sends on (a ``preferred`` rule: exactly one)."""
    # Why a given address cannot be used (control characters, non-ASCII, bad shape).
    email_refused = email_problem(email) if email else None
    email = None if email_refused else email
    choice = rule.send.channel
    if choice == ChannelChoice.PREFERRED:
        # The dedupe key names the choice, not the outcome, so a customer who gains a
        # phone number between two events is not sent the same notice twice.
        return [_preferred(phone, email, opted_out)]
    wanted = ["sms", "email"] if choice == ChannelChoice.BOTH else [str(choice)]
    return [_on(channel, phone if channel == "sms" else email, email_refused) for channel in wanted]


def _subject(scope: DedupeScope, event: Event, facts: Facts, source: str) -> str:
    """What the rule sends once per: the shipment, the order, the customer or the event."""
    order_id = facts.order_id or event.order_id
    if scope == DedupeScope.SHIPMENT and facts.shipment_id:
        return f"shipment:{facts.shipment_id}"
    if scope in (DedupeScope.ORDER, DedupeScope.SHIPMENT) and order_id:
        return f"order:{order_id}"
    if scope == DedupeScope.CUSTOMER and facts.customer_id:
        return f"customer:{facts.customer_id}"
    return f"event:{source}:{event.id}"


def dedupe_key(rule: Rule, event: Event, facts: Facts, channel: str, source: str) -> str:
    """The key that makes a notice go once per its rule's scope."""
    label = "preferred" if rule.send.channel == ChannelChoice.PREFERRED else channel
    # A wait_for rule released by an event it does not trigger keeps its own scope.
    trigger = str(event.type) if str(event.type) in rule.on else rule.on[0]
    return f"{_subject(rule.scope_for(trigger), event, facts, source)}:{rule.id}:{label}"
