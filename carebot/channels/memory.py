"""The capturing channel: keeps what it was asked to send, for tests and ``carebot simulate``."""

from __future__ import annotations

from collections import deque

from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt

__all__ = ["MemoryChannel"]


class MemoryChannel(Channel):
    """A channel that sends nothing and remembers everything.

    Use it wherever a real provider is not wanted::

        sms = MemoryChannel(kind=ChannelKind.SMS)
        sms.fail_next(ChannelError("provider down", retryable=True), times=2)
        ...  # run the dispatcher
        assert [m.to for m in sms.sent] == ["+8613800138000"]

    ``sent`` holds the messages it accepted, in order; ``attempts`` holds every call to
    ``send``, failed ones included. Receipts carry ``memory-{kind}-{n}`` as provider id, where
    ``n`` counts accepted messages from 1. With ``keep=False`` it only counts (``carebot
    simulate`` reads what was sent from the database, and a replay of tens of thousands of
    messages would otherwise hold each one with its whole render context).
    """

    name = "memory"

    def __init__(self, *, kind: ChannelKind, keep: bool = True) -> None:
        self.kind = kind
        self.keep = keep
        self.sent: list[OutboundMessage] = []
        self.attempts: list[OutboundMessage] = []
        self._accepted = 0
        self._failures: deque[Exception] = deque()

    def fail_next(self, error: Exception, times: int = 1) -> None:
        """Make the next ``times`` calls to ``send`` raise ``error`` (after any already queued).

        Usually a ``ChannelError``; any other exception stands for a bug or a message the
        provider's client cannot handle (a poison row)."""
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._failures.extend([error] * times)

    def clear(self) -> None:
        """Forget sent messages, attempts and pending failures."""
        self.sent.clear()
        self.attempts.clear()
        self._accepted = 0
        self._failures.clear()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if self.keep:
            self.attempts.append(message)
        if self._failures:
            raise self._failures.popleft()
        if self.keep:
            self.sent.append(message)
        self._accepted += 1
        return SendReceipt(provider_id=f"memory-{self.kind}-{self._accepted}", status="sent")
