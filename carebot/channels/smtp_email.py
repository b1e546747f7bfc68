"""Email through an SMTP server (aiosmtplib)."""

from __future__ import annotations

import asyncio
import logging
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


class SMTPEmail(Channel):
    """Send one email per message, one SMTP connection per send.

    A connection per message keeps failures independent and needs no pool upkeep; at most
    ``settings.concurrency`` connections are open at once.
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
        settings = self._settings
        implicit_tls = settings.port == _IMPLICIT_TLS_PORT
        password = settings.password.get_secret_value() if settings.password else None
        async with self._semaphore:
            try:
                await aiosmtplib.send(
                    msg,
                    sender=self._sender_address,
                    recipients=[message.to],
                    hostname=self._host,
                    port=settings.port,
                    username=settings.username,
                    password=password,
                    use_tls=implicit_tls,
                    # Explicit True/False: aiosmtplib's default (None) would quietly send in
                    # plain text when the server does not offer STARTTLS.
                    start_tls=settings.starttls and not implicit_tls,
                    timeout=settings.timeout_seconds,
                )
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

    def _default_message_id(self, message: OutboundMessage) -> str:
        domain = self._sender_address.rpartition("@")[2] or "carebot.invalid"
        return f"<carebot-{message.notification_id}@{domain}>"


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
