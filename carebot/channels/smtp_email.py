"""Email through an SMTP server (aiosmtplib)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING

import aiosmtplib

from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.exceptions import ChannelError, ConfigError
from carebot.masking import mask_email, mask_text

if TYPE_CHECKING:
    from carebot.settings import SmtpSettings

__all__ = ["SMTPEmail"]

logger = logging.getLogger(__name__)

# Port 465 speaks TLS from the first byte (SMTPS, what many mail hosts in China offer);
# STARTTLS there would hang waiting for a plain-text greeting.
_IMPLICIT_TLS_PORT = 465
# Messages sent over one connection before it is closed and a new one opened (servers limit
# it, e.g. Postfix's smtpd_recipient_limit / Exchange's 100 per connection), and how long a
# connection may sit idle before it is checked with a NOOP before reuse.
MESSAGES_PER_CONNECTION = 100
IDLE_CHECK_SECONDS = 10.0


class SMTPEmail(Channel):
    """Send one email per message over a small pool of open SMTP connections.

    At most ``settings.concurrency`` connections are open, each carrying one message at a
    time; a connection is reused for up to ``MESSAGES_PER_CONNECTION`` messages (servers cap
    it), checked with a NOOP when it sat idle, and dropped when it fails: the next send opens
    a new one. A server's 4xx/5xx answer to one message leaves its connection in the pool
    (aiosmtplib resets the envelope) and is classified as before.
    """

    kind = ChannelKind.EMAIL
    name = "smtp"

    def __init__(self, *, settings: SmtpSettings) -> None:
        if not settings.configured or settings.host is None or settings.sender is None:
            raise ConfigError("smtp needs host and sender")
        self._settings = settings
        self._host = settings.host
        self._sender = settings.sender
        self._sender_address = parseaddr(settings.sender)[1] or settings.sender
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        # Idle connections, with how many messages each carried and when it was last used.
        self._idle: list[_Connection] = []

    def build_message(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message as it will be sent: text part, and an HTML alternative if given."""
        msg = EmailMessage()
        msg["From"] = self._sender
        msg["To"] = message.to
        msg["Subject"] = message.subject or ""
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message.message_id or self._default_message_id(message)
        for name, value in message.headers.items():
            # Extra headers (List-Unsubscribe, ...) replace ours rather than duplicate them.
            del msg[name]
            msg[name] = value
        msg.set_content(message.body, charset="utf-8")
        if message.html is not None:
            msg.add_alternative(message.html, subtype="html", charset="utf-8")
        return msg

    async def send(self, message: OutboundMessage) -> SendReceipt:
        msg = self.build_message(message)
        message_id = str(msg["Message-ID"])
        async with self._semaphore:
            try:
                await self._send_pooled(msg, message.to)
            except (aiosmtplib.SMTPException, OSError) as exc:  # TimeoutError is an OSError
                raise _smtp_error(exc) from exc
        logger.info(
            "email accepted by smtp server",
            extra={
                "action": "email_accepted",
                "notification_id": message.notification_id,
                "to": mask_email(message.to),
                "provider_id": message_id,
            },
        )
        return SendReceipt(provider_id=message_id, status="sent")

    async def _send_pooled(self, msg: EmailMessage, to: str) -> None:
        """Send over a pooled connection; a kept-alive connection the server has dropped
        meanwhile (its idle timeout, a restart) is replaced once by a new one."""
        for attempt in (1, 2):
            connection = await self._connection()
            try:
                await connection.client.send_message(
                    msg, sender=self._sender_address, recipients=[to]
                )
            except (aiosmtplib.SMTPException, OSError) as exc:
                if _keeps_connection(exc, connection.client):
                    self._put_back(connection)
                    raise
                connection.client.close()
                if attempt == 1 and connection.messages and _dropped(exc):
                    continue
                raise
            except BaseException:
                # Cancelled mid-conversation: the connection's state is unknown; drop it.
                connection.client.close()
                raise
            self._put_back(connection)
            return

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                await connection.client.quit(timeout=2)
            except (aiosmtplib.SMTPException, OSError):
                connection.client.close()

    async def _connection(self) -> _Connection:
        """An open connection: an idle one that still answers, or a new one."""
        while self._idle:
            connection = self._idle.pop()
            client = connection.client
            if not client.is_connected:
                continue
            if time.monotonic() - connection.last_used > IDLE_CHECK_SECONDS:
                try:
                    await client.noop()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
                    continue
            return connection
        settings = self._settings
        implicit_tls = settings.port == _IMPLICIT_TLS_PORT
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            use_tls=implicit_tls,
            # Explicit True/False: aiosmtplib's default (None) would quietly send in
            # plain text when the server does not offer STARTTLS.
            start_tls=settings.starttls and not implicit_tls,
            timeout=settings.timeout_seconds,
        )
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        return _Connection(client)

    def _put_back(self, connection: _Connection) -> None:
        connection.messages += 1
        connection.last_used = time.monotonic()
        if connection.messages >= MESSAGES_PER_CONNECTION or not connection.client.is_connected:
            # Polite close in the background; the next send opens a fresh connection.
            task = asyncio.ensure_future(_quit(connection.client))
            _closing.add(task)
            task.add_done_callback(_closing.discard)
            return
        self._idle.append(connection)

    def _default_message_id(self, message: OutboundMessage) -> str:
        domain = self._sender_address.rpartition("@")[2] or "carebot.invalid"
        return f"<carebot-{message.notification_id}@{domain}>"


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    messages: int = 0
    last_used: float = field(default_factory=time.monotonic)


# Background QUITs of retired connections (kept referenced until they finish).
_closing: set[asyncio.Task[None]] = set()


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit(timeout=5)
    except (aiosmtplib.SMTPException, OSError):
        client.close()


def _keeps_connection(exc: BaseException, client: aiosmtplib.SMTP) -> bool:
    """Whether the connection survives ``exc``: a server's answer to one message does (the
    envelope was reset); a transport error, a timeout or a 421 (closing) does not."""
    return (
        isinstance(exc, (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused))
        and not isinstance(exc, aiosmtplib.SMTPServerDisconnected)
        and getattr(exc, "code", 0) != 421
        and client.is_connected
    )


def _dropped(exc: BaseException) -> bool:
    """The server had closed the connection (a reused one: before this message was sent)."""
    return isinstance(exc, (aiosmtplib.SMTPServerDisconnected, ConnectionError))


def _smtp_error(exc: BaseException) -> ChannelError:
    """Map an aiosmtplib or socket error: 4xx and transport trouble retry, 5xx does not."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refusals = exc.recipients
        # Any temporary refusal means the message may still get through later.
        temporary = [r for r in refusals if not _is_permanent(r.code)]
        first = temporary[0] if temporary else refusals[0]
        return ChannelError(
            f"smtp {first.code}: {mask_text(first.message)}",
            retryable=bool(temporary),
            code=str(first.code),
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return ChannelError(
            f"smtp {exc.code}: {mask_text(exc.message)}",
            retryable=not _is_permanent(exc.code),
            code=str(exc.code),
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # The message needs an extension the server lacks (SMTPUTF8 for a non-ASCII address):
        # asking again gets the same answer.
        return ChannelError(
            f"smtp cannot send this message: {mask_text(exc.message)}", retryable=False
        )
    # Disconnects, connect failures, timeouts, a server without STARTTLS: none of these says
    # the message itself is bad, so let the dispatcher try again within the message's deadline.
    detail = exc.message if isinstance(exc, aiosmtplib.SMTPException) else str(exc)
    return ChannelError(
        f"smtp unavailable: {type(exc).__name__}: {mask_text(detail)}".rstrip(": "),
        retryable=True,
    )


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600
