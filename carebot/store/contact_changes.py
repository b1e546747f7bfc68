"""Correcting a customer's phone number or email address from the dashboard, audited.

The customer row gets the new value; the customer's messages still to go (scheduled) or that
can be resent (failed, expired, undelivered) on that channel are re-addressed, so "correct, then
resend" reaches the new address; one audit row records who, when, old → new, and how many.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.models import ContactChangeRow, CustomerRow, NotificationRow, OrderRow

__all__ = ["Field", "changes_for", "correct_contact", "customer_region"]

Field = Literal["phone", "email"]
# Rows whose address may still matter: to be sent, or to be resent by hand.
_READDRESSED = [str(s) for s in (S.SCHEDULED, S.FAILED, S.EXPIRED, S.UNDELIVERED)]
_CHANNEL = {"phone": "sms", "email": "email"}


def customer_region(session: Session, customer_id: str) -> str | None:
    """The country of the customer's latest shipping address (how a national number reads)."""
    address = session.scalar(
        select(OrderRow.shipping_address)
        .where(OrderRow.customer_id == customer_id)
        .order_by(OrderRow.created_at.desc())
        .limit(1)
    )
    country = (address or {}).get("country")
    return country if isinstance(country, str) and country else None


def correct_contact(
    session: Session, *, customer_id: str, field: Field, value: str, who: str, now: datetime
) -> ContactChangeRow | None:
    """Set the customer's ``field`` to ``value`` (already validated and normalised), re-address
    their pending and resendable messages, and record it; None if there is no such customer."""
    customer = session.get(CustomerRow, customer_id)
    if customer is None:
        return None
    old = customer.phone if field == "phone" else customer.email
    if field == "phone":
        customer.phone = value
    else:
        customer.email = value
    customer.updated_at = now
    mine = [
        NotificationRow.customer_id == customer_id,
        NotificationRow.audience != "merchant",
        NotificationRow.status.in_(_READDRESSED),
    ]
    channel = _CHANNEL[field]
    moved = session.execute(
        update(NotificationRow)
        .where(*mine, NotificationRow.channel == channel)
        .values(recipient=value, updated_at=now)
    ).rowcount  # type: ignore[attr-defined]
    # The other channel's rows carry this address as their fallback.
    session.execute(
        update(NotificationRow)
        .where(*mine, NotificationRow.channel != channel)
        .values(fallback_recipient=value, updated_at=now)
    )
    change = ContactChangeRow(
        customer_id=customer_id,
        field=field,
        old_value=old,
        new_value=value,
        who=who,
        changed_at=now,
        messages_updated=int(moved or 0),
    )
    session.add(change)
    session.flush()
    return change


def changes_for(session: Session, customer_id: str) -> list[ContactChangeRow]:
    """The customer's corrections, newest first."""
    return list(
        session.scalars(
            select(ContactChangeRow)
            .where(ContactChangeRow.customer_id == customer_id)
            .order_by(ContactChangeRow.changed_at.desc(), ContactChangeRow.id.desc())
        )
    )
