"""Run-out prediction per customer and product, with mixed quantities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carebot.forecast.runout import Purchase, days_per_unit_from_history, predict_run_out

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def bought(order_id: str, quantity: int, day: float, *, delivered: bool = True) -> Purchase:
    placed = T0 + timedelta(days=day)
    return Purchase(order_id, quantity, placed, placed + timedelta(days=2) if delivered else None)


def test_a_first_purchase_runs_out_after_the_products_days_per_unit_times_quantity() -> None:
    run_out = predict_run_out([bought("1", 3, 0)], days_per_unit=7)
    assert run_out is not None and not run_out.learned
    assert run_out.run_out_at == T0 + timedelta(days=2 + 21)


def test_without_history_or_a_product_rate_nothing_is_predicted() -> None:
    assert predict_run_out([bought("1", 3, 0)], days_per_unit=None) is None
    assert predict_run_out([], days_per_unit=7) is None


def test_consumption_starts_at_delivery_so_an_undelivered_latest_order_predicts_nothing() -> None:
    assert (
        predict_run_out([bought("1", 2, 0), bought("2", 2, 20, delivered=False)], days_per_unit=7)
        is None
    )


def test_two_purchases_teach_the_customers_own_rate_per_unit() -> None:
    run_out = predict_run_out([bought("1", 4, 0), bought("2", 4, 30)], days_per_unit=7)
    assert run_out is not None and run_out.learned
    assert run_out.days_per_unit == 7.5
    assert run_out.run_out_at == T0 + timedelta(days=32 + 30)


def test_mixed_quantities_are_compared_per_unit() -> None:
    # 2 units lasted 18 days and 4 units 36: nine days a unit, however many were bought.
    history = [bought("1", 2, 0), bought("2", 4, 18), bought("3", 1, 54)]
    assert days_per_unit_from_history(history) == 9
    run_out = predict_run_out(history, days_per_unit=30)
    assert run_out is not None
    assert run_out.run_out_at == T0 + timedelta(days=56 + 9)


def test_the_median_rate_resists_one_odd_interval() -> None:
    history = [bought("1", 2, 0), bought("2", 2, 20), bought("3", 2, 40), bought("4", 2, 100)]
    assert days_per_unit_from_history(history) == 10


def test_stock_left_over_from_an_early_reorder_carries_over() -> None:
    # Rates 40/4 and 10/4 per unit: median 6.25 days. The third order arrives while 15 days
    # of the second remain, so it starts being used 15 days after it arrives.
    history = [bought("1", 4, 0), bought("2", 4, 40), bought("3", 4, 50)]
    run_out = predict_run_out(history, days_per_unit=7)
    assert run_out is not None and run_out.days_per_unit == 6.25
    assert run_out.run_out_at == T0 + timedelta(days=42 + 25 + 25)
