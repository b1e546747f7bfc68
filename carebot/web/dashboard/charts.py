"""Server-side chart geometry: stacked bars drawn as inline SVG, no script, no fetch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["PALETTE", "Bar", "Chart", "local_days", "local_hours", "stacked_bars"]

PALETTE = (
    "#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed",
    "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569",
)  # fmt: skip


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[tuple[float, str]]
    legend: list[tuple[str, str]]
    top: int


def stacked_bars(
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    width: int = 720,
    height: int = 200,
) -> Chart:
    """One column per label, one coloured segment per series, scaled to the tallest column."""
    columns = max(len(labels), 1)
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = max([*totals, 1])
    plot = height - 20
    slot = width / columns
    bar_width = max(slot * 0.7, 1.0)
    bars: list[Bar] = []
    legend: list[tuple[str, str]] = []
    base = [0.0] * len(labels)
    for number, (name, values) in enumerate(series.items()):
        color = PALETTE[number % len(PALETTE)]
        legend.append((name, color))
        for i, value in enumerate(values):
            if not value:
                continue
            h = plot * value / top
            base[i] += h
            bars.append(
                Bar(
                    x=round(i * slot + (slot - bar_width) / 2, 1),
                    y=round(plot - base[i], 1),
                    width=round(bar_width, 1),
                    height=round(h, 1),
                    color=color,
                    title=f"{labels[i]} · {name}: {value}" if name else f"{labels[i]}: {value}",
                )
            )
    ticks = [(round(i * slot + slot / 2, 1), label) for i, label in enumerate(labels)]
    return Chart(width, height, bars, ticks, legend, top)


def local_days(today: date, zone: ZoneInfo, *, back: int = 0, ahead: int = 0) -> list[datetime]:
    """Local midnights from ``today - back`` to ``today + ahead + 1`` (range ends included)."""
    first = today - timedelta(days=back)
    return [
        datetime.combine(first + timedelta(days=n), time(0), tzinfo=zone)
        for n in range(back + ahead + 2)
    ]


def local_hours(start: datetime, hours: int, zone: ZoneInfo) -> list[datetime]:
    """The local hour starts from ``start``'s hour on, ``hours`` of them plus the end."""
    first = start.astimezone(zone).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    # Step in UTC so a DST change neither skips nor repeats an hour.
    return [(first + timedelta(hours=n)).astimezone(zone) for n in range(hours + 1)]
