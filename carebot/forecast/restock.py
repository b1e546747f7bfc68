"""Restock outlook: when to remind a customer to reorder, and which disruptions change that.

Pure: a customer's purchases of one SKU, the product's facts, the learned transit time and the
active disruptions in, the reminder moment and any stock-up advice out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from carebot.disruptions.active import DisruptionWindow, window_of
from carebot.disruptions.regions import affects_address
from carebot.forecast.runout import Purchase, RunOut, predict_run_out
from carebot.rulebook.schema import Disruption
from carebot.store.history import PurchaseLine

__all__ = [
    "Outlook",
    "Series",
    "StockUp",
    "disruption_hits",
    "group_series",
    "outlook",
    "suggested_quantity",
]


@dataclass(frozen=True)
class Series:
    """One customer's purchases of one SKU, newest address and contact facts included."""

    customer_id: str
    sku: str
    title: str | None
    tags: tuple[str, ...]
    purchases: tuple[Purchase, ...]
    shipping_address: Mapping[str, Any]
    timezone: str | None
    phone: str | None


@dataclass(frozen=True)
class StockUp:
    """Advice to buy ahead of a disruption: when to say so and how much covers it."""

    window: DisruptionWindow
    notify_at: datetime
    suggested_quantity: int


@dataclass(frozen=True)
class Outlook:
    """When the supply ends and when to remind, ordinary and disruption-aware."""

    run_out: RunOut
    transit_days: float
    lead_days: float
    normal_due: datetime
    due: datetime  # never later than ``normal_due``
    stock_ups: tuple[StockUp, ...]


def group_series(lines: Iterable[PurchaseLine]) -> list[Series]:
    """Purchases per (customer, SKU), quantities of one order summed, oldest order first."""
    grouped: dict[tuple[str, str], list[PurchaseLine]] = defaultdict(list)
    for line in lines:
        grouped[(line.customer_id, line.sku)].append(line)
    series = []
    for (customer_id, sku), group in sorted(grouped.items()):
        per_order: dict[str, Purchase] = {}
        for line in group:
            known = per_order.get(line.order_id)
            quantity = line.quantity + (known.quantity if known else 0)
            per_order[line.order_id] = Purchase(
                line.order_id, quantity, line.placed_at, line.delivered_at
            )
        newest = group[-1]
        series.append(
            Series(
                customer_id=customer_id,
                sku=sku,
                title=newest.title,
                tags=newest.tags,
                purchases=tuple(sorted(per_order.values(), key=lambda p: (p.when, p.order_id))),
                shipping_address=newest.shipping_address,
                timezone=newest.timezone,
                phone=newest.phone,
            )
        )
    return series


def disruption_hits(
    window: DisruptionWindow, *, run_out_at: datetime, transit_days: float, lead_days: float
) -> bool:
    """True when the ordinary reorder (sent and travelling before run-out) meets the window."""
    reorder_from = run_out_at - timedelta(days=transit_days + lead_days)
    return reorder_from < window.normal_again and run_out_at > window.start


def suggested_quantity(
    window: DisruptionWindow,
    *,
    run_out_at: datetime,
    transit_days: float,
    lead_days: float,
    days_per_unit: float,
) -> int:
    """Units that bridge from run-out until an order placed after the window has arrived."""
    covered_until = window.normal_again + timedelta(days=transit_days + lead_days)
    days = (covered_until - run_out_at).total_seconds() / 86400
    return max(1, math.ceil(days / days_per_unit - 1e-9))


def outlook(
    series: Series,
    *,
    facts: Mapping[str, float],
    transit_days: float,
    disruptions: Sequence[Disruption],
    zone: ZoneInfo,
) -> Outlook | None:
    """The restock outlook of ``series``, or None when its run-out cannot be predicted."""
    run_out = predict_run_out(series.purchases, days_per_unit=facts.get("days_per_unit"))
    if run_out is None:
        return None
    lead_days = float(facts.get("restock_lead_days", 0))
    ahead = timedelta(days=transit_days + lead_days)
    normal_due = max(run_out.run_out_at - ahead, run_out.delivered_at)
    due = normal_due
    stock_ups = []
    for disruption in disruptions:
        if not affects_address(disruption, series.shipping_address):
            continue
        window = window_of(disruption, zone)
        if not disruption_hits(
            window, run_out_at=run_out.run_out_at, transit_days=transit_days, lead_days=lead_days
        ):
            continue
        # The last moment an order still arrives, with the safety lead, before the window opens.
        due = min(due, max(window.start - ahead, run_out.delivered_at))
        stock_ups.append(
            StockUp(
                window=window,
                notify_at=window.notice_at(),
                suggested_quantity=suggested_quantity(
                    window,
                    run_out_at=run_out.run_out_at,
                    transit_days=transit_days,
                    lead_days=lead_days,
                    days_per_unit=run_out.days_per_unit,
                ),
            )
        )
    return Outlook(
        run_out=run_out,
        transit_days=transit_days,
        lead_days=lead_days,
        normal_due=normal_due,
        due=due,
        stock_ups=tuple(stock_ups),
    )
