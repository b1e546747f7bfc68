"""The console channel: prints messages instead of sending them (the fresh-machine default)."""

from __future__ import annotations

import sys
from typing import TextIO

from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.masking import mask_recipient

__all__ = ["Console"]

_RULE = "-" * 60


class Console(Channel):
    """Print each message as a framed block; the recipient is masked.

    ``stream`` defaults to whatever ``sys.stdout`` is at send time, so output captured by a
    test runner or redirected by the CLI lands where expected.
    """

    name = "console"

    def __init__(self, *, kind: ChannelKind, stream: TextIO | None = None) -> None:
        self.kind = kind
        self._stream = stream

    async def send(self, message: OutboundMessage) -> SendReceipt:
        stream = self._stream if self._stream is not None else sys.stdout
        lines = [
            _RULE,
            f"[console {self.kind}] to {mask_recipient(message.to)} "
            f"(notification {message.notification_id})",
        ]
        if message.subject is not None:
            lines.append(f"Subject: {message.subject}")
        lines.append("")
        lines.append(message.body)
        if message.html is not None:
            lines.append("")
            lines.append(f"(plus an HTML part of {len(message.html)} characters)")
        lines.append(_RULE)
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        return SendReceipt(provider_id=f"console-{message.notification_id}", status="sent")
