"""Periodic scans that emit derived events (stalled and late shipments, disruptions, restock,
cases past their deadline, the weekly digest).

``build_watchers`` is the one list the daemon and ``carebot simulate`` run: a new watcher is
appended there and runs in both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from carebot.business_hours import BusinessHours, parse_days
from carebot.cases import ServiceDesk
from carebot.rulebook.schema import Rulebook
from carebot.settings import Settings
from carebot.store.database import Database
from carebot.watchers._forecasting import ForecastOptions
from carebot.watchers.base import Watcher
from carebot.watchers.cases import OverdueCases, WeeklyDigest
from carebot.watchers.restock import restock_watchers
from carebot.watchers.shipments import LateShipments, StalledShipments

__all__ = ["LateShipments", "StalledShipments", "Watcher", "build_watchers"]


def business_hours(settings: Settings) -> BusinessHours:
    """The shop's business hours, from ``CAREBOT_SERVICE__*`` and the shop's zone."""
    service = settings.service
    return BusinessHours(
        zone=settings.default_timezone,
        hours=service.business_hours,
        days=parse_days(service.business_days),
        holiday_country=service.holidays or None,
    )


def build_watchers(
    *, settings: Settings, db: Database, rules: Callable[[], Rulebook] | None = None
) -> list[Watcher]:
    """Every watcher, configured from ``settings``, reading ``db`` (and the live ``rules``)."""
    config = settings.watchers
    interval = timedelta(minutes=config.interval_minutes)
    watchers: list[Watcher] = [
        StalledShipments(
            db=db,
            stall_after=timedelta(hours=config.stall_after_hours),
            carrier_stall_after={
                name: timedelta(hours=hours) for name, hours in config.carrier_stall_hours.items()
            },
            interval=interval,
        ),
        LateShipments(db=db, default_timezone=settings.default_timezone, interval=interval),
    ]
    if rules is not None:  # restock and disruptions read the live rule book (products, calendars)
        options = ForecastOptions(default_timezone=settings.default_timezone)
        watchers.extend(restock_watchers(db=db, rules=rules, options=options))
        service = settings.service
        desk = ServiceDesk(business=business_hours(settings))
        watchers.append(OverdueCases(db=db, rules=rules, desk=desk, interval=interval))
        watchers.append(
            WeeklyDigest(
                db=db,
                rules=rules,
                zone=settings.default_timezone,
                weekday=service.digest_weekday,
                hour=service.digest_hour,
                stall_after=timedelta(hours=config.stall_after_hours),
                recovery_days=service.recovery_days,
                locale=settings.default_locale,
                interval=interval,
            )
        )
    return watchers
