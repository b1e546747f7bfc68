"""Channel fallback: the same notice on the other channel when the first is refused."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from carebot.channels.base import ChannelKind
from carebot.notifications import NotificationStatus, PlannedNotification
from carebot.store import schedule
from carebot.store.schedule import Claimed


def fallback_for(row: Claimed, now: datetime) -> PlannedNotification | None:
    """The same notice on the other channel, when the rule named one and this is not it."""
    if not row.fallback_recipient:
        return None
    channel = ChannelKind.EMAIL if row.channel == ChannelKind.SMS else ChannelKind.SMS
    return PlannedNotification(
        dedupe_key=f"{row.dedupe_key}:fallback",
        rule_id=row.rule_id,
        channel=str(channel),
        recipient=row.fallback_recipient,
        template=row.template,
        locale=row.locale,
        timezone=row.timezone,
        window=row.window,
        due_at=max(now, row.due_at),
        not_after=row.not_after,
        context=row.context,
        order_id=row.order_id,
        customer_id=row.customer_id,
        shipment_id=row.shipment_id,
        event_id=row.event_id,
        max_attempts=row.max_attempts,
        transactional=row.transactional,
        in_doubt=row.in_doubt,
    )


def finish_and_fall_back(
    session: Session,
    *,
    notification_id: int,
    status: NotificationStatus,
    reason: str,
    now: datetime,
    error: str | None,
    fallback: PlannedNotification | None,
    unexpected: bool = False,
) -> None:
    # One transaction: the row never ends without its fallback being scheduled.
    schedule.finish(
        session,
        notification_id=notification_id,
        status=status,
        reason=reason,
        now=now,
        error=error,
        unexpected=unexpected,
    )
    if fallback is not None:
        schedule.insert_planned(session, [fallback], now=now)
