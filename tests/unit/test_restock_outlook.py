"""Restock timing: the ordinary reminder, and how a disruption pulls it earlier."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from carebot.disruptions import window_of
from carebot.forecast.restock import Series, group_series, outlook, suggested_quantity
from carebot.forecast.runout import Purchase
from carebot.rulebook.schema import Disruption, Region
from carebot.store.history import PurchaseLine

SHANGHAI = ZoneInfo("Asia/Shanghai")
HANGZHOU = {"country": "CN", "province": "浙江省", "city": "杭州市"}
DELIVERED = datetime(2026, 10, 3, 12, 0, tzinfo=SHANGHAI)
FACTS = {"days_per_unit": 7.0, "restock_lead_days": 4.0}
# Four tins at seven days each: runs out on 2026-10-31 at noon.
RUN_OUT = DELIVERED + timedelta(days=28)


def series(address: dict[str, str] = HANGZHOU) -> Series:
    purchase = Purchase("1002", 4, DELIVERED - timedelta(days=2), DELIVERED)
    return Series("c-1", "MILK-900G", "奶粉", (), (purchase,), address, None, None)


def summit(start: date, end: date, **changes: object) -> Disruption:
    return Disruption(
        id="summit",
        title="峰会",
        regions=[Region(city="杭州")],
        start=start,
        end=end,
        extra_transit_days=7,
        notice_days=10,
    ).model_copy(update=changes)


def test_the_ordinary_reminder_is_due_transit_and_lead_days_before_run_out() -> None:
    seen = outlook(series(), facts=FACTS, transit_days=2, disruptions=[], zone=SHANGHAI)
    assert seen is not None
    assert seen.run_out.run_out_at == RUN_OUT
    assert seen.due == seen.normal_due == RUN_OUT - timedelta(days=6)
    assert seen.stock_ups == ()


def test_a_disruption_during_the_reorder_pulls_the_reminder_earlier_and_advises_stock() -> None:
    during = summit(date(2026, 10, 29), date(2026, 11, 5))
    seen = outlook(series(), facts=FACTS, transit_days=2, disruptions=[during], zone=SHANGHAI)
    assert seen is not None
    start = datetime(2026, 10, 29, tzinfo=SHANGHAI)
    assert seen.due == start - timedelta(days=6) < seen.normal_due
    [advice] = seen.stock_ups
    assert advice.notify_at == start - timedelta(days=10)
    # From run-out (10-31 noon) until an order placed once deliveries are normal (11-13) has
    # arrived with the safety lead (11-19): 19.5 days, 3 tins of 7 days.
    assert advice.suggested_quantity == 3


def test_a_disruption_elsewhere_or_after_the_next_delivery_changes_nothing() -> None:
    elsewhere = summit(date(2026, 10, 29), date(2026, 11, 5), regions=[Region(city="北京")])
    later = summit(date(2026, 11, 1), date(2026, 11, 5))
    earlier = summit(date(2026, 10, 10), date(2026, 10, 12), extra_transit_days=0)
    for disruption in (elsewhere, later, earlier):
        seen = outlook(
            series(), facts=FACTS, transit_days=2, disruptions=[disruption], zone=SHANGHAI
        )
        assert seen is not None and seen.due == seen.normal_due and seen.stock_ups == ()


def test_the_reminder_is_never_pulled_back_before_the_last_delivery() -> None:
    right_after = summit(date(2026, 10, 4), date(2026, 11, 5))
    seen = outlook(series(), facts=FACTS, transit_days=2, disruptions=[right_after], zone=SHANGHAI)
    assert seen is not None and seen.due == DELIVERED


def test_the_window_edge_depends_on_the_customers_time_zone() -> None:
    # The summit starts on 10-31 (local). Run-out at 2026-10-31 04:30 UTC is inside the
    # window in Shanghai (started 10-30 16:00 UTC) but not yet in Los Angeles (starts 07:00 UTC).
    edge = summit(date(2026, 10, 31), date(2026, 11, 2), extra_transit_days=0)
    run_out = datetime(2026, 10, 31, 4, 30, tzinfo=ZoneInfo("UTC"))
    shanghai = window_of(edge, SHANGHAI)
    los_angeles = window_of(edge, ZoneInfo("America/Los_Angeles"))
    assert shanghai.start < run_out < los_angeles.start
    purchase = Purchase("1", 1, run_out - timedelta(days=9), run_out - timedelta(days=7))
    one = Series("c", "MILK-1", None, (), (purchase,), {"country": "CN"}, None, None)
    every = edge.model_copy(update={"regions": []})
    hit = outlook(
        one, facts={"days_per_unit": 7}, transit_days=0, disruptions=[every], zone=SHANGHAI
    )
    missed = outlook(
        one,
        facts={"days_per_unit": 7},
        transit_days=0,
        disruptions=[every],
        zone=ZoneInfo("America/Los_Angeles"),
    )
    assert hit is not None and len(hit.stock_ups) == 1
    assert missed is not None and missed.stock_ups == ()


def test_the_suggested_quantity_is_at_least_one_and_rounds_up() -> None:
    window = window_of(summit(date(2026, 11, 1), date(2026, 11, 1), extra_transit_days=0), SHANGHAI)
    after = window.normal_again + timedelta(days=30)
    assert (
        suggested_quantity(window, run_out_at=after, transit_days=1, lead_days=0, days_per_unit=7)
        == 1
    )
    assert (
        suggested_quantity(
            window, run_out_at=window.start, transit_days=0, lead_days=0, days_per_unit=0.4
        )
        == 3
    )


def test_lines_of_one_order_are_summed_and_customers_and_skus_kept_apart() -> None:
    def line(customer: str, order: str, sku: str, quantity: int, day: int) -> PurchaseLine:
        placed = DELIVERED + timedelta(days=day)
        return PurchaseLine(
            customer, order, sku, sku.lower(), (), quantity, placed, placed, HANGZHOU, None, None
        )

    found = group_series(
        [
            line("a", "1", "MILK-1", 1, 0),
            line("a", "1", "MILK-1", 2, 0),
            line("a", "2", "MILK-1", 1, 21),
            line("a", "2", "DIAPER", 5, 21),
            line("b", "3", "MILK-1", 4, 0),
        ]
    )
    assert [(s.customer_id, s.sku, [p.quantity for p in s.purchases]) for s in found] == [
        ("a", "DIAPER", [5]),
        ("a", "MILK-1", [3, 1]),
        ("b", "MILK-1", [4]),
    ]
