"""The rule expression language: Jinja2 expressions in a sandbox merchants cannot escape.

``when`` conditions are Jinja2 expressions (``shipment.tracking_number``); computed values such
as ``delay`` are Jinja2 templates (``"{{ items | map(attribute='follow_up_days') | max }}d"``).
The sandbox refuses attribute access to Python internals (``__class__``, ``__globals__``, …).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from carebot.exceptions import ExpressionError

__all__ = ["compile_condition", "render_value", "sandbox"]


@lru_cache(maxsize=2)
def sandbox(strict: bool = False) -> ImmutableSandboxedEnvironment:
    """The shared sandbox; ``strict`` makes an unknown name an error (used by ``validate``)."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined if strict else Undefined,
        autoescape=False,
    )
    return env


@lru_cache(maxsize=512)
def _compiled_expression(source: str, strict: bool) -> Any:
    # Compiling is the expensive part and rules change rarely: compile each condition once.
    return sandbox(strict).compile_expression(source, undefined_to_none=False)


def compile_condition(source: str, *, strict: bool = False) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a condition; the result is called with the event context and returns a bool."""
    try:
        expression = _compiled_expression(source, strict)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"condition {source!r}: {exc.message}") from exc

    def evaluate(context: Mapping[str, Any]) -> bool:
        try:
            return bool(expression(**context))
        except (SecurityError, UndefinedError) as exc:
            raise ExpressionError(f"condition {source!r}: {exc}") from exc
        except Exception as exc:  # a merchant's expression may fail in any way
            raise ExpressionError(f"condition {source!r}: {type(exc).__name__}: {exc}") from exc

    return evaluate


@lru_cache(maxsize=512)
def _compiled(source: str, strict: bool) -> Any:
    return sandbox(strict).from_string(source)


def render_value(source: str, context: Mapping[str, Any], *, strict: bool = False) -> str:
    """Render a computed value such as a delay template to text."""
    try:
        return str(_compiled(source, strict).render(**context)).strip()
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"{source!r}: {exc.message}") from exc
    except (SecurityError, UndefinedError) as exc:
        raise ExpressionError(f"{source!r}: {exc}") from exc
    except Exception as exc:
        raise ExpressionError(f"{source!r}: {type(exc).__name__}: {exc}") from exc
