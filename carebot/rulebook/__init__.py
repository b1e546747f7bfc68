"""Rules, product care profiles and disruptions as merchants write them."""

from __future__ import annotations

from carebot.rulebook.schema import (
    ChannelChoice,
    DedupeScope,
    Disruption,
    InDoubtPolicy,
    ProductProfile,
    Rule,
    Rulebook,
    SendSpec,
)

__all__ = [
    "ChannelChoice",
    "DedupeScope",
    "Disruption",
    "InDoubtPolicy",
    "ProductProfile",
    "Rule",
    "Rulebook",
    "SendSpec",
]
