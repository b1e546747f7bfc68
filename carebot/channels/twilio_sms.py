"""SMS through Twilio's Messages API, with the official (synchronous) twilio client."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from carebot.channels._provider import http_error, log_accepted
from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.exceptions import ChannelError, ConfigError
from carebot.masking import mask_text

if TYPE_CHECKING:
    from carebot.settings import TwilioSettings

__all__ = ["TwilioSMS"]

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# How many of a number's latest messages a lookup reads, and how far Twilio's clock may be
# behind carebot's when a message is matched to the notification that was created before it.
LOOKUP_LIMIT = 20
CLOCK_SKEW = timedelta(minutes=5)


class TwilioSMS(Channel):
    """Send SMS with ``client.messages.create``; Twilio's errors become ``ChannelError``.

    The twilio client blocks, so each call runs in a thread of the channel's own pool of
    ``settings.concurrency`` threads (asyncio's default pool has only ``cpu count + 4`` and
    is shared with database work), and a semaphore keeps at most that many calls in flight.
    The client's asyncio transport (``AsyncTwilioHttpClient``) is not used: it needs aiohttp
    and has no response hooks, and the ``Retry-After`` of a 429 is read through one.
    """

    kind = ChannelKind.SMS
    name = "twilio"

    def __init__(self, *, settings: TwilioSettings) -> None:
        if not settings.configured or settings.auth_token is None:
            raise ConfigError("twilio needs account_sid, auth_token and from_number")
        self._settings = settings
        self._from = str(settings.from_number)
        # Retry-After is only on the HTTP response, which TwilioRestException does not keep;
        # a response hook records it per thread, so concurrent sends cannot mix them up.
        self._last_response = threading.local()
        self._http = TwilioHttpClient(
            timeout=settings.timeout_seconds,
            request_hooks={"response": [self._remember_response]},
        )
        session = self._http.session
        if session is not None:
            # The default pool is smaller than a high concurrency setting; an undersized pool
            # discards connections and warns on every burst.
            pool = max(10, settings.concurrency)
            session.mount("https://", HTTPAdapter(pool_connections=pool, pool_maxsize=pool))
            session.mount("http://", HTTPAdapter(pool_connections=pool, pool_maxsize=pool))
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
        self._pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="twilio")

    async def send(self, message: OutboundMessage) -> SendReceipt:
        async with self._semaphore:
            receipt = await self._in_pool(self._send_blocking, message)
        log_accepted(logger, "twilio", message, receipt, provider_status=receipt.status)
        return receipt

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        async with self._semaphore:
            return await self._in_pool(self._find_blocking, message, since)

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._http.session is not None:
            self._http.session.close()

    async def _in_pool(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` in a thread of the channel's pool, with the caller's context (as to_thread)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _send_blocking(self, message: OutboundMessage) -> SendReceipt:
        params: dict[str, Any] = {
            "to": message.to,
            "from_": self._from,
            "body": message.body,
            "validity_period": self._settings.validity_period_seconds,
        }
        if message.status_callback:
            params["status_callback"] = message.status_callback
        self._last_response.retry_after = None
        try:
            created = self._client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _rest_error(exc, retry_after=self._last_response.retry_after) from exc
        except (TwilioException, requests.RequestException) as exc:
            # Connection refused, DNS, TLS, timeouts: the message may be fine, the path is not.
            raise ChannelError(
                f"twilio request failed: {type(exc).__name__}: {mask_text(str(exc))}",
                retryable=True,
                maybe_accepted=True,
            ) from exc
        return SendReceipt(
            provider_id=created.sid,
            status=str(created.status) if created.status else "queued",
            segments=_int_or_none(created.num_segments),
        )

    def _find_blocking(self, message: OutboundMessage, since: datetime) -> SendReceipt | None:
        # Twilio lists a number's messages newest first; ours is among the latest if it is
        # there at all. The body tells it apart from the earlier messages to the same number.
        earliest = since - CLOCK_SKEW
        try:
            listed = self._client.messages.list(to=message.to, from_=self._from, limit=LOOKUP_LIMIT)
        except (TwilioException, requests.RequestException) as exc:
            raise ChannelError(
                f"twilio lookup failed: {type(exc).__name__}: {mask_text(str(exc))}",
                retryable=True,
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

    def _remember_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response.retry_after = _retry_after_seconds(response.headers.get("Retry-After"))


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
