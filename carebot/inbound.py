"""Inbound replies: the one consent path every customer message takes, whatever its route.

A reply reaches carebot as a ``message.received`` event: from Twilio's inbound webhook, as a
canonical event on ``/webhooks/carebot``, in ``carebot simulate``, or from any other SMS
provider's inbound adapter (which calls ``receive_reply``). The pipeline stores the event once
per (source, id) — the id is the provider's message id — and only a newly stored reply reaches
``apply_reply``: a replayed "START" cannot re-subscribe a number that has since sent "STOP".

Keywords follow Twilio's Advanced Opt-Out defaults plus the Chinese 退订 / TD / T; a keyword
counts only as the whole message (trimmed, any case).
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from carebot.contacts import normalize_phone, valid_email
from carebot.events import Event, EventType, InboundMessage
from carebot.store import consent

if TYPE_CHECKING:
    from carebot.pipeline import IngestResult, Pipeline

__all__ = [
    "HELP_KEYWORDS",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "Reply",
    "apply_reply",
    "classify_reply",
    "receive_reply",
    "reply_event",
]

logger = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "退订",
        "TD",
        "T",
    }
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})


class Reply(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    MESSAGE = "message"


def classify_reply(body: str) -> Reply:
    """Which kind of reply ``body`` is: a keyword only when it is the whole message."""
    word = body.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return Reply.OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return Reply.OPT_IN
    if word in HELP_KEYWORDS:
        return Reply.HELP
    return Reply.MESSAGE


def _address(message: InboundMessage) -> tuple[str, str] | None:
    """(channel, address) as consent is kept for the sender, or None when it is no address."""
    sender = message.from_.strip()
    if message.channel == "email" or valid_email(sender):
        return ("email", sender.lower()) if valid_email(sender) else None
    phone = normalize_phone(sender)
    return ("sms", phone) if phone else (("sms", sender) if sender else None)


def apply_reply(session: Session, event: Event, *, source: str) -> Reply | None:
    """Apply a newly stored ``message.received``: a keyword changes the sender's consent.

    Called by the pipeline, in the transaction that stored the event, for every route. Returns
    the kind of reply (None for an event without a message); only ``Reply.MESSAGE`` may be an
    answer to a feedback request.
    """
    message = event.message
    if message is None:
        return None
    kind = classify_reply(message.body)
    if kind not in (Reply.OPT_OUT, Reply.OPT_IN):
        return kind
    found = _address(message)
    if found is None:
        return kind
    channel, address = found
    consent.set_consent(
        session,
        channel=channel,
        address=address,
        opted_out=kind == Reply.OPT_OUT,
        source=f"{source}:inbound",
        now=event.occurred_at,
    )
    logger.info(
        "consent changed by a reply",
        extra={"action": "reply_consent", "channel": channel, "opted_out": kind == Reply.OPT_OUT},
    )
    return kind


def reply_event(
    *,
    provider: str,
    message_id: str,
    sender: str,
    body: str,
    received_at: datetime,
    channel: str = "sms",
) -> Event:
    """The ``message.received`` of one inbound message; its id is the provider's message id."""
    return Event(
        id=f"{provider}:{message_id}",
        type=EventType.MESSAGE_RECEIVED,
        occurred_at=received_at,
        message=InboundMessage(channel=channel, from_=sender, body=body),
    )


def receive_reply(
    pipeline: Pipeline,
    *,
    provider: str,
    message_id: str,
    sender: str,
    body: str,
    received_at: datetime,
    channel: str = "sms",
) -> IngestResult:
    """Take one inbound message from an SMS provider's webhook through the consent path.

    The same ``message_id`` from the same ``provider`` twice is stored once and changes
    nothing the second time (``IngestResult.duplicate``).
    """
    event = reply_event(
        provider=provider,
        message_id=message_id,
        sender=sender,
        body=body,
        received_at=received_at,
        channel=channel,
    )
    return pipeline.ingest(event, source=provider, delivery_id=message_id)
