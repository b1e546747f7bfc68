"""Transit-time learning: how many days a parcel takes from shipping to delivery, per region.

The median over delivered history per destination province, falling back to the country and
then to a configured default when a region has too few deliveries to trust.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carebot.disruptions.regions import normalise_country, normalise_place

__all__ = ["TransitModel", "TransitSample", "learn_transit"]


@dataclass(frozen=True)
class TransitSample:
    """One delivered shipment: when it left, when it arrived, where it went."""

    shipped_at: datetime
    delivered_at: datetime
    country: str | None
    province: str | None

    @property
    def days(self) -> float:
        return (self.delivered_at - self.shipped_at).total_seconds() / 86400


@dataclass(frozen=True)
class TransitModel:
    """Learned median transit days by province and by country, and the fallback default."""

    default_days: float = 3.0
    by_country: Mapping[str, float] = field(default_factory=dict)
    by_province: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def days_to(self, address: Mapping[str, Any] | None) -> float:
        """Expected transit days to ``address``: its province, else its country, else default."""
        address = address or {}
        country = normalise_country(address.get("country"))
        province = normalise_place(address.get("province"))
        if (country, province) in self.by_province:
            return self.by_province[(country, province)]
        return self.by_country.get(country, self.default_days)


def learn_transit(
    samples: Iterable[TransitSample], *, default_days: float = 3.0, min_samples: int = 3
) -> TransitModel:
    """Medians per province and per country over regions with at least ``min_samples``."""
    provinces: dict[tuple[str, str], list[float]] = defaultdict(list)
    countries: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        days = sample.days
        if days < 0:  # a delivery recorded before its shipping is bad data, not a fast parcel
            continue
        country = normalise_country(sample.country)
        countries[country].append(days)
        if sample.province:
            provinces[(country, normalise_place(sample.province))].append(days)
    return TransitModel(
        default_days=default_days,
        by_country={k: statistics.median(v) for k, v in countries.items() if len(v) >= min_samples},
        by_province={
            k: statistics.median(v) for k, v in provinces.items() if len(v) >= min_samples
        },
    )
