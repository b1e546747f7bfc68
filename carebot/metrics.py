"""Prometheus metrics: webhook outcomes, provider latency and errors, and the schedule itself.

Counts about the schedule (notifications by status, rule and channel; queue depth; dispatch lag)
are read from the database when scraped, so every daemon on a shared database reports the same
truth. Per-process counters cover what only a process sees: requests and provider calls.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from carebot.channels.base import Channel, ChannelWrapper, OutboundMessage, SendReceipt
from carebot.channels.guards import CircuitBreaker
from carebot.clock import Clock
from carebot.exceptions import ChannelError
from carebot.store.database import Database
from carebot.store.models import NotificationRow
from carebot.store.provider_health import waiting_by_channel
from carebot.store.schedule import IS_SCHEDULED

__all__ = ["METERED_ROUTES", "MeteredChannel", "Metrics", "MetricsMiddleware"]

_OUTCOMES = {200: "duplicate_or_ignored", 202: "accepted", 400: "rejected", 401: "unauthorized",
             403: "unauthorized", 413: "too_large"}  # fmt: skip

T = TypeVar("T")


# A breaker's state as a number, for alerting: closed 0, half-open 1, open 2.
_CIRCUIT_STATES = {"closed": 0, "half-open": 1, "open": 2}


class _BreakerCollector(Collector):
    """Each circuit breaker of this process: its state, and since when it is failing."""

    def __init__(self) -> None:
        self.breakers: list[tuple[str, str, CircuitBreaker]] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "carebot_circuit_state",
            "Circuit breaker of a provider in this process: 0 closed, 1 half-open, 2 open.",
            labels=["channel", "provider"],
        )
        since = GaugeMetricFamily(
            "carebot_circuit_failing_since_seconds",
            "When the provider's circuit opened in this process (Unix time); 0 when closed.",
            labels=["channel", "provider"],
        )
        for channel, provider, breaker in self.breakers:
            state.add_metric([channel, provider], _CIRCUIT_STATES[breaker.state])
            since.add_metric([channel, provider], breaker.failing_since or 0.0)
        yield state
        yield since


class _ScheduleCollector(Collector):
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "carebot_notifications",
            "Notifications in the database by status, rule and channel.",
            labels=["status", "rule", "channel"],
        )
        depth = GaugeMetricFamily(
            "carebot_queue_depth", "Scheduled notifications already due (waiting to be sent)."
        )
        lag = GaugeMetricFamily(
            "carebot_dispatch_lag_seconds", "How long the oldest due notification has waited."
        )
        now = self.clock.now()
        with self.db.transaction() as session:
            rows = session.execute(
                select(
                    NotificationRow.status,
                    NotificationRow.rule_id,
                    NotificationRow.channel,
                    func.count(),
                ).group_by(NotificationRow.status, NotificationRow.rule_id, NotificationRow.channel)
            ).all()
            due = session.execute(
                select(func.count(), func.min(NotificationRow.due_at)).where(
                    IS_SCHEDULED, NotificationRow.due_at <= now
                )
            ).one()
            waiting_rows = waiting_by_channel(session, now=now)
        waiting = GaugeMetricFamily(
            "carebot_provider_waiting",
            "Scheduled notifications waiting on a channel's provider: due, or put back by a "
            "failure or an open circuit.",
            labels=["channel"],
        )
        for channel_name in ("sms", "email"):
            waiting.add_metric([channel_name], waiting_rows.get(channel_name, 0))
        yield waiting
        for status, rule, channel, count in rows:
            by_status.add_metric([status, rule, channel], count)
        depth.add_metric([], due[0])
        oldest: datetime | None = due[1]
        lag.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield by_status
        yield depth
        yield lag


class Metrics:
    """One registry per runtime (so tests and several runtimes in a process do not collide)."""

    def __init__(self, *, db: Database, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "carebot_webhook_requests",
            "Webhook and callback requests by source and outcome.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.provider_latency = Histogram(
            "carebot_provider_latency_seconds",
            "Time a provider took to accept (or refuse) a message.",
            ["channel", "provider"],
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "carebot_provider_errors",
            "Provider calls that failed, by whether a retry makes sense.",
            ["channel", "provider", "retryable", "code"],
            registry=self.registry,
        )
        self.job_runs = Counter(
            "carebot_job_runs",
            "Runs of the daemon's periodic jobs (dispatch, reaper, watchers, checkpoint, ...).",
            ["job"],
            registry=self.registry,
        )
        self.job_failures = Counter(
            "carebot_job_failures",
            "Runs of a periodic job that ended in an error (logged with the job's name).",
            ["job"],
            registry=self.registry,
        )
        self.lookup_failures = Counter(
            "carebot_provider_lookup_failures",
            "Lookups before a retry (did the provider already take it?) that got no answer; "
            "the rule's in_doubt policy decided instead.",
            ["channel", "provider"],
            registry=self.registry,
        )
        self.registry.register(_ScheduleCollector(db, clock))
        self._breakers = _BreakerCollector()
        self.registry.register(self._breakers)

    def watch_breaker(self, channel: str, provider: str, breaker: CircuitBreaker) -> None:
        """Report ``breaker``'s state under ``channel`` and ``provider``."""
        self._breakers.breakers.append((str(channel), provider, breaker))


class MeteredChannel(ChannelWrapper):
    """A channel that times every send and counts its failures (a lookup's too)."""

    def __init__(self, inner: Channel, metrics: Metrics) -> None:
        super().__init__(inner)
        self.metrics = metrics

    async def send(self, message: OutboundMessage) -> SendReceipt:
        started = time.perf_counter()
        try:
            return await self._counting_errors(self.inner.send(message))
        finally:
            self.metrics.provider_latency.labels(self.kind, self.name).observe(
                time.perf_counter() - started
            )

    async def find_sent(self, message: OutboundMessage, *, since: datetime) -> SendReceipt | None:
        try:
            return await self._counting_errors(self.inner.find_sent(message, since=since))
        except ChannelError:
            self.metrics.lookup_failures.labels(self.kind, self.name).inc()
            raise

    async def _counting_errors(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except ChannelError as exc:
            self.metrics.provider_errors.labels(
                self.kind, self.name, str(exc.retryable).lower(), exc.code or ""
            ).inc()
            raise


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


# The label of each metered route: a closed set, so no request can add a time series.
METERED_ROUTES = {
    "/webhooks/carebot": "carebot",
    "/webhooks/shopify": "shopify",
    "/webhooks/woocommerce": "woocommerce",
    "/webhooks/aftership": "aftership",
    "/twilio/status": "twilio_status",
    "/twilio/inbound": "twilio_inbound",
    "/webhooks/kuaidi100": "kuaidi100",
}
# Routes whose last path segment is a secret token: labelled by their fixed prefix.
METERED_PREFIXES = {
    "/aliyun/sms/report/": "aliyun_report",
    "/aliyun/sms/up/": "aliyun_up",
}
# Any other path under the metered prefixes (a 404, a probe) counts under this one label.
UNKNOWN_ROUTE = "unknown"


class MetricsMiddleware:
    """Counts webhook and Twilio callback requests by source and response status.

    Labels come from :data:`METERED_ROUTES` only, never from the request: a made-up path is
    ``unknown`` and an unexpected status is ``http_4xx`` or ``http_5xx``.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/webhooks/", "/twilio/", "/aliyun/")):
            await self.app(scope, receive, send)
            return
        source = METERED_ROUTES.get(path.rstrip("/")) or next(
            (label for prefix, label in METERED_PREFIXES.items() if path.startswith(prefix)),
            UNKNOWN_ROUTE,
        )
        status = 500

        async def record(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.metrics.webhooks.labels(source, _outcome(status)).inc()


def _outcome(status: int) -> str:
    if status in _OUTCOMES:
        return _OUTCOMES[status]
    if status < 400:
        return "ok"
    return "http_4xx" if status < 500 else "http_5xx"
