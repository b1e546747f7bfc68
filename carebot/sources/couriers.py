"""Carrier display names for AfterShip courier slugs (and the same slugs elsewhere).

Names are AfterShip's own, from its ``GET /couriers/all`` answer as recorded in
AfterShip/aftership-sdk-python (``tests/fixtures/cassettes/CourierTestCase.
test_get_all_couriers.yaml``). A few slugs AfterShip added later, or that merchants commonly
write (``zto``, ``yunda``, ``jd``), are marked below. Keep entries sorted by region; add a
carrier by its AfterShip slug.
"""

from __future__ import annotations

__all__ = ["COURIER_NAMES", "courier_name"]

COURIER_NAMES: dict[str, str] = {
    # mainland China, Hong Kong, Taiwan
    "sf-express": "S.F. Express",
    "sfb2c": "S.F International",
    "china-ems": "China EMS (ePacket)",
    "china-post": "China Post",
    "yto": "YTO Express",
    "zto-express": "ZTO Express",
    "zto": "ZTO Express",  # merchants' short form
    "sto": "STO Express",
    "yundaex": "Yunda Express",
    "yunda": "Yunda Express",  # merchants' short form
    "800bestex": "Best Express",
    "jd": "JD Logistics",  # later AfterShip slug for 京东物流
    "jd-express": "JD Logistics",
    "4px": "4PX",
    "yanwen": "Yanwen",
    "yunexpress": "Yun Express",
    "hong-kong-post": "Hong Kong Post",
    "taiwan-post": "Taiwan Post",
    # North America
    "usps": "USPS",
    "ups": "UPS",
    "fedex": "FedEx",
    "dhl-global-mail": "DHL eCommerce US",
    "ontrac": "OnTrac",
    "lasership": "LaserShip",
    "amazon": "Amazon Ground",
    "canada-post": "Canada Post",
    "purolator": "Purolator",
    # Europe
    "dhl": "DHL Express",
    "dhl-germany": "Deutsche Post DHL",
    "deutsch-post": "Deutsche Post Mail",
    "royal-mail": "Royal Mail",
    "parcel-force": "Parcel Force",
    "la-poste-colissimo": "La Poste",
    "postnl": "PostNL Domestic",
    "postnl-3s": "PostNL International 3S",
    "dpd": "DPD",
    "dpd-uk": "DPD UK",
    "gls": "GLS",
    "hermes": "Hermesworld",
    "tnt": "TNT",
    # elsewhere
    "australia-post": "Australia Post",
    "new-zealand-post": "New Zealand Post",
    "japan-post": "Japan Post",
    "korea-post": "Korea Post EMS",
    "singapore-post": "Singapore Post",
    "india-post": "India Post Domestic",
    "brazil-correios": "Brazil Correios",
    "aramex": "Aramex",
}


def courier_name(slug: str | None) -> str | None:
    """AfterShip's display name of ``slug`` (any case); the slug itself when unknown."""
    if slug is None or not slug.strip():
        return None
    return COURIER_NAMES.get(slug.strip().lower(), slug.strip())
