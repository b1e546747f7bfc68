"""快递100 pushes and Alibaba Cloud pushes for tests, built on the documented fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from carebot.sources import kuaidi100

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "china"
SALT = "carebot-kuaidi100-salt"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def kuaidi100_push(
    state: str,
    *,
    ftime: str,
    context: str,
    area: str | None = None,
    nu: str = "SF1234567890",
    com: str = "shunfeng",
) -> dict[str, Any]:
    """The documented push with ``state``: the new checkpoint on top of the older fixture ones."""
    push: dict[str, Any] = copy.deepcopy(fixture("kuaidi100_push_intransit.json"))
    last = push["lastResult"]
    last.update(state=state, nu=nu, com=com, ischeck="1" if state == "3" else "0")
    checkpoint: dict[str, Any] = {"time": ftime, "ftime": ftime, "context": context}
    if area is not None:
        checkpoint["areaName"] = area
    last["data"] = [checkpoint, *(c for c in last["data"] if c["ftime"] < ftime)]
    return push


def kuaidi100_form(push: dict[str, Any], *, salt: str = SALT) -> bytes:
    """The form body 快递100 POSTs: ``param`` and its ``sign``."""
    param = json.dumps(push, ensure_ascii=False)
    return urlencode({"param": param, "sign": kuaidi100.sign(param, salt)}).encode()


FORM = {"content-type": "application/x-www-form-urlencoded"}
