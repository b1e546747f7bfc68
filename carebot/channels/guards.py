"""Provider protection: a token-bucket rate limit and a circuit breaker around a channel.

The rate limit keeps carebot inside a provider's allowance (Twilio's messages per second, an
SMTP server's patience): ``ready`` waits for a token from a bucket that every carebot process
on the database shares. The circuit breaker stops calling a provider that keeps failing: while
open, a send fails at once as retryable, so the dispatcher reschedules it with backoff instead
of holding a provider slot, and the other channel keeps flowing. The breaker takes time from a
monotonic function that tests can replace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from carebot.channels.base import Channel, ChannelWrapper, OutboundMessage, SendReceipt
from carebot.exceptions import ChannelError

__all__ = ["CircuitBreaker", "GuardedChannel", "SharedTokenBucket"]

T = TypeVar("T")


class SharedTokenBucket:
    """A rate limit whose bucket lives outside this process (see ``store.rate_limits``).

    ``take`` is blocking (a database transaction) and answers 0.0 when it took a token, else
    the seconds until one is free; it runs in a worker thread. Sends of this process queue
    behind one another here, first come first served, so only one of them polls at a time.
    """

    def __init__(self, take: Callable[[], float]) -> None:
        self._take = take
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while (wait := await asyncio.to_thread(self._take)) > 0:
                await asyncio.sleep(wait)


class CircuitBreaker:
    """Opens after ``threshold`` consecutive retryable failures, for ``cooldown`` seconds.

    After the cool-down one trial call goes through (half-open): success closes the circuit,
    failure opens it again.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._monotonic = monotonic
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._monotonic() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_running = False
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._monotonic()


class GuardedChannel(ChannelWrapper):
    """A channel behind an optional rate limit and a circuit breaker."""

    def __init__(
        self,
        inner: Channel,
        *,
        bucket: SharedTokenBucket | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(inner)
        self.bucket = bucket
        self.breaker = breaker

    async def ready(self) -> None:
        if self.bucket is not None:
            await self.bucket.acquire()
        await self.inner.ready()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        return await self._call(lambda: self.inner.send(message))

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        return await self._call(lambda: self.inner.find_sent(message, since=since))

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Call the provider unless the breaker is open, and tell the breaker how it went."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            raise ChannelError(
                f"{self.name} is failing; not calling it for up to {breaker.cooldown:.0f} s",
                retryable=True,
                code="circuit_open",
                retry_after=breaker.cooldown,
            )
        try:
            result = await request()
        except ChannelError as exc:
            if breaker is not None:
                # Only provider trouble trips the breaker; a bad number is the message's fault.
                if exc.retryable:
                    breaker.record_failure()
                else:
                    breaker.record_success()
            raise
        if breaker is not None:
            breaker.record_success()
        return result
