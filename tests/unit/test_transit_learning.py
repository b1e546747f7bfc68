"""Transit-time learning from delivered history, with little or no history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from carebot.forecast.transit import TransitSample, learn_transit

T0 = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
ZHEJIANG = {"country": "CN", "province": "浙江"}
GUANGDONG = {"country": "CN", "province": "广东省"}


def sample(days: float, province: str | None, country: str | None = "CN") -> TransitSample:
    return TransitSample(T0, T0 + timedelta(days=days), country, province)


def test_without_any_history_every_region_gets_the_configured_default() -> None:
    model = learn_transit([], default_days=4)
    assert model.days_to(ZHEJIANG) == 4
    assert model.days_to(None) == 4


def test_a_province_with_enough_deliveries_gets_its_own_median() -> None:
    model = learn_transit(
        [sample(1, "浙江省"), sample(2, "浙江"), sample(9, "浙江省"), sample(5, "广东")],
        min_samples=3,
    )
    assert model.days_to(ZHEJIANG) == 2
    assert model.days_to({"country": "CN", "province": "浙江省"}) == 2


def test_a_province_with_too_little_history_falls_back_to_its_country() -> None:
    history = [sample(1, "浙江"), sample(2, "浙江"), sample(3, "浙江"), sample(6, "广东")]
    model = learn_transit(history, min_samples=3, default_days=9)
    assert model.days_to(GUANGDONG) == 2.5  # median of all four Chinese deliveries


def test_a_country_with_too_little_history_falls_back_to_the_default() -> None:
    model = learn_transit([sample(1, "CA", "US")], min_samples=2, default_days=5)
    assert model.days_to({"country": "US", "province": "CA"}) == 5


def test_a_delivery_recorded_before_it_shipped_is_ignored() -> None:
    model = learn_transit([sample(-2, "浙江"), sample(2, "浙江")], min_samples=1)
    assert model.days_to(ZHEJIANG) == 2
