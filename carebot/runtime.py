"""Wiring: build the store, rules, planner, pipeline, channels and dispatcher from settings.

The daemon, ``carebot simulate`` and the tests all build their parts here, so they run the
same pipeline; only the clock, the channels and the database differ.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from carebot.cases import ServiceDesk
from carebot.channels import Channel, ChannelKind, build_channels
from carebot.channels.guards import CircuitBreaker, GuardedChannel, SharedTokenBucket
from carebot.clock import Clock, SystemClock
from carebot.dispatch.dispatcher import Dispatcher
from carebot.holds import ComplaintHold
from carebot.metrics import MeteredChannel, Metrics
from carebot.pipeline import Pipeline
from carebot.planning import Planner, PlanningPolicy
from carebot.reload import RulesReloader
from carebot.rendering import RenderLimits, TemplateRenderer
from carebot.rulebook.loader import RuleLimits
from carebot.rulebook.ruleset import RuleSet
from carebot.settings import Settings
from carebot.store import meta, provider_health, rate_limits
from carebot.store.database import Database
from carebot.store.unsubscribe_tokens import random_token
from carebot.watchers import Watcher, build_watchers, business_hours

__all__ = ["Runtime", "build_runtime", "new_webhook_secret", "webhook_secret"]

WEBHOOK_SECRET_KEY = "webhooks.carebot_secret"


def new_webhook_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_`` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_secret(settings: Settings, db: Database) -> str:
    """The configured carebot webhook secret, else one generated once and kept in the db."""
    configured = settings.webhooks.carebot_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    with db.transaction() as session:
        return meta.get_or_create(session, WEBHOOK_SECRET_KEY, new_webhook_secret)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    rules: RuleSet
    renderer: TemplateRenderer
    planner: Planner
    pipeline: Pipeline
    channels: Mapping[ChannelKind, Channel]
    dispatcher: Dispatcher
    metrics: Metrics
    watchers: list[Watcher] = field(default_factory=list)

    def webhook_secret(self) -> str:
        return webhook_secret(self.settings, self.db)

    def rules_reloader(self) -> RulesReloader:
        """Hot reload of this runtime's rules and templates (the daemon's and each worker's)."""
        return RulesReloader(
            rules=self.rules,
            renderer=self.renderer,
            db=self.db,
            templates_dir=self.settings.templates_dir,
            default_locale=self.settings.default_locale,
            shop_name=self.settings.shop_name,
            sms_provider=self.settings.sms.provider,
            now=self.clock.now,
        )

    async def aclose(self) -> None:
        for channel in self.channels.values():
            await channel.aclose()
        self.db.dispose()


def planning_policy(settings: Settings) -> PlanningPolicy:
    return PlanningPolicy(
        default_timezone=settings.default_timezone,
        default_locale=settings.default_locale,
        quiet_hours=settings.quiet_hours,
        max_attempts=settings.dispatch.max_attempts,
        shop_name=settings.shop_name,
        alerts_email=settings.alerts.email,
        country_locales=dict(settings.country_locales),
    )


def service_desk(settings: Settings) -> ServiceDesk:
    return ServiceDesk(business=business_hours(settings))


def claim_limit(settings: Settings) -> int:
    """Rows per claim: ``dispatch.batch_size``, or fewer when a provider's rate limit could not
    take them all within half the claim lease (the rest would wait while claimed, be handed
    back by the reaper, and have spent their turn at the rate limit for nothing). The
    daemon's sending processes (``dispatch.processes``) share the rate, so each takes its part."""
    limit = settings.dispatch.batch_size
    rates = [r for r in (settings.sms_rate_per_second, settings.smtp.rate_per_second) if r]
    if rates:
        share = min(rates) / settings.dispatch.processes
        affordable = int(share * settings.dispatch.claim_lease_seconds / 2)
        limit = min(limit, max(1, affordable))
    return limit


def _guarded(
    channel: Channel,
    settings: Settings,
    clock: Clock,
    db: Database,
    metrics: Metrics,
    *,
    rate_limited: bool,
) -> Channel:
    """The channel behind its provider's shared rate limit and a circuit breaker.

    Virtual-time replays (``simulate``) are not rate limited: waiting there would be real time.
    """
    rate = (
        settings.sms_rate_per_second
        if channel.kind == ChannelKind.SMS
        else settings.smtp.rate_per_second
    )
    bucket = None
    if rate and rate_limited:
        name, per_second = f"{channel.kind}:{channel.name}", rate

        def take() -> float:
            with db.transaction() as session:
                return rate_limits.take_token(
                    session, name=name, rate=per_second, burst=max(1.0, per_second), now=clock.now()
                )

        bucket = SharedTokenBucket(take)

    async def on_circuit(failing: bool, last_error: str | None) -> None:
        def record() -> None:
            with db.transaction() as session:
                provider_health.record_circuit(
                    session,
                    channel=str(channel.kind),
                    provider=channel.name,
                    failing=failing,
                    last_error=last_error,
                    now=clock.now(),
                )

        if rate_limited:
            await asyncio.to_thread(record)
        else:
            record()  # a virtual-time replay: database work runs inline (see Dispatcher)

    breaker = CircuitBreaker(
        threshold=settings.dispatch.breaker_threshold,
        cooldown=settings.dispatch.breaker_cooldown_seconds,
        monotonic=lambda: clock.now().timestamp(),
    )
    metrics.watch_breaker(channel.kind, channel.name, breaker)
    return GuardedChannel(
        channel,
        bucket=bucket,
        breaker=breaker,
        on_circuit=on_circuit,
    )


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    channels: Mapping[ChannelKind, Channel] | None = None,
    db: Database | None = None,
    inline_db: bool = False,
    new_token: Callable[[], str] = random_token,
) -> Runtime:
    """Everything carebot needs, wired; raises ``RuleError`` when the rules do not load.

    ``new_token`` makes email unsubscribe tokens (random; a replay passes a seeded source)."""
    clock = clock or SystemClock()
    db = db or Database(settings.database_url)
    rules = RuleSet(settings.rules_dir, limits=RuleLimits(**settings.rules.model_dump()))
    renderer = TemplateRenderer(
        templates_dir=settings.templates_dir,
        default_locale=settings.default_locale,
        limits=RenderLimits(**settings.render.model_dump()),
    )
    planner = Planner(policy=planning_policy(settings))
    pipeline = Pipeline(
        db=db, planner=planner, rulebook=rules, clock=clock, service=service_desk(settings)
    )
    channels = channels if channels is not None else build_channels(settings, rules=rules)
    metrics = Metrics(db=db, clock=clock)
    dispatcher = Dispatcher(
        db=db,
        channels={
            kind: MeteredChannel(
                _guarded(channel, settings, clock, db, metrics, rate_limited=not inline_db), metrics
            )
            for kind, channel in channels.items()
        },
        renderer=renderer,
        clock=clock,
        settings=settings.dispatch,
        public_url=settings.public_url,
        quiet_hours=settings.quiet_hours,
        caps=settings.caps,
        concurrency={
            ChannelKind.SMS: settings.sms_concurrency,
            ChannelKind.EMAIL: settings.smtp.concurrency,
        },
        inline_db=inline_db,
        hold=ComplaintHold(rules),
        new_token=new_token,
        # A replay is not rate limited: its claims keep the configured size.
        claim_limit=settings.dispatch.batch_size if inline_db else claim_limit(settings),
    )
    return Runtime(
        settings=settings,
        db=db,
        clock=clock,
        rules=rules,
        renderer=renderer,
        planner=planner,
        pipeline=pipeline,
        channels=channels,
        dispatcher=dispatcher,
        metrics=metrics,
        watchers=build_watchers(settings=settings, db=db, rules=rules),
    )
