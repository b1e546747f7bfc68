"""SMS through Twilio's Messages API, with the official twilio client on its asyncio transport."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from carebot.channels._provider import http_error, log_accepted
from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.exceptions import ChannelError, ConfigError
from carebot.masking import mask_text

if TYPE_CHECKING:
    from carebot.settings import TwilioSettings

__all__ = ["TwilioSMS"]

logger = logging.getLogger(__name__)

# How many of a number's latest messages a lookup reads, and how far Twilio's clock may be
# behind carebot's when a message is matched to the notification that was created before it.
LOOKUP_LIMIT = 20
CLOCK_SKEW = timedelta(minutes=5)

# The Retry-After of the latest answer in this task: a 429's header is not on the exception
# the client raises, and each send runs in its own task, so concurrent sends cannot mix them.
_retry_after: ContextVar[float | None] = ContextVar("twilio_retry_after", default=None)
# What a failed request may raise below the twilio client: refused, reset, DNS, timeouts.
_TRANSPORT_ERRORS = (TwilioException, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class _Transport(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """The twilio client's asyncio transport, with the channel's timeout on every request and
    the ``Retry-After`` of each answer kept for the task that asked."""

    def __init__(self, *, timeout: float, concurrency: int) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        # One session per channel, made on first use: aiohttp wants a running event loop.
        self._concurrency = concurrency
        self.session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self._concurrency)
            self.session = aiohttp.ClientSession(connector=connector)
        if auth is not None:
            # As a header (RFC 7617): aiohttp deprecates the ``auth`` argument the client uses.
            token = base64.b64encode(":".join(auth).encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        response = await super().request(
            method,
            url,
            params=params,
            # Form-encoded here, as aiohttp would (the client sets the Content-Type): a ready
            # body spares aiohttp building a FormData object for every message.
            data=None if data is None else urlencode(data, doseq=True).encode(),
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        _retry_after.set(_retry_after_seconds((response.headers or {}).get("Retry-After")))
        return response

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


class TwilioSMS(Channel):
    """Send SMS with ``client.messages.create_async``; Twilio's errors become ``ChannelError``.

    The client runs on its own asyncio transport (aiohttp, a twilio dependency) with one
    connection pool of ``settings.concurrency`` connections, and a semaphore keeps at most that
    many calls in flight: no thread per call.
    """

    kind = ChannelKind.SMS
    name = "twilio"

    def __init__(self, *, settings: TwilioSettings) -> None:
        if not settings.configured or settings.auth_token is None:
            raise ConfigError("twilio needs account_sid, auth_token and from_number")
        self._settings = settings
        self._from = str(settings.from_number)
        self._http = _Transport(timeout=settings.timeout_seconds, concurrency=settings.concurrency)
        self._client = Client(
            settings.account_sid, settings.auth_token.get_secret_value(), http_client=self._http
        )
        # carebot's settings are the only configuration: the client would otherwise pick up
        # TWILIO_EDGE / TWILIO_REGION from the environment and rewrite the API host.
        self._client.edge = None
        self._client.region = None
        if settings.base_url:
            self._client.api.base_url = settings.base_url.rstrip("/")
        self._semaphore = asyncio.Semaphore(settings.concurrency)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        params: dict[str, Any] = {
            "to": message.to,
            "from_": self._from,
            "body": message.body,
            "validity_period": self._settings.validity_period_seconds,
        }
        if message.status_callback:
            params["status_callback"] = message.status_callback
        _retry_after.set(None)
        async with self._semaphore:
            try:
                created = await self._client.messages.create_async(**params)
            except (TwilioRestException, TwilioServiceException) as exc:
                raise _rest_error(exc, retry_after=_retry_after.get()) from exc
            except _TRANSPORT_ERRORS as exc:
                # Connection refused, DNS, TLS, timeouts: the message may be fine, the path
                # is not.
                raise ChannelError(
                    f"twilio request failed: {_describe(exc)}",
                    retryable=True,
                    maybe_accepted=True,
                ) from exc
        receipt = SendReceipt(
            provider_id=created.sid,
            status=str(created.status) if created.status else "queued",
            segments=_int_or_none(created.num_segments),
        )
        log_accepted(logger, "twilio", message, receipt, provider_status=receipt.status)
        return receipt

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        # Twilio lists a number's messages newest first; ours is among the latest if it is
        # there at all. The body tells it apart from the earlier messages to the same number.
        earliest = since - CLOCK_SKEW
        async with self._semaphore:
            try:
                listed = await self._client.messages.list_async(
                    to=message.to, from_=self._from, limit=LOOKUP_LIMIT
                )
            except _TRANSPORT_ERRORS as exc:
                raise ChannelError(
                    f"twilio lookup failed: {_describe(exc)}", retryable=True
                ) from exc
        for found in listed:
            created = found.date_created
            if found.body == message.body and (created is None or created >= earliest):
                return SendReceipt(
                    provider_id=found.sid,
                    status=str(found.status) if found.status else "queued",
                    segments=_int_or_none(found.num_segments),
                )
        return None

    async def aclose(self) -> None:
        await self._http.close()


def _describe(exc: BaseException) -> str:
    """``Type: text`` of a transport failure, with any phone number in it masked."""
    return f"{type(exc).__name__}: {mask_text(str(exc))}"


def _rest_error(
    exc: TwilioRestException | TwilioServiceException, *, retry_after: float | None
) -> ChannelError:
    status = int(exc.status)
    code = str(exc.code) if exc.code is not None else str(status)
    if isinstance(exc, TwilioServiceException):
        text = exc.detail or exc.title
    else:
        # The client prefixes Twilio's message with its own "Unable to create record: ".
        text = str(exc.msg).removeprefix("Unable to create record: ")
    # Twilio quotes the number back ("The 'To' number 5551234567 is not valid"): mask it.
    description = f"twilio {code}: {mask_text(text)} (HTTP {status})"
    # A 500 or a gateway's 502/504 may come after Twilio created the message; a 503 or a 429
    # is a refusal at the door.
    return http_error(
        description,
        status=status,
        code=code,
        retry_after=retry_after,
        maybe_accepted=status in (500, 502, 504),
    )


def _retry_after_seconds(value: str | None) -> float | None:
    """Read a ``Retry-After`` header given in seconds; HTTP dates and junk give ``None``."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None
