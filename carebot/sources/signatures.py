"""Webhook signatures the platforms' own way."""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["hmac_sha256_base64", "verify_hmac_sha256_base64"]


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    """``base64(HMAC-SHA256(secret, body))``, as Shopify, WooCommerce and AfterShip sign."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_hmac_sha256_base64(secret: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the base64 HMAC-SHA256 of the exact ``body`` bytes.

    The comparison is constant-time; a missing or empty signature is never valid.
    """
    if not signature:
        return False
    expected = hmac_sha256_base64(secret, body)
    return hmac.compare_digest(
        expected.encode("ascii"), signature.strip().encode("ascii", "replace")
    )
