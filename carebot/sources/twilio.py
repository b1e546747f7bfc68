"""Twilio callbacks: message status receipts and inbound SMS replies (form-encoded).

Reply keywords (STOP, 退订, START…) are not Twilio's: they live in ``carebot.inbound``, the one
consent path of every inbound route, and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from twilio.request_validator import RequestValidator

from carebot.events import Event
from carebot.exceptions import SourceError
from carebot.inbound import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    Reply,
    classify_reply,
    reply_event,
)
from carebot.notifications import NotificationStatus

__all__ = [
    "HELP_KEYWORDS",
    "OPTED_OUT_ERROR",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "SIGNATURE_HEADER",
    "Reply",
    "StatusUpdate",
    "classify_reply",
    "inbound_event",
    "status_update",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Twilio-Signature"
OPTED_OUT_ERROR = "21610"


_FINAL_STATUSES = {
    "delivered": NotificationStatus.DELIVERED,
    "undelivered": NotificationStatus.UNDELIVERED,
    "failed": NotificationStatus.FAILED,
}


@dataclass(frozen=True)
class StatusUpdate:
    """What one status callback says about a notification."""

    status: NotificationStatus | None  # None: an intermediate status, only recorded
    provider_status: str
    provider_id: str | None
    reason: str | None
    # The number that opted out (error 21610): it must not be messaged again.
    opted_out: str | None = None


def verify_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """Twilio's ``X-Twilio-Signature`` over the full URL and the POST parameters."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def status_update(params: Mapping[str, str]) -> StatusUpdate:
    """Read a status callback; ``SourceError`` when it names no status."""
    raw = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not raw:
        raise SourceError("MessageStatus is missing")
    code = (params.get("ErrorCode") or "").strip() or None
    status = _FINAL_STATUSES.get(raw)
    reason = None
    if status is not None and status != NotificationStatus.DELIVERED:
        reason = f"Twilio reported {raw}" + (f" (error {code})" if code else "")
    opted_out = (params.get("To") or "").strip() or None if code == OPTED_OUT_ERROR else None
    return StatusUpdate(
        status=status,
        provider_status=raw,
        provider_id=(params.get("MessageSid") or params.get("SmsSid") or "").strip() or None,
        reason=reason,
        opted_out=opted_out,
    )


def inbound_event(params: Mapping[str, str], *, received_at: datetime) -> Event:
    """A ``message.received`` event for an inbound SMS; ``SourceError`` without From/Sid."""
    sender = (params.get("From") or "").strip()
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    if not sender or not sid:
        raise SourceError("inbound message without From or MessageSid")
    return reply_event(
        provider="twilio",
        message_id=sid,
        sender=sender,
        body=params.get("Body") or "",
        received_at=received_at,
    )
