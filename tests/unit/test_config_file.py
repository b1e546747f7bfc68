"""``config/carebot.toml`` documents every setting, and only settings that exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from carebot.settings import Settings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "carebot.toml"
# A commented-out table header or key line: ``# [twilio]`` or ``# port = 8080   # comment``.
_SETTING_LINE = re.compile(r"^# (\[\w+\](?=\s*(?:#|$))|\w+ = .*)")


def _uncommented(text: str) -> dict[str, Any]:
    """The file with its commented-out settings switched on, parsed as TOML."""
    lines = []
    for line in text.splitlines():
        match = _SETTING_LINE.match(line)
        if match:
            lines.append(match.group(1))
    return tomllib.loads("\n".join(lines))


def _keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        # A table is a settings group; an inline table at the top (country_locales) is a value.
        if isinstance(value, dict) and not prefix and _is_group(name):
            keys |= _keys(value, f"{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _is_group(name: str) -> bool:
    info = Settings.model_fields.get(name)
    kind = info.annotation if info is not None else None
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= _fields(kind, f"{name}.")
        else:
            names.add(prefix + name)
    return names


def test_every_setting_appears_in_the_config_file_and_every_key_is_a_setting() -> None:
    documented = _keys(_uncommented(CONFIG.read_text(encoding="utf-8")))
    fields = _fields(Settings)
    assert sorted(fields - documented) == [], "settings missing from config/carebot.toml"
    assert sorted(documented - fields) == [], "keys in config/carebot.toml that are no setting"


def test_the_config_file_with_every_line_switched_on_is_valid() -> None:
    data = _uncommented(CONFIG.read_text(encoding="utf-8"))
    # The examples must be values the settings accept, not only the right names.
    settings = Settings(**data)
    assert settings.http.port == data["http"]["port"]
