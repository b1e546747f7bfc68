"""Notification values shared by the planner, the store and the dispatcher."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carebot.clock import check_aware

__all__ = ["ACTIVE_STATUSES", "TERMINAL_STATUSES", "NotificationStatus", "PlannedNotification"]


class NotificationStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


ACTIVE_STATUSES = frozenset(
    {NotificationStatus.SCHEDULED, NotificationStatus.CLAIMED, NotificationStatus.SENDING}
)
TERMINAL_STATUSES = frozenset(set(NotificationStatus) - ACTIVE_STATUSES)


@dataclass(frozen=True)
class PlannedNotification:
    """One intended message, as the planner decides it; the store makes it durable."""

    dedupe_key: str
    rule_id: str
    channel: str
    recipient: str | None
    template: str
    locale: str
    timezone: str
    window: str | None
    due_at: datetime
    not_after: datetime
    context: dict[str, Any]
    order_id: str | None = None
    customer_id: str | None = None
    shipment_id: str | None = None
    event_id: str | None = None
    max_attempts: int = 6
    transactional: bool = False
    in_doubt: str = "resend"
    status: NotificationStatus = NotificationStatus.SCHEDULED
    reason: str | None = None
    # The other channel's address, when the rule lets dispatch fall back to it.
    fallback_recipient: str | None = None
    # ``merchant`` for alerts to the shop (see ``rulebook.schema.Audience``).
    audience: str = "customer"
    why: list[str] = field(default_factory=list)
    # The rule's ``wait_for`` holds: a row of this dedupe key still waiting for it (scheduled)
    # is brought forward to ``due_at`` with this context (see ``schedule.release_waiting``).
    release_wait: bool = False

    def __post_init__(self) -> None:
        check_aware(self.due_at, "due_at")
        check_aware(self.not_after, "not_after")
