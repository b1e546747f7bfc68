"""The SMTP channel keeps connections open: a burst goes over at most ``concurrency`` of
them, a connection the server dropped is replaced, a refusal of one message keeps its
connection; against aiosmtpd on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from carebot.channels import ChannelKind, OutboundMessage, SMTPEmail
from carebot.exceptions import ChannelError
from carebot.settings import SmtpSettings


class Recorder:
    """Keeps each accepted message's recipient and the client port it came over."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, int]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.005)
        self.accepted.append((envelope.rcpt_tos[0], session.peer[1]))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server() -> Any:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield recorder, controller
    controller.stop()


def _channel(port: int, concurrency: int) -> SMTPEmail:
    return SMTPEmail(
        settings=SmtpSettings(
            host="127.0.0.1",
            port=port,
            sender="care@shop.example",
            starttls=False,
            timeout_seconds=5,
            concurrency=concurrency,
        )
    )


def _message(n: int) -> OutboundMessage:
    return OutboundMessage(
        notification_id=n, kind=ChannelKind.EMAIL, to=f"c{n}@example.com", subject="hi", body="你好"
    )


async def test_a_burst_goes_over_at_most_concurrency_connections(server: Any) -> None:
    recorder, controller = server
    channel = _channel(controller.port, concurrency=3)
    receipts = await asyncio.gather(*(channel.send(_message(n)) for n in range(30)))
    await channel.aclose()
    assert sorted(to for to, _ in recorder.accepted) == sorted(
        f"c{n}@example.com" for n in range(30)
    )
    assert len({r.provider_id for r in receipts}) == 30
    connections = {port for _, port in recorder.accepted}
    assert 1 <= len(connections) <= 3


async def test_a_connection_the_server_dropped_is_replaced() -> None:
    recorder, port = Recorder(), _free_port()
    first_server = Controller(recorder, hostname="127.0.0.1", port=port)
    first_server.start()
    channel = _channel(port, concurrency=1)
    try:
        await channel.send(_message(1))
    finally:
        # The server restarts: the pooled connection is dead, the next send opens a new one.
        first_server.stop()
    second_server = Controller(recorder, hostname="127.0.0.1", port=port)
    second_server.start()
    try:
        await channel.send(_message(2))
        await channel.send(_message(3))
    finally:
        await channel.aclose()
        second_server.stop()
    assert [to for to, _ in recorder.accepted] == [f"c{n}@example.com" for n in (1, 2, 3)]
    first, second, third = (port for _, port in recorder.accepted)
    assert first != second and second == third


async def test_a_refused_message_is_classified_and_its_connection_kept(server: Any) -> None:
    recorder, controller = server
    recorder.refuse.add("c2@example.com")
    channel = _channel(controller.port, concurrency=1)
    await channel.send(_message(1))
    with pytest.raises(ChannelError) as raised:
        await channel.send(_message(2))
    assert raised.value.retryable is False and raised.value.code == "550"
    await channel.send(_message(3))
    await channel.aclose()
    assert [to for to, _ in recorder.accepted] == ["c1@example.com", "c3@example.com"]
    assert len({port for _, port in recorder.accepted}) == 1
