"""Provider protection: a token-bucket rate limit and a circuit breaker around a channel.

The rate limit keeps carebot inside a provider's allowance (Twilio's messages per second, an
SMTP server's patience): ``ready`` waits for a token from a bucket that every carebot process
on the database shares. The circuit breaker stops calling a provider that keeps failing: while
open, ``ready`` refuses at once (retryable, code ``circuit_open``), before the dispatcher
commits the message as ``sending``, so the message is moved to when the circuit half-opens
without spending an attempt or holding a provider slot, and the other channel keeps flowing.
The breaker takes time from a monotonic function that tests can replace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from carebot.channels.base import Channel, ChannelWrapper, OutboundMessage, SendReceipt
from carebot.exceptions import ChannelError

__all__ = ["CIRCUIT_OPEN", "CircuitBreaker", "GuardedChannel", "SharedTokenBucket"]

# The code of the error a channel raises while its circuit is open.
CIRCUIT_OPEN = "circuit_open"

T = TypeVar("T")

logger = logging.getLogger(__name__)


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
    failure opens it again. A trial that never reports back (its send was abandoned) stops
    counting after another cool-down, so the circuit cannot stay half-open for ever.
    ``opened_at`` (the ``monotonic`` time the current failure streak opened the circuit) and
    ``last_error`` are for operators.
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
        self._trial_started: float | None = None
        # When the circuit first opened in the current streak (reopening keeps it).
        self.failing_since: float | None = None
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._monotonic() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def wait_seconds(self) -> float:
        """How long a caller turned away should wait before asking again."""
        if self._opened_at is None:
            return 0.0
        remaining = self.cooldown - (self._monotonic() - self._opened_at)
        # Half-open with a trial under way: ask again soon, the trial settles it.
        return remaining if remaining > 0 else min(self.cooldown, 1.0)

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        now = self._monotonic()
        trial_running = self._trial_started is not None and now - self._trial_started < (
            self.cooldown
        )
        if state == "half-open" and not trial_running:
            self._trial_started = now
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_started = None
        self.failing_since = None
        self.last_error = None

    def record_failure(self, error: str | None = None) -> None:
        self._failures += 1
        self._trial_started = None
        self.last_error = error
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._monotonic()
            if self.failing_since is None:
                self.failing_since = self._opened_at

    def abandon_trial(self) -> None:
        """The admitted call ended without telling how the provider is (not its fault)."""
        self._trial_started = None


class GuardedChannel(ChannelWrapper):
    """A channel behind an optional rate limit and a circuit breaker."""

    def __init__(
        self,
        inner: Channel,
        *,
        bucket: SharedTokenBucket | None = None,
        breaker: CircuitBreaker | None = None,
        on_circuit: Callable[[bool, str | None], Awaitable[None]] | None = None,
    ) -> None:
        """``on_circuit(failing, last_error)`` is told when the circuit opens or closes (and
        after the first call, since an earlier process may have left the provider marked
        failing), so that operators elsewhere see it."""
        super().__init__(inner)
        self.bucket = bucket
        self.breaker = breaker
        self._on_circuit = on_circuit
        self._reported: bool | None = None

    async def ready(self) -> None:
        """Refuse at once while the circuit is open (nothing is spent on a call that would
        be turned away), then wait for the rate limit.

        In the half-open state the one caller let through here is the trial.
        """
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            raise self._circuit_open(breaker)
        if self.bucket is not None:
            await self.bucket.acquire()
        await self.inner.ready()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        return await self._call(lambda: self.inner.send(message))

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        return await self._call(lambda: self.inner.find_sent(message, since=since))

    def _circuit_open(self, breaker: CircuitBreaker) -> ChannelError:
        last = f" (last error: {breaker.last_error})" if breaker.last_error else ""
        return ChannelError(
            f"{self.name} is failing{last}; not calling it for up to {breaker.cooldown:.0f} s",
            retryable=True,
            code=CIRCUIT_OPEN,
            retry_after=breaker.wait_seconds(),
        )

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Call the provider unless the circuit is open, and tell the breaker how it went.

        The half-open trial is admitted by ``ready``; a call made without it during the
        half-open state goes through too (and counts as a trial).
        """
        breaker = self.breaker
        if breaker is not None and breaker.state == "open":
            raise self._circuit_open(breaker)
        try:
            result = await request()
        except ChannelError as exc:
            if breaker is not None:
                # Only provider trouble trips the breaker; a bad number is the message's fault.
                if exc.retryable:
                    breaker.record_failure(str(exc))
                else:
                    breaker.record_success()
                await self._report(breaker)
            raise
        except BaseException:
            # Not the provider's answer (a bug, a cancelled send): it says nothing either way.
            if breaker is not None:
                breaker.abandon_trial()
            raise
        if breaker is not None:
            breaker.record_success()
            await self._report(breaker)
        return result

    async def _report(self, breaker: CircuitBreaker) -> None:
        failing = breaker.failing_since is not None
        if self._on_circuit is None or failing == self._reported:
            return
        try:
            await self._on_circuit(failing, breaker.last_error)
        except Exception:
            # Reporting is for operators; the sends go on, and the next call reports again.
            logger.warning(
                "could not record the circuit's state",
                exc_info=True,
                extra={"action": "circuit_report_failed", "provider": self.name},
            )
            return
        self._reported = failing
        if failing:
            logger.warning(
                "provider failing; circuit open",
                extra={"action": "circuit_open", "channel": self.kind, "provider": self.name},
            )
        else:
            logger.info(
                "provider answering; circuit closed",
                extra={"action": "circuit_closed", "channel": self.kind, "provider": self.name},
            )
