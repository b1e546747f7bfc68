"""Disruptions: the calendar of events that slow deliveries, and the regions they hit."""

from __future__ import annotations

from carebot.disruptions.active import DisruptionWindow, active_disruptions, window_of
from carebot.disruptions.calendars import CalendarOptions, spring_festival
from carebot.disruptions.regions import address_in_region, affects_address, normalise_place

__all__ = [
    "CalendarOptions",
    "DisruptionWindow",
    "active_disruptions",
    "address_in_region",
    "affects_address",
    "normalise_place",
    "spring_festival",
    "window_of",
]
