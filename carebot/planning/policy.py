"""What planning depends on besides the event: merchant-wide policy, and what a plan holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

from carebot.events import EventType
from carebot.notifications import PlannedNotification
from carebot.rulebook.windows import DailyWindow

__all__ = [
    "DEFAULT_COUNTRY_LOCALES",
    "ENDED_ORDER_STATUSES",
    "MAX_DELAY",
    "ORDER_ENDING_EVENTS",
    "QUIET_HOURS",
    "SUPPLY_EVENTS",
    "Cancellation",
    "OptOutCheck",
    "Plan",
    "PlanningPolicy",
    "nobody_opted_out",
]

# Care messages are about this order's life; a longer delay is a mistake, not a plan.
MAX_DELAY = timedelta(days=3660)


# After these, an order gets nothing more: every pending customer message of it is cancelled.
ORDER_ENDING_EVENTS = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_REFUNDED})
ENDED_ORDER_STATUSES = frozenset({"cancelled", "refunded"})

# (channel, address) -> True when that address opted out of that channel.
OptOutCheck = Callable[[str, str], bool]


def nobody_opted_out(channel: str, address: str) -> bool:
    return False


# The default quiet hours (CAREBOT_QUIET_HOURS), customer's local time.
QUIET_HOURS = DailyWindow(time(21), time(9))

# The language of a customer whose order names none, by shipping (else billing) country; "*"
# stands for every other country. Templates exist for zh-CN and en.
DEFAULT_COUNTRY_LOCALES: Mapping[str, str] = {
    "CN": "zh-CN",
    "HK": "zh-CN",
    "MO": "zh-CN",
    "TW": "zh-CN",
    "*": "en",
}


@dataclass(frozen=True)
class PlanningPolicy:
    """The merchant-wide settings planning depends on."""

    default_timezone: str = "Asia/Shanghai"
    default_locale: str = "zh-CN"
    # Customer's local time; None: no quiet hours.
    quiet_hours: DailyWindow | None = QUIET_HOURS
    max_attempts: int = 6
    shop_name: str = "carebot"
    # Where rules with ``audience: merchant`` write (CAREBOT_ALERTS__EMAIL).
    alerts_email: str | None = None
    # Country (ISO 3166 alpha-2, or "*") → locale, for customers without one (COUNTRY_LOCALES).
    country_locales: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_COUNTRY_LOCALES)
    )

    def locale_for(self, customer_locale: Any, *countries: Any) -> str:
        """The customer's own locale, else their country's, else the default locale."""
        if isinstance(customer_locale, str) and customer_locale.strip():
            return customer_locale.strip()
        for country in countries:
            if isinstance(country, str) and country.strip():
                key = country.strip().upper()
                found = self.country_locales.get(key) or self.country_locales.get("*")
                if found:
                    return found
        return self.default_locale

    @property
    def send_window(self) -> DailyWindow | None:
        """The hours outside quiet hours, when a customer may be messaged."""
        return None if self.quiet_hours is None else self.quiet_hours.inverse()


# Derived events about a customer's supply rather than about one order.
SUPPLY_EVENTS = frozenset({str(EventType.RESTOCK_DUE), str(EventType.DISRUPTION_STOCK_UP)})


@dataclass(frozen=True)
class Cancellation:
    order_id: str
    shipment_id: str | None
    # None: every rule's pending rows (an order that ended).
    rule_ids: tuple[str, ...] | None
    reason: str
    customer_only: bool = False
    # Only the rows of ``shipment_id`` (a voided parcel), not those of the whole order.
    exact_shipment: bool = False
    # Set for reminders about a customer's supply: they belong to the order being used up,
    # so the reorder that makes them moot must reach them through the customer.
    customer_id: str | None = None


@dataclass(frozen=True)
class Plan:
    notifications: list[PlannedNotification] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)
    # Messages of ``wait_for`` rules this event may release; never inserted themselves.
    releases: list[PlannedNotification] = field(default_factory=list)
