"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import collections
import email
import email.message
import email.policy
import os
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from carebot.testing.twilio_server import DEFAULT_ACCOUNT_SID, FakeTwilioServer

# --- channel test servers: a fake Twilio API and a real SMTP server (aiosmtpd) ----------------


class SMTPTestServer:
    """An aiosmtpd server on 127.0.0.1 that keeps what it receives and can refuse on cue.

    ``script_rcpt`` / ``script_data`` queue replies such as ``"451 4.3.0 try later"`` for the
    next RCPT TO / DATA commands; once used up the server accepts again.
    """

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self._rcpt_replies: collections.deque[str] = collections.deque()
        # An outage: while set, every RCPT TO is refused with this reply.
        self.down: str | None = None
        self._data_replies: collections.deque[str] = collections.deque()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    def script_rcpt(self, replies: list[str]) -> None:
        self._rcpt_replies.extend(replies)

    def script_data(self, replies: list[str]) -> None:
        self._data_replies.extend(replies)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    # aiosmtpd handler hooks, called on the controller's thread.
    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.down is not None:
            return self.down
        if self._rcpt_replies:
            return self._rcpt_replies.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._data_replies:
            return self._data_replies.popleft()
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.envelopes.append(envelope)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    # aiosmtpd's Controller must know its port before it starts, so port 0 will not do.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def twilio_server() -> Iterator[FakeTwilioServer]:
    """A running fake Twilio API; credentials: ``DEFAULT_ACCOUNT_SID`` / ``"test-token"``."""
    with FakeTwilioServer(account_sid=DEFAULT_ACCOUNT_SID, auth_token="test-token") as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SMTPTestServer]:
    """A running SMTP server on 127.0.0.1 without TLS or AUTH."""
    server = SMTPTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- end of channel test servers ---------------------------------------------------------------


# --- PostgreSQL: a fresh database per test, cloned from a migrated template ---------------------
#
# `.ci/run` installs and starts a server and exports CAREBOT_TEST_POSTGRES_URL (a superuser URL
# to its `postgres` database). Without it the PostgreSQL tests are skipped, not failed, so the
# suite still runs on a laptop with nothing but Python.

POSTGRES_URL_VARIABLE = "CAREBOT_TEST_POSTGRES_URL"
# One template per test process, so that two runs on one server (two checkouts) do not drop
# each other's template.
_TEMPLATE_DB = f"carebot_test_template_{os.getpid()}"


def _admin_execute(admin_url: str, *statements: str) -> None:
    import psycopg

    url = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def _with_database(url: str, name: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The admin URL, once a template database migrated to head exists."""
    import os

    from carebot.store.database import Database

    admin_url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not admin_url:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_VARIABLE} (see .ci/run)")
    _admin_execute(
        admin_url,
        f"DROP DATABASE IF EXISTS {_TEMPLATE_DB} WITH (FORCE)",
        f"CREATE DATABASE {_TEMPLATE_DB}",
    )
    template = Database(_with_database(admin_url, _TEMPLATE_DB))
    template.upgrade()
    template.dispose()
    yield admin_url
    _admin_execute(admin_url, f"DROP DATABASE IF EXISTS {_TEMPLATE_DB} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A URL to a brand-new migrated database of this test's own."""
    import uuid

    name = f"carebot_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(postgres_template, f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE_DB}")
    yield _with_database(postgres_template, name).replace("postgresql://", "postgresql+psycopg://")
    _admin_execute(postgres_template, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- end of PostgreSQL --------------------------------------------------------------------------
