"""Turning an authentic body into values, with every failure a reason (never a 500).

A signed body comes from a platform we trust to sign, not to be well formed: it may be nested
thousands deep, carry a string where an object belongs or a timestamp of 1e30. Whatever a
mapper raises on such a shape becomes :class:`PayloadError`, which the routes answer with 400
and keep in the rejected-payloads table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from pydantic import ValidationError

from carebot.exceptions import CarebotError

__all__ = ["PayloadError", "mapped", "parse_id", "parse_json"]

P = ParamSpec("P")
T = TypeVar("T")

# The largest id a database integer column holds (signed 64-bit).
_MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"^[0-9]{1,19}$")
# What a mapper or model may raise on a payload of the wrong shape. Database and programming
# errors (anything else) are not the sender's fault and still surface.
_SHAPE_ERRORS = (
    CarebotError,
    ValueError,  # pydantic's ValidationError too
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
    OverflowError,
)


class PayloadError(CarebotError):
    """Raised when an authentic body cannot be read or mapped; ``str()`` is the reason."""


def parse_json(body: bytes, *, max_depth: int) -> Any:
    """The JSON value of ``body``; PayloadError when it is not JSON or nested too deeply."""
    try:
        value = json.loads(body)
    except RecursionError as exc:
        raise PayloadError(f"body is nested more than {max_depth} levels deep") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from exc
    if _depth_exceeds(value, max_depth):
        raise PayloadError(f"body is nested more than {max_depth} levels deep")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    # An explicit stack: a recursive walk would itself hit the recursion limit.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def mapped(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)``; a wrong-shape failure becomes PayloadError with a reason."""
    try:
        return function(*args, **kwargs)
    except PayloadError:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PayloadError(
            f"payload maps to an invalid event: {where + ': ' if where else ''}{first['msg']}"
        ) from exc
    except CarebotError as exc:
        raise PayloadError(str(exc)) from exc
    except RecursionError as exc:
        raise PayloadError("payload is nested too deeply") from exc
    except _SHAPE_ERRORS as exc:
        raise PayloadError(f"payload has an unexpected shape ({type(exc).__name__})") from exc


def parse_id(text: str | None) -> int | None:
    """A database id written in ASCII digits, or None (malformed or out of range: no such row)."""
    if text is None or not _DIGITS.match(text):
        return None
    value = int(text)
    return value if 0 < value <= _MAX_ID else None
