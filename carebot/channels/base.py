"""The channel contract: hand one rendered message to a provider, or say why not."""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field

__all__ = ["Channel", "ChannelKind", "OutboundMessage", "SendReceipt"]


class ChannelKind(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


@dataclass(frozen=True)
class OutboundMessage:
    """A message ready to leave: rendered, addressed, and tied to its notification row."""

    notification_id: int
    kind: ChannelKind
    to: str  # E.164 phone number or an email address
    body: str  # the SMS text, or the plain-text part of an email
    subject: str | None = None
    html: str | None = None
    # Deterministic per notification, so a resent email is recognisably the same message.
    message_id: str | None = None
    # Twilio: where delivery receipts for this message go (it names the notification).
    status_callback: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendReceipt:
    """What the provider said when it accepted the message."""

    provider_id: str | None
    status: str = "sent"
    segments: int | None = None


class Channel(abc.ABC):
    """One way to reach a customer.

    ``send`` either returns a receipt (the provider accepted the message) or raises
    ``carebot.exceptions.ChannelError`` with ``retryable`` set; vendor exceptions never leave
    an adapter.
    """

    kind: ChannelKind
    name: str

    async def ready(self) -> None:  # noqa: B027 - optional hook
        """Wait until the provider may take one more message (its rate limit).

        The dispatcher awaits this before it commits a row as ``sending``, so a message that
        waits for its turn is still only ``claimed`` and never in doubt. The default never waits.
        """

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendReceipt: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""
