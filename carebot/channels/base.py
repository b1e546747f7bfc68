"""The channel contract: hand one rendered message to a provider, or say why not."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Channel", "ChannelKind", "ChannelWrapper", "OutboundMessage", "SendReceipt"]


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
    # The rule that planned it and the context it was rendered with, for a provider that
    # sends from its own approved templates (Alibaba Cloud) rather than from ``body``.
    rule_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


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

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        """The receipt of ``message`` if the provider already took it, on or after ``since``.

        The dispatcher asks before a retry, because an earlier attempt may have reached the
        provider without its answer being recorded (a timeout, a process killed mid-send).
        None means the provider has no such message or cannot say; the default cannot, so the
        message is sent again.
        """
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""


class ChannelWrapper(Channel):
    """A channel around another one: every call goes to ``inner`` unless overridden."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.name = inner.name

    async def ready(self) -> None:
        await self.inner.ready()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        return await self.inner.send(message)

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        return await self.inner.find_sent(message, since=since)

    async def aclose(self) -> None:
        await self.inner.aclose()
