"""Alibaba Cloud SMS pushes: delivery receipts (SmsReport) and replies (SmsUp), as JSON arrays.

Alibaba Cloud's HTTP batch push (HTTP批量推送) POSTs a JSON array to the configured URL and
expects ``{"code": 0, "msg": "成功"}``; any other answer is pushed again later. A receipt names
the message by ``out_id`` (carebot sends the notification id there) and ``biz_id``; a reply
carries ``sequence_id``, unique per reply, which deduplicates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carebot import inbound
from carebot.events import Event
from carebot.exceptions import SourceError
from carebot.notifications import NotificationStatus
from carebot.sources._common import text

__all__ = ["ACCEPTED", "Receipt", "Reply", "e164", "parse_receipts", "parse_replies", "reply_event"]

ACCEPTED = {"code": 0, "msg": "成功"}


@dataclass(frozen=True)
class Receipt:
    """One SmsReport entry: the final word on one message."""

    notification_id: int | None  # from out_id; None when the message was not carebot's
    provider_id: str | None
    status: NotificationStatus
    provider_status: str
    reason: str | None


@dataclass(frozen=True)
class Reply:
    """One SmsUp entry: a customer's text to the shop's signature."""

    sequence_id: str
    sender: str  # E.164
    body: str
    sign_name: str | None


def e164(number: str) -> str:
    """A pushed number as E.164: a bare 11-digit mainland number gets +86."""
    digits = number.strip()
    if digits.startswith("+"):
        return digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return "+" + digits


def _entries(payload: Any, what: str) -> list[dict[str, Any]]:
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
        raise SourceError(f"{what} push is not a JSON array of objects")
    return payload


def parse_receipts(payload: Any) -> list[Receipt]:
    """The receipts of one SmsReport push; ``SourceError`` when it is not one."""
    receipts = []
    for entry in _entries(payload, "SmsReport"):
        success = entry.get("success")
        if not isinstance(success, bool):
            raise SourceError("SmsReport entry without a true/false success")
        code = text(entry.get("err_code")) or ("DELIVERED" if success else "UNKNOWN")
        out_id = text(entry.get("out_id"))
        reason = None
        if not success:
            detail = text(entry.get("err_msg"))
            reason = f"Alibaba Cloud reported {code}" + (f" ({detail})" if detail else "")
        receipts.append(
            Receipt(
                notification_id=int(out_id) if out_id and out_id.isdigit() else None,
                provider_id=text(entry.get("biz_id")),
                status=NotificationStatus.DELIVERED if success else NotificationStatus.UNDELIVERED,
                provider_status=code,
                reason=reason,
            )
        )
    return receipts


def parse_replies(payload: Any) -> list[Reply]:
    """The replies of one SmsUp push; ``SourceError`` when one lacks its number or id."""
    replies = []
    for entry in _entries(payload, "SmsUp"):
        number = text(entry.get("phone_number"))
        sequence = text(entry.get("sequence_id"))
        if number is None or sequence is None:
            raise SourceError("SmsUp entry without phone_number or sequence_id")
        replies.append(
            Reply(
                sequence_id=sequence,
                sender=e164(number),
                body=str(entry.get("content") or ""),
                sign_name=text(entry.get("sign_name")),
            )
        )
    return replies


def reply_event(reply: Reply, *, received_at: datetime) -> Event:
    """The ``message.received`` event of a reply; its id is unique per ``sequence_id``."""
    return inbound.reply_event(
        provider="aliyun",
        message_id=reply.sequence_id,
        sender=reply.sender,
        body=reply.body,
        received_at=received_at,
    )
