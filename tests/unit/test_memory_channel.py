from __future__ import annotations

import pytest

from carebot.channels import Channel, ChannelKind, MemoryChannel, OutboundMessage
from carebot.exceptions import ChannelError


def _sms(notification_id: int = 1) -> OutboundMessage:
    return OutboundMessage(
        notification_id=notification_id,
        kind=ChannelKind.SMS,
        to="+8613800138000",
        body="您的包裹已发出",
    )


def test_the_memory_channel_is_a_channel_of_the_kind_it_was_given() -> None:
    channel = MemoryChannel(kind=ChannelKind.EMAIL)
    assert isinstance(channel, Channel)
    assert channel.kind is ChannelKind.EMAIL
    assert channel.name == "memory"


async def test_sent_messages_are_kept_in_order_with_numbered_provider_ids() -> None:
    channel = MemoryChannel(kind=ChannelKind.SMS)
    first = await channel.send(_sms(1))
    second = await channel.send(_sms(2))
    assert [m.notification_id for m in channel.sent] == [1, 2]
    assert (first.provider_id, second.provider_id) == ("memory-sms-1", "memory-sms-2")
    assert first.status == "sent"


async def test_a_channel_that_does_not_keep_only_numbers_what_it_accepts() -> None:
    channel = MemoryChannel(kind=ChannelKind.SMS, keep=False)
    channel.fail_next(ChannelError("provider down", retryable=True))
    with pytest.raises(ChannelError):
        await channel.send(_sms(1))
    receipts = [await channel.send(_sms(n)) for n in (2, 3)]
    assert [r.provider_id for r in receipts] == ["memory-sms-1", "memory-sms-2"]
    assert channel.sent == [] and channel.attempts == []


async def test_a_scripted_failure_is_raised_once_and_then_sending_works_again() -> None:
    channel = MemoryChannel(kind=ChannelKind.SMS)
    error = ChannelError("provider down", retryable=True, code="503")
    channel.fail_next(error)

    with pytest.raises(ChannelError) as raised:
        await channel.send(_sms(1))
    assert raised.value is error
    assert channel.sent == []

    receipt = await channel.send(_sms(1))
    assert receipt.provider_id == "memory-sms-1"
    assert [m.notification_id for m in channel.sent] == [1]


async def test_failures_can_be_scripted_several_times_and_attempts_count_them() -> None:
    channel = MemoryChannel(kind=ChannelKind.SMS)
    channel.fail_next(ChannelError("throttled", retryable=True, code="429"), times=2)
    channel.fail_next(ChannelError("invalid number", retryable=False, code="21211"))

    codes = []
    for _ in range(3):
        with pytest.raises(ChannelError) as raised:
            await channel.send(_sms())
        codes.append(raised.value.code)
    await channel.send(_sms())

    assert codes == ["429", "429", "21211"]
    assert len(channel.attempts) == 4
    assert len(channel.sent) == 1


def test_fail_next_refuses_a_count_below_one() -> None:
    with pytest.raises(ValueError):
        MemoryChannel(kind=ChannelKind.SMS).fail_next(ChannelError("x", retryable=True), times=0)


async def test_clear_forgets_messages_and_pending_failures() -> None:
    channel = MemoryChannel(kind=ChannelKind.SMS)
    await channel.send(_sms())
    channel.fail_next(ChannelError("x", retryable=True))
    channel.clear()

    receipt = await channel.send(_sms())
    assert receipt.provider_id == "memory-sms-1"
    assert len(channel.sent) == len(channel.attempts) == 1
