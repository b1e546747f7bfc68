"""Region matching of shipping addresses to disruption regions."""

from __future__ import annotations

from datetime import date

import pytest

from carebot.disruptions import address_in_region, affects_address, normalise_place
from carebot.rulebook.schema import Disruption, Region

HANGZHOU = {"country": "CN", "province": "浙江省", "city": "杭州市", "postal_code": "310012"}
SHANGHAI = {"country": "CN", "province": "上海市", "city": "上海市", "postal_code": "200000"}


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("浙江省", "浙江"),
        ("浙江", "浙江"),
        ("杭州市", "杭州"),
        ("广西壮族自治区", "广西"),
        ("新疆维吾尔自治区", "新疆"),
        ("内蒙古自治区", "内蒙古"),
        ("香港特别行政区", "香港"),
        (" Hang Zhou ", "hangzhou"),
        (None, ""),
    ],
)
def test_place_names_lose_their_administrative_suffix(written: str | None, normal: str) -> None:
    assert normalise_place(written) == normal


@pytest.mark.parametrize(
    "region",
    [
        Region(country="CN", city="杭州市"),
        Region(city="杭州"),
        Region(province="浙江"),
        Region(country="cn", province="浙江省", city="杭州"),
        Region(postal_prefix="310"),
        Region(country="中国"),
    ],
)
def test_a_hangzhou_address_is_in_every_way_of_writing_its_region(region: Region) -> None:
    assert address_in_region(region, HANGZHOU)


@pytest.mark.parametrize(
    "region",
    [
        Region(country="CN", city="杭州市"),
        Region(province="浙江省"),
        Region(postal_prefix="310"),
        Region(country="US"),
    ],
)
def test_a_shanghai_address_is_outside_hangzhou_regions(region: Region) -> None:
    assert not address_in_region(region, SHANGHAI)


def test_an_address_without_a_postal_code_is_not_in_a_postal_region() -> None:
    assert not address_in_region(Region(postal_prefix="310"), {"country": "CN", "city": "杭州"})


def test_a_disruption_hits_an_address_in_any_of_its_regions_and_everywhere_without_any() -> None:
    both = Disruption(
        id="d",
        title="t",
        regions=[Region(city="上海"), Region(city="杭州")],
        start=date(2026, 12, 1),
        end=date(2026, 12, 3),
    )
    nowhere_else = both.model_copy(update={"regions": [Region(city="北京")]})
    everywhere = both.model_copy(update={"regions": []})
    assert affects_address(both, HANGZHOU) and affects_address(both, SHANGHAI)
    assert not affects_address(nowhere_else, HANGZHOU)
    assert affects_address(everywhere, {"country": "US"})
    assert not affects_address(nowhere_else, None)
