"""What an event cancels of the pending messages: an ended order, a voided parcel, cancel_on."""

from __future__ import annotations

from carebot.events import Event, ShipmentStatus
from carebot.facts import Facts
from carebot.planning.policy import ORDER_ENDING_EVENTS, SUPPLY_EVENTS, Cancellation
from carebot.rulebook.schema import Rule, Rulebook

__all__ = ["cancellations_for"]


def _by_rules(
    event: Event, facts: Facts, order_id: str, cancelling: list[Rule]
) -> list[Cancellation]:
    """The rules whose ``cancel_on`` names this event: about the order, or the supply."""
    about_supply = [r for r in cancelling if set(r.on) <= SUPPLY_EVENTS]
    about_order = [r for r in cancelling if r not in about_supply]
    reason = f"cancelled by {event.type} ({event.id})"
    out = []
    if about_order:
        out.append(
            Cancellation(
                order_id=order_id,
                shipment_id=facts.shipment_id if event.type.startswith("shipment.") else None,
                rule_ids=tuple(r.id for r in about_order),
                reason=reason,
            )
        )
    customer_id = facts.customer_id
    if about_supply and customer_id:
        out.append(
            Cancellation(
                order_id=order_id,
                shipment_id=None,
                rule_ids=tuple(r.id for r in about_supply),
                reason=reason,
                customer_id=customer_id,
            )
        )
    return out


def cancellations_for(event: Event, facts: Facts, rulebook: Rulebook) -> list[Cancellation]:
    """The pending messages ``event`` makes moot."""
    order_id = facts.order_id or event.order_id
    if not order_id:
        return []
    if event.type in ORDER_ENDING_EVENTS:
        # Whatever the rules' cancel_on say, a cancelled or refunded order gets nothing more.
        reason = f"order {str(event.type).split('.')[1]}: {event.type} ({event.id})"
        return [
            Cancellation(
                order_id=order_id,
                shipment_id=None,
                rule_ids=None,
                reason=reason,
                customer_only=True,
            )
        ]
    shipment_id = facts.shipment_id
    if (
        event.shipment is not None
        and event.shipment.status == ShipmentStatus.CANCELLED
        and shipment_id
    ):
        # The platform voided this parcel: nothing more is said about it.
        return [
            Cancellation(
                order_id=order_id,
                shipment_id=shipment_id,
                rule_ids=None,
                reason=f"shipment cancelled: {event.type} ({event.id})",
                customer_only=True,
                exact_shipment=True,
            )
        ]
    return _by_rules(event, facts, order_id, rulebook.rules_cancelled_by(str(event.type)))
