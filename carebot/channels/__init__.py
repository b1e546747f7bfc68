"""Channels: the ways carebot reaches a customer, and the factory that picks them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.channels.console import Console
from carebot.channels.memory import MemoryChannel
from carebot.channels.smtp_email import SMTPEmail
from carebot.channels.twilio_sms import TwilioSMS

if TYPE_CHECKING:
    from carebot.settings import Settings

__all__ = [
    "Channel",
    "ChannelKind",
    "Console",
    "MemoryChannel",
    "OutboundMessage",
    "SMTPEmail",
    "SendReceipt",
    "TwilioSMS",
    "build_channels",
]


def build_channels(settings: Settings) -> dict[ChannelKind, Channel]:
    """One channel per kind: the real provider when its credentials are set, else the console."""
    sms: Channel = (
        TwilioSMS(settings=settings.twilio)
        if settings.twilio.configured
        else Console(kind=ChannelKind.SMS)
    )
    email: Channel = (
        SMTPEmail(settings=settings.smtp)
        if settings.smtp.configured
        else Console(kind=ChannelKind.EMAIL)
    )
    return {ChannelKind.SMS: sms, ChannelKind.EMAIL: email}
