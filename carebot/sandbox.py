"""The template sandbox with a budget: bounded time, bounded sizes, bounded output.

Jinja2's sandbox keeps a merchant's template away from Python internals, but not from the
machine: ``{{ 'a' * 10**9 }}`` allocates a gigabyte and two nested loops over a long list run
for minutes. :class:`BoundedSandbox` uses the sandbox's public hooks to stop both:

- ``call_binop`` (for ``*``, ``+``, ``%`` and ``**``, listed in ``intercepted_binops``) refuses
  a string or list that would pass ``max_sequence_items``, and a power too large to compute;
- ``call``, ``getattr`` and ``getitem`` check the time budget, and refuse ``str`` methods and
  filters asked for a width past ``max_sequence_items`` (``center``, ``ljust``, ``format`` …);
- every ``{% for %}`` iterates through :meth:`BoundedSandbox.bounded_iter` (the code generator
  wraps the loop's iterable), which checks the time budget on each item.

The budget is armed per render with :func:`budget` (per thread: renders run in worker threads);
outside a budget nothing is timed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "DEFAULT_RENDER_LIMITS",
    "BoundedSandbox",
    "BudgetExceeded",
    "RenderLimits",
    "budget",
    "check_time",
]

# The width and precision of a printf-style conversion, and the spec of a str.format field.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d*)(?:\.(\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)")
_NESTED_SPEC = re.compile(r"\{[^{}]*?:[^{}]*\{")
_DIGITS = re.compile(r"\d+")
# Filters and str methods whose extra arguments are widths or counts that size their result.
_SIZING_FILTERS = frozenset({"center", "indent", "slice"})
_SIZING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# A power whose result would have more bits than this is refused (10**30000 is already slow).
_MAX_POWER_BITS = 65_536


@dataclass(frozen=True)
class RenderLimits:
    """The budget of one render (``[render]`` in the settings)."""

    timeout_seconds: float = 2.0
    max_output_chars: int = 100_000
    max_sequence_items: int = 100_000


DEFAULT_RENDER_LIMITS = RenderLimits()


class BudgetExceeded(SecurityError):
    """Raised when a render runs past its time budget or builds something too large."""


_state = threading.local()


@contextmanager
def budget(limits: RenderLimits) -> Iterator[None]:
    """Arm the time budget of ``limits`` for renders in this thread, until the block ends."""
    previous = getattr(_state, "deadline", None)
    _state.deadline = (time.monotonic() + limits.timeout_seconds, limits.timeout_seconds)
    try:
        yield
    finally:
        _state.deadline = previous


def check_time() -> None:
    """Raise BudgetExceeded when the armed budget of this thread has run out."""
    armed: tuple[float, float] | None = getattr(_state, "deadline", None)
    if armed is not None and time.monotonic() > armed[0]:
        raise BudgetExceeded(f"render took longer than {armed[1]:g} s (render.timeout_seconds)")


class _BoundedLoops(CodeGenerator):
    """Compiles ``{% for x in items %}`` as a loop over ``environment.bounded_iter(items)``."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not getattr(node, "_bounded", False):
            node.iter = nodes.Call(
                nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None
            )
            node._bounded = True  # type: ignore[attr-defined]
        super().visit_For(node, frame)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox within :class:`RenderLimits`."""

    intercepted_binops = frozenset({"*", "+", "%", "**"})
    code_generator_class = _BoundedLoops

    def __init__(self, *, limits: RenderLimits = DEFAULT_RENDER_LIMITS, **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits
        for name in _SIZING_FILTERS & set(self.filters):
            self.filters[name] = self._sized(self.filters[name])
        if "format" in self.filters:
            self.filters["format"] = self._formatted(self.filters["format"])

    def bounded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            check_time()
            yield item

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_time()
        most = self.limits.max_sequence_items
        if operator == "*":
            self._check_repeat(left, right)
            self._check_repeat(right, left)
        elif operator == "+" and _sized(left) and _sized(right):
            if len(left) + len(right) > most:
                raise BudgetExceeded(f"a text or list longer than {most} items")
        elif operator == "%" and isinstance(left, str):
            self._check_percent(left)
        elif operator == "**" and _too_large_power(left, right):
            raise BudgetExceeded("a number too large to compute")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        check_time()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", "") in _SIZING_METHODS:
            __self._check_counts(args, kwargs)  # 'a'.center(10**9)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's ``str.format``, refusing widths past the limit."""
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        text: str = value.__self__

        @wraps(sandboxed)
        def bounded(*args: Any, **kwargs: Any) -> str:
            check_time()
            self._check_braces(text)  # '{:>999999999}'.format(x)
            if _NESTED_SPEC.search(text):  # '{:{}}'.format(x, 10**9)
                self._check_counts(args, kwargs)
                for value in args[:1]:
                    if isinstance(value, Mapping):  # format_map
                        self._check_counts((), dict(value))
            return sandboxed(*args, **kwargs)

        return bounded

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        check_time()
        return super().getitem(obj, argument)

    def _check_repeat(self, sequence: Any, times: Any) -> None:
        if (
            _sized(sequence)
            and isinstance(times, int)
            and len(sequence) * times > (self.limits.max_sequence_items)
        ):
            raise BudgetExceeded(
                f"a text or list longer than {self.limits.max_sequence_items} items"
            )

    def _check_width(self, digits: str) -> None:
        if digits and (len(digits) > 9 or int(digits) > self.limits.max_sequence_items):
            raise BudgetExceeded(f"a width of more than {self.limits.max_sequence_items}")

    def _check_percent(self, text: str) -> None:
        """Refuse a printf-style format asking for a width or precision past the limit."""
        for found in _PERCENT_SPEC.finditer(text):
            self._check_width(found.group(1))
            self._check_width(found.group(2) or "")

    def _check_braces(self, text: str) -> None:
        """Refuse a str.format string asking for a width or precision past the limit."""
        for found in _BRACE_SPEC.finditer(text):
            for digits in _DIGITS.findall(found.group(1)):
                self._check_width(digits)

    def _check_counts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and value > self.limits.max_sequence_items:
                raise BudgetExceeded(f"a width of more than {self.limits.max_sequence_items}")

    def _sized(self, flt: Any) -> Any:
        """``flt`` refusing widths past the limit (the value filtered is not a width)."""
        skip = 2 if hasattr(flt, "jinja_pass_arg") else 1

        @wraps(flt)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            check_time()
            self._check_counts(args[skip:], kwargs)
            return flt(*args, **kwargs)

        return bounded

    def _formatted(self, flt: Any) -> Any:
        """The ``format`` filter refusing a printf-style width past the limit."""

        @wraps(flt)
        def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
            check_time()
            if isinstance(value, str):
                self._check_percent(value)
            return flt(value, *args, **kwargs)

        return bounded


def _too_large_power(base: Any, exponent: Any) -> bool:
    if not isinstance(base, int) or not isinstance(exponent, int):
        return False
    if exponent <= 0 or abs(base) <= 1:
        return False
    # Checked on the bit lengths first: ``exponent * bits`` itself may be a huge number.
    return exponent.bit_length() + base.bit_length().bit_length() > 40 or (
        exponent * base.bit_length() > _MAX_POWER_BITS
    )


def _sized(value: Any) -> bool:
    return isinstance(value, str | list | tuple)
