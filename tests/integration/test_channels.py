"""The channel adapters against real protocol servers: a local Twilio API and aiosmtpd."""

from __future__ import annotations

import asyncio
import io
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from carebot.channels import (
    ChannelKind,
    Console,
    OutboundMessage,
    SMTPEmail,
    TwilioSMS,
    build_channels,
)
from carebot.exceptions import ChannelError
from carebot.settings import Settings, SmtpSettings, TwilioSettings
from carebot.testing import FakeTwilioServer, Reply
from carebot.testing.twilio_server import DEFAULT_ACCOUNT_SID

if TYPE_CHECKING:
    from conftest import SMTPTestServer  # tests/ is on sys.path; only for annotations

PHONE = "+8613800138000"
FROM_NUMBER = "+15005550006"
CALLBACK = "https://care.example.com/twilio/status?notification=7"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _twilio(base_url: str, **overrides: object) -> TwilioSMS:
    fields: dict[str, object] = {
        "account_sid": DEFAULT_ACCOUNT_SID,
        "auth_token": SecretStr("test-token"),
        "from_number": FROM_NUMBER,
        "base_url": base_url,
        "timeout_seconds": 2.0,
    }
    fields.update(overrides)
    return TwilioSMS(settings=TwilioSettings.model_validate(fields))


def _sms(
    body: str = "您的订单 1001 已发货，顺丰单号 SF1234567890。",
    *,
    status_callback: str | None = CALLBACK,
) -> OutboundMessage:
    return OutboundMessage(
        notification_id=7,
        kind=ChannelKind.SMS,
        to=PHONE,
        body=body,
        status_callback=status_callback,
    )


async def _twilio_error(channel: TwilioSMS, message: OutboundMessage) -> ChannelError:
    with pytest.raises(ChannelError) as raised:
        await channel.send(message)
    return raised.value


# --- Twilio -------------------------------------------------------------------------------------


async def test_an_accepted_sms_returns_the_twilio_sid_and_sends_every_field(
    twilio_server: FakeTwilioServer,
) -> None:
    channel = _twilio(twilio_server.base_url, validity_period_seconds=3600)

    receipt = await channel.send(_sms())

    assert receipt.provider_id is not None
    assert receipt.provider_id.startswith("SM")
    assert len(receipt.provider_id) == 34
    assert receipt.status == "queued"
    assert receipt.segments == 1
    [request] = twilio_server.requests
    assert request == {
        "To": PHONE,
        "From": FROM_NUMBER,
        "Body": "您的订单 1001 已发货，顺丰单号 SF1234567890。",
        "StatusCallback": CALLBACK,
        "ValidityPeriod": "3600",
    }
    await channel.aclose()


async def test_no_status_callback_is_sent_when_the_message_has_none(
    twilio_server: FakeTwilioServer,
) -> None:
    channel = _twilio(twilio_server.base_url)
    await channel.send(_sms(status_callback=None))
    assert "StatusCallback" not in twilio_server.requests[0]


async def test_a_long_chinese_sms_reports_its_segments(twilio_server: FakeTwilioServer) -> None:
    receipt = await _twilio(twilio_server.base_url).send(_sms("快" * 80))
    assert receipt.segments == 2


async def test_a_twilio_server_error_is_retryable(twilio_server: FakeTwilioServer) -> None:
    twilio_server.script([Reply(status=500)])
    error = await _twilio_error(_twilio(twilio_server.base_url), _sms())
    assert error.retryable is True
    assert error.code == "20500"
    assert isinstance(error.__cause__, Exception)


async def test_throttling_is_retryable_and_carries_retry_after(
    twilio_server: FakeTwilioServer,
) -> None:
    twilio_server.script([Reply(status=429, retry_after=3)])
    error = await _twilio_error(_twilio(twilio_server.base_url), _sms())
    assert error.retryable is True
    assert error.code == "20429"
    assert error.retry_after == 3.0


async def test_retry_after_is_none_when_twilio_does_not_send_it(
    twilio_server: FakeTwilioServer,
) -> None:
    twilio_server.script([Reply(status=503)])
    error = await _twilio_error(_twilio(twilio_server.base_url), _sms())
    assert error.retryable is True
    assert error.retry_after is None


async def test_an_invalid_number_is_permanent_and_names_the_twilio_code(
    twilio_server: FakeTwilioServer,
) -> None:
    twilio_server.script(
        [
            Reply(
                status=400,
                code=21211,
                message="The 'To' number +8613800138000 is not a valid phone number.",
            )
        ]
    )
    error = await _twilio_error(_twilio(twilio_server.base_url), _sms())
    assert error.retryable is False
    assert error.code == "21211"
    assert str(error).startswith("twilio 21211: The 'To' number ")
    assert "is not a valid phone number" in str(error)
    assert PHONE not in str(error)


async def test_wrong_credentials_are_permanent(twilio_server: FakeTwilioServer) -> None:
    channel = _twilio(twilio_server.base_url, auth_token=SecretStr("wrong"))
    error = await _twilio_error(channel, _sms())
    assert error.retryable is False
    assert error.code == "20003"
    assert twilio_server.requests == []


async def test_an_unreachable_twilio_is_retryable() -> None:
    channel = _twilio(f"http://127.0.0.1:{_closed_port()}")
    error = await _twilio_error(channel, _sms())
    assert error.retryable is True
    assert error.code is None


async def test_a_hanging_twilio_times_out_as_retryable(twilio_server: FakeTwilioServer) -> None:
    twilio_server.script([Reply(delay=5)])
    channel = _twilio(twilio_server.base_url, timeout_seconds=0.3)
    error = await _twilio_error(channel, _sms())
    assert error.retryable is True
    assert "Timeout" in str(error)


async def test_find_sent_returns_the_receipt_of_the_message_twilio_already_has(
    twilio_server: FakeTwilioServer,
) -> None:
    channel = _twilio(twilio_server.base_url)
    before = datetime.now(UTC)
    assert await channel.find_sent(_sms(), since=before) is None
    receipt = await channel.send(_sms())
    found = await channel.find_sent(_sms(), since=before)
    assert found is not None and found.provider_id == receipt.provider_id
    # Another text, another number, or a message older than the notification is not it.
    assert await channel.find_sent(_sms("another text"), since=before) is None
    assert await channel.find_sent(replace(_sms(), to="+8613900139000"), since=before) is None
    assert await channel.find_sent(_sms(), since=before + timedelta(hours=1)) is None
    assert twilio_server.lookups == 5
    assert len(twilio_server.requests) == 1, "a lookup created a message"


async def test_a_lookup_that_cannot_reach_twilio_is_retryable() -> None:
    channel = _twilio(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ChannelError) as caught:
        await channel.find_sent(_sms(), since=datetime.now(UTC))
    assert caught.value.retryable is True
    assert "lookup" in str(caught.value)


async def test_no_more_sends_are_in_flight_than_the_concurrency_setting(
    twilio_server: FakeTwilioServer,
) -> None:
    twilio_server.latency = 0.1
    channel = _twilio(twilio_server.base_url, concurrency=2)
    receipts = await asyncio.gather(*(channel.send(_sms()) for _ in range(6)))
    assert len({r.provider_id for r in receipts}) == 6
    assert twilio_server.max_concurrent == 2


# --- SMTP ---------------------------------------------------------------------------------------


def _smtp(server: SMTPTestServer, **overrides: object) -> SMTPEmail:
    fields: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "sender": "Care Shop <care@shop.example>",
        "starttls": False,
        "timeout_seconds": 2.0,
    }
    fields.update(overrides)
    return SMTPEmail(settings=SmtpSettings.model_validate(fields))


def _email(message_id: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        notification_id=7,
        kind=ChannelKind.EMAIL,
        to="wang@example.com",
        subject="您的包裹已发出",
        body="王芳您好，您的奶粉已经在路上了。",
        html="<p>王芳您好，您的<b>奶粉</b>已经在路上了。</p>",
        message_id=message_id,
        headers={"List-Unsubscribe": "<https://care.example.com/unsubscribe/abc>"},
    )


async def _smtp_error(channel: SMTPEmail) -> ChannelError:
    with pytest.raises(ChannelError) as raised:
        await channel.send(_email())
    return raised.value


async def test_a_chinese_email_arrives_as_text_and_html_alternatives(
    smtp_server: SMTPTestServer,
) -> None:
    receipt = await _smtp(smtp_server).send(_email())

    [received] = smtp_server.messages
    assert received["Subject"] == "您的包裹已发出"
    assert received["To"] == "wang@example.com"
    assert received["Message-ID"] == "<carebot-7@shop.example>"
    assert received["List-Unsubscribe"] == "<https://care.example.com/unsubscribe/abc>"
    assert received["Date"] is not None
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert text.get_content().strip() == "王芳您好，您的奶粉已经在路上了。"
    assert "<b>奶粉</b>" in html.get_content()
    assert receipt.provider_id == "<carebot-7@shop.example>"
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "care@shop.example"
    assert envelope.rcpt_tos == ["wang@example.com"]


async def test_a_given_message_id_is_used_as_is(smtp_server: SMTPTestServer) -> None:
    receipt = await _smtp(smtp_server).send(_email("<n-7.attempt@care.example>"))
    assert smtp_server.messages[0]["Message-ID"] == "<n-7.attempt@care.example>"
    assert receipt.provider_id == "<n-7.attempt@care.example>"


def test_an_email_without_html_is_a_single_text_part() -> None:
    channel = SMTPEmail(settings=SmtpSettings(host="localhost", sender="care@shop.example"))
    message = OutboundMessage(
        notification_id=1, kind=ChannelKind.EMAIL, to="a@b.example", subject="hi", body="你好"
    )
    built = channel.build_message(message)
    assert built.get_content_type() == "text/plain"
    assert built.get_content_charset() == "utf-8"


@pytest.mark.parametrize("stage", ["rcpt", "data"])
async def test_a_temporary_smtp_refusal_is_retryable(
    smtp_server: SMTPTestServer, stage: str
) -> None:
    reply = ["451 4.3.0 try later"]
    smtp_server.script_rcpt(reply) if stage == "rcpt" else smtp_server.script_data(reply)
    error = await _smtp_error(_smtp(smtp_server))
    assert error.retryable is True
    assert error.code == "451"
    assert smtp_server.messages == []


async def test_an_unknown_mailbox_is_permanent(smtp_server: SMTPTestServer) -> None:
    smtp_server.script_rcpt(["550 5.1.1 <wang@example.com>: no such user"])
    error = await _smtp_error(_smtp(smtp_server))
    assert error.retryable is False
    assert error.code == "550"
    assert "no such user" in str(error)
    assert "wang@example.com" not in str(error)


async def test_a_permanent_refusal_of_the_content_is_not_retried(
    smtp_server: SMTPTestServer,
) -> None:
    smtp_server.script_data(["554 5.7.1 message rejected as spam"])
    error = await _smtp_error(_smtp(smtp_server))
    assert error.retryable is False
    assert error.code == "554"


async def test_an_smtp_server_that_is_down_is_retryable() -> None:
    channel = SMTPEmail(
        settings=SmtpSettings(
            host="127.0.0.1",
            port=_closed_port(),
            sender="care@shop.example",
            starttls=False,
            timeout_seconds=2,
        )
    )
    error = await _smtp_error(channel)
    assert error.retryable is True
    assert error.code is None


async def test_starttls_required_but_not_offered_sends_nothing_in_plain_text(
    smtp_server: SMTPTestServer,
) -> None:
    error = await _smtp_error(_smtp(smtp_server, starttls=True))
    assert error.retryable is True
    assert smtp_server.messages == []


# --- Console and the factory --------------------------------------------------------------------


async def test_the_console_prints_a_masked_recipient_and_the_message() -> None:
    out = io.StringIO()
    receipt = await Console(kind=ChannelKind.EMAIL, stream=out).send(_email())

    printed = out.getvalue()
    assert "[console email] to w***@example.com (notification 7)" in printed
    assert "wang@example.com" not in printed
    assert "Subject: 您的包裹已发出" in printed
    assert "王芳您好，您的奶粉已经在路上了。" in printed
    assert receipt.provider_id == "console-7"


async def test_the_console_masks_a_phone_number(capsys: pytest.CaptureFixture[str]) -> None:
    await Console(kind=ChannelKind.SMS).send(_sms())
    printed = capsys.readouterr().out
    assert "[console sms] to +86138****8000 (notification 7)" in printed
    assert PHONE not in printed


def test_without_credentials_both_kinds_fall_back_to_the_console() -> None:
    channels = build_channels(Settings(twilio=TwilioSettings(), smtp=SmtpSettings()))
    assert isinstance(channels[ChannelKind.SMS], Console)
    assert isinstance(channels[ChannelKind.EMAIL], Console)
    assert channels[ChannelKind.SMS].kind is ChannelKind.SMS


def test_with_credentials_the_real_providers_are_used() -> None:
    settings = Settings(
        twilio=TwilioSettings(account_sid="AC1", auth_token=SecretStr("t"), from_number="+1500"),
        smtp=SmtpSettings(host="smtp.example.com", sender="care@shop.example"),
    )
    channels = build_channels(settings)
    assert isinstance(channels[ChannelKind.SMS], TwilioSMS)
    assert isinstance(channels[ChannelKind.EMAIL], SMTPEmail)


# --- the fake Twilio server itself ----------------------------------------------------------------


async def test_the_fake_twilio_server_says_whether_enough_requests_arrived(
    twilio_server: FakeTwilioServer,
) -> None:
    assert twilio_server.wait_for(1, timeout=0.05) is False
    await _twilio(twilio_server.base_url).send(_sms())
    assert twilio_server.wait_for(1, timeout=1) is True
    twilio_server.reset()
    assert twilio_server.requests == []


def test_a_stopped_fake_twilio_server_has_no_base_url() -> None:
    server = FakeTwilioServer()
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError):
        _ = server.base_url


def _raw_post(server: FakeTwilioServer, body: bytes, *, length: int) -> bytes:
    """POST a Messages request by hand; ``length`` may promise more than ``body`` holds."""
    from base64 import b64encode
    from urllib.parse import urlsplit

    address = urlsplit(server.base_url)
    credentials = b64encode(f"{server.account_sid}:{server.auth_token}".encode()).decode()
    head = (
        f"POST /2010-04-01/Accounts/{server.account_sid}/Messages.json HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\nAuthorization: Basic {credentials}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)  # the sender is gone: nothing more will come
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


def test_the_fake_twilio_server_ignores_a_request_cut_off_mid_body(
    twilio_server: FakeTwilioServer,
) -> None:
    body = b"To=%2B8613800000001&From=%2B15005550006&Body=hello"
    assert _raw_post(twilio_server, body[:10], length=len(body)) == b""
    assert twilio_server.requests == []
    assert twilio_server.accepted == []
    # The whole request is taken.
    status_line = _raw_post(twilio_server, body, length=len(body)).split(b"\r\n")[0]
    assert status_line.split()[1] == b"201"
    assert [r["To"] for r in twilio_server.accepted] == ["+8613800000001"]


def test_the_fake_twilio_server_refuses_a_message_without_a_recipient(
    twilio_server: FakeTwilioServer,
) -> None:
    body = b"From=%2B15005550006&Body=hello"
    answer = _raw_post(twilio_server, body, length=len(body))
    assert answer.split(b"\r\n")[0].split()[1] == b"400"
    assert b"21604" in answer
    assert twilio_server.accepted == []
