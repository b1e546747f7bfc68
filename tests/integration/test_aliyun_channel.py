"""The Alibaba Cloud SMS channel: the official SDK against the local API server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from carebot.channels import build_channels
from carebot.channels.aliyun_sms import AliyunSMS
from carebot.channels.base import ChannelKind, OutboundMessage
from carebot.channels.console import Console
from carebot.exceptions import ChannelError
from carebot.rulebook.schema import Rule, Rulebook
from carebot.settings import AliyunSettings, Settings, SmsSettings
from carebot.testing.aliyun_server import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
    FakeAliyunServer,
    Reply,
)

RULEBOOK = Rulebook(
    rules=(
        Rule.model_validate(
            {
                "id": "shipped",
                "on": "order.shipped",
                "send": {
                    "channel": "sms",
                    "template": "shipped",
                    "aliyun": {
                        "code": "SMS_465120001",
                        "params": {"name": "{{ customer.name }}", "order": "{{ order.id }}"},
                    },
                },
            }
        ),
        Rule.model_validate(
            {"id": "plain", "on": "order.shipped", "send": {"channel": "sms", "template": "x"}}
        ),
    )
)
CONTEXT = {"customer": {"name": "王芳 & 李雷"}, "order": {"id": "1001+A"}}


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunServer]:
    with FakeAliyunServer() as server:
        yield server


def settings(server: FakeAliyunServer, **changes: Any) -> AliyunSettings:
    base = AliyunSettings(
        access_key_id=DEFAULT_ACCESS_KEY_ID,
        access_key_secret=SecretStr(DEFAULT_ACCESS_KEY_SECRET),
        sign_name="小熊母婴",
        endpoint=server.endpoint,
        protocol="http",
        timeout_seconds=2,
    )
    return base.model_copy(update=changes)


def message(rule: str = "shipped", to: str = "+8613800138000") -> OutboundMessage:
    return OutboundMessage(
        notification_id=42, kind=ChannelKind.SMS, to=to, body="…", rule_id=rule, context=CONTEXT
    )


async def test_a_message_goes_out_as_the_rules_approved_template_with_rendered_params(
    aliyun: FakeAliyunServer,
) -> None:
    channel = AliyunSMS(settings=settings(aliyun), rules=lambda: RULEBOOK)
    receipt = await channel.send(message())
    [sent] = aliyun.requests
    assert sent["TemplateCode"] == "SMS_465120001"
    assert json.loads(sent["TemplateParam"]) == {"name": "王芳 & 李雷", "order": "1001+A"}
    assert sent["SignName"] == "小熊母婴"
    assert sent["PhoneNumbers"] == "13800138000"
    assert sent["OutId"] == "42"
    assert receipt.provider_id and "^" in receipt.provider_id


@pytest.mark.parametrize(
    ("reply", "retryable", "code"),
    [
        (Reply(code="isv.BUSINESS_LIMIT_CONTROL"), True, "isv.BUSINESS_LIMIT_CONTROL"),
        (Reply(code="isv.AMOUNT_NOT_ENOUGH"), True, "isv.AMOUNT_NOT_ENOUGH"),
        (Reply(code="isp.SYSTEM_ERROR"), True, "isp.SYSTEM_ERROR"),
        (Reply(code="isv.MOBILE_NUMBER_ILLEGAL"), False, "isv.MOBILE_NUMBER_ILLEGAL"),
        (Reply(code="isv.SMS_TEMPLATE_ILLEGAL"), False, "isv.SMS_TEMPLATE_ILLEGAL"),
        (Reply(code="isv.BLACK_KEY_CONTROL_LIMIT"), False, "isv.BLACK_KEY_CONTROL_LIMIT"),
        (Reply(status=503, code="ServiceUnavailable"), True, "ServiceUnavailable"),
        (Reply(status=400, code="Throttling.User"), True, "Throttling.User"),
    ],
)
async def test_provider_errors_become_retryable_or_permanent_channel_errors(
    aliyun: FakeAliyunServer, reply: Reply, retryable: bool, code: str
) -> None:
    aliyun.script([reply])
    channel = AliyunSMS(settings=settings(aliyun), rules=lambda: RULEBOOK)
    with pytest.raises(ChannelError) as caught:
        await channel.send(message())
    assert caught.value.retryable is retryable
    assert caught.value.code == code


async def test_a_wrong_secret_fails_the_servers_signature_check_and_is_permanent(
    aliyun: FakeAliyunServer,
) -> None:
    channel = AliyunSMS(
        settings=settings(aliyun, access_key_secret=SecretStr("wrong")), rules=lambda: RULEBOOK
    )
    with pytest.raises(ChannelError) as caught:
        await channel.send(message())
    assert caught.value.code == "SignatureDoesNotMatch"
    assert not caught.value.retryable
    assert aliyun.requests == []


async def test_an_unreachable_or_slow_endpoint_is_retryable_and_quotes_no_customer_data(
    aliyun: FakeAliyunServer,
) -> None:
    aliyun.script([Reply(delay=5)])
    slow = AliyunSMS(settings=settings(aliyun, timeout_seconds=0.5), rules=lambda: RULEBOOK)
    with pytest.raises(ChannelError) as caught:
        await slow.send(message())
    assert caught.value.retryable
    down = AliyunSMS(settings=settings(aliyun, endpoint="127.0.0.1:9"), rules=lambda: RULEBOOK)
    with pytest.raises(ChannelError) as refused:
        await down.send(message())
    assert refused.value.retryable
    assert "13800138000" not in str(refused.value) and "%E7%8E%8B" not in str(refused.value)


async def test_a_rule_without_an_approved_template_fails_permanently_without_a_request(
    aliyun: FakeAliyunServer,
) -> None:
    channel = AliyunSMS(settings=settings(aliyun), rules=lambda: RULEBOOK)
    with pytest.raises(ChannelError) as caught:
        await channel.send(message(rule="plain"))
    assert not caught.value.retryable and caught.value.code == "no_template"
    assert aliyun.requests == []


def test_the_provider_setting_picks_the_sms_channel(aliyun: FakeAliyunServer) -> None:
    chosen = build_channels(
        Settings(sms=SmsSettings(provider="aliyun"), aliyun=settings(aliyun)),
        rules=lambda: RULEBOOK,
    )
    assert isinstance(chosen[ChannelKind.SMS], AliyunSMS)
    unconfigured = build_channels(
        Settings(sms=SmsSettings(provider="aliyun"), aliyun=AliyunSettings()),
        rules=lambda: RULEBOOK,
    )
    assert isinstance(unconfigured[ChannelKind.SMS], Console)


async def test_a_send_that_timed_out_is_found_at_alibaba_cloud_before_a_retry(
    aliyun: FakeAliyunServer,
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    aliyun.script([Reply(delay=2)])  # Alibaba Cloud takes it but answers too late
    channel = AliyunSMS(settings=settings(aliyun, timeout_seconds=0.5), rules=lambda: RULEBOOK)
    with pytest.raises(ChannelError) as caught:
        await channel.send(message())
    assert caught.value.retryable
    assert aliyun.wait_for(1, accepted=True)
    found = await channel.find_sent(message(), since=since)
    assert found is not None
    other = OutboundMessage(
        notification_id=43, kind=ChannelKind.SMS, to="+8613800138000", body="…", rule_id="shipped"
    )
    assert await channel.find_sent(other, since=since) is None
    assert aliyun.lookups >= 2
