"""Channels: the ways carebot reaches a customer, and the factory that picks them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.channels.console import Console
from carebot.channels.memory import MemoryChannel
from carebot.channels.smtp_email import SMTPEmail
from carebot.channels.twilio_sms import TwilioSMS

if TYPE_CHECKING:
    from carebot.rulebook.schema import Rulebook
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


def build_channels(
    settings: Settings, *, rules: Callable[[], Rulebook] | None = None
) -> dict[ChannelKind, Channel]:
    """One channel per kind: the real provider when its credentials are set, else the console.

    ``CAREBOT_SMS__PROVIDER`` picks the SMS provider; Alibaba Cloud also needs the live rules
    (``rules``), which name each rule's approved template.
    """
    sms: Channel = Console(kind=ChannelKind.SMS)
    if settings.sms.provider == "aliyun":
        if settings.aliyun.configured and rules is not None:
            # Imported here: the SDK is the optional ``carebot[aliyun]`` extra.
            from carebot.channels.aliyun_sms import AliyunSMS

            sms = AliyunSMS(settings=settings.aliyun, rules=rules)
    elif settings.twilio.configured:
        sms = TwilioSMS(settings=settings.twilio)
    email: Channel = (
        SMTPEmail(settings=settings.smtp)
        if settings.smtp.configured
        else Console(kind=ChannelKind.EMAIL)
    )
    return {ChannelKind.SMS: sms, ChannelKind.EMAIL: email}
