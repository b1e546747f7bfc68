"""Region matching: does a shipping address lie in a disruption's region?

Merchants and platforms write Chinese place names with or without their administrative
suffix (浙江/浙江省, 杭州/杭州市, 广西/广西壮族自治区), so names are compared in a
normalised form; postal codes match by prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from carebot.rulebook.schema import Disruption, Region

__all__ = ["address_in_region", "affects_address", "normalise_country", "normalise_place"]

# Longest first, so 广西壮族自治区 loses 壮族自治区, not just 自治区.
_SUFFIXES = (
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "特别行政区",
    "自治区",
    "自治州",
    "地区",
    "省",
    "市",
)
_COUNTRY_ALIASES = {"中国": "CN", "CHINA": "CN", "CHN": "CN", "PRC": "CN"}
_SPACE = re.compile(r"\s+")


def normalise_place(name: str | None) -> str:
    """``浙江省`` → ``浙江``, ``Hang Zhou`` → ``hangzhou``; empty for no name."""
    text = _SPACE.sub("", name or "").casefold()
    for suffix in _SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix) + 1:
            return text[: -len(suffix)]
    return text


def normalise_country(code: str | None) -> str:
    """An upper-case ISO code; ``中国`` and ``China`` become ``CN``."""
    text = _SPACE.sub("", code or "").upper()
    return _COUNTRY_ALIASES.get(text, text)


def _postal(code: str | None) -> str:
    return _SPACE.sub("", code or "")


def address_in_region(region: Region, address: Mapping[str, Any]) -> bool:
    """True when the address meets every field the region sets (a region with none: anywhere)."""
    if region.country and normalise_country(region.country) != normalise_country(
        address.get("country")
    ):
        return False
    for name in ("province", "city"):
        wanted = getattr(region, name)
        if wanted and normalise_place(wanted) != normalise_place(address.get(name)):
            return False
    if region.postal_prefix:
        code = _postal(address.get("postal_code"))
        if not code or not code.startswith(_postal(region.postal_prefix)):
            return False
    return True


def affects_address(disruption: Disruption, address: Mapping[str, Any] | None) -> bool:
    """True when ``disruption`` applies where ``address`` is (no regions: everywhere)."""
    regions: Iterable[Region] = disruption.regions
    if not disruption.regions:
        return True
    if not address:
        return False
    return any(address_in_region(region, address) for region in regions)
