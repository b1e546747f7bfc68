"""Run-out prediction: when a customer will finish what they bought of one product.

Consumption starts at delivery. The rate is the customer's own median days per unit between
consecutive purchases once they bought the SKU at least twice, else the product's
``days_per_unit``. Stock left over from an early reorder carries over to the next one.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

__all__ = ["Purchase", "RunOut", "days_per_unit_from_history", "predict_run_out"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Purchase:
    """Units of one SKU in one order, and when they arrived (None: not delivered yet)."""

    order_id: str
    quantity: int
    placed_at: datetime | None
    delivered_at: datetime | None

    @property
    def when(self) -> datetime:
        """When it was ordered, else when it arrived; the earliest instant for neither."""
        return self.placed_at or self.delivered_at or _EPOCH


@dataclass(frozen=True)
class RunOut:
    """When the supply ends, from which purchase and at what rate."""

    order_id: str
    delivered_at: datetime
    run_out_at: datetime
    days_per_unit: float
    learned: bool  # True when the rate comes from the customer's own history


def days_per_unit_from_history(purchases: Sequence[Purchase]) -> float | None:
    """Median of (days to the next delivery ÷ units bought), over delivered purchases."""
    delivered = _by_delivery(p for p in purchases if p.quantity > 0)
    rates = []
    for (earlier_at, earlier), (later_at, _) in pairwise(delivered):
        gap = (later_at - earlier_at).total_seconds() / 86400
        if gap > 0:
            rates.append(gap / earlier.quantity)
    return statistics.median(rates) if rates else None


def predict_run_out(purchases: Sequence[Purchase], *, days_per_unit: float | None) -> RunOut | None:
    """The predicted run-out after the latest purchase, or None when it cannot be told.

    None when nothing was delivered, when the latest purchase has not arrived yet (the
    customer already reordered) or when there is neither history nor a product rate.
    """
    if not purchases:
        return None
    latest = max(purchases, key=lambda p: (p.when, p.order_id))
    if latest.delivered_at is None:
        return None
    learned = days_per_unit_from_history(purchases)
    rate = learned if learned is not None else days_per_unit
    if rate is None or rate <= 0:
        return None
    supply_end: datetime | None = None
    for delivered_at, purchase in _by_delivery(purchases):
        start = delivered_at if supply_end is None else max(supply_end, delivered_at)
        supply_end = start + timedelta(days=rate * purchase.quantity)
    assert supply_end is not None
    return RunOut(
        order_id=latest.order_id,
        delivered_at=latest.delivered_at,
        run_out_at=supply_end,
        days_per_unit=rate,
        learned=learned is not None,
    )


def _by_delivery(purchases: Iterable[Purchase]) -> list[tuple[datetime, Purchase]]:
    pairs = [(p.delivered_at, p) for p in purchases if p.delivered_at is not None]
    return sorted(pairs, key=lambda pair: (pair[0], pair[1].order_id))
