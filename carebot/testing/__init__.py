"""Test doubles shipped with carebot: a local Twilio-compatible server.

For a channel that captures messages in memory, see ``carebot.channels.MemoryChannel``.
"""

from __future__ import annotations

from carebot.testing.twilio_server import FakeTwilioServer, Reply

__all__ = ["FakeTwilioServer", "Reply"]
