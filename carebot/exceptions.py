"""The one hierarchy of carebot errors."""

from __future__ import annotations

from dataclasses import dataclass


class CarebotError(Exception):
    """Raised for any error that carebot itself reports (the root of the hierarchy)."""


class ConfigError(CarebotError):
    """Raised when the settings cannot be read or contradict each other."""


@dataclass(frozen=True)
class Problem:
    """One located problem in a merchant's file, printed as ``path:line:col: message``."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class RuleError(CarebotError):
    """Raised when rule, disruption or product files cannot be loaded; carries every problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ExpressionError(CarebotError):
    """Raised when a condition or computed value cannot be compiled or evaluated."""


class TemplateError(CarebotError):
    """Raised when a message template is missing or fails to render."""


class EventError(CarebotError):
    """Raised when an inbound payload is not a valid canonical event."""


class SourceError(CarebotError):
    """Raised when a platform payload cannot be mapped to canonical events."""


class ChannelError(CarebotError):
    """Raised when a channel could not hand a message to its provider.

    ``retryable`` says whether the same message may succeed later (429, 5xx, timeouts,
    SMTP 4xx); ``code`` is the provider's error code when it gave one (Twilio 21211, SMTP 550).
    ``maybe_accepted``: the provider may have taken the message all the same (the request
    went out and no answer came back), so a retry asks the provider first where it can.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str | None = None,
        retry_after: float | None = None,
        maybe_accepted: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.retry_after = retry_after
        self.maybe_accepted = maybe_accepted


class StoreError(CarebotError):
    """Raised when the database cannot be reached or its schema is not what carebot expects."""


class PortInUseError(CarebotError):
    """Raised when the daemon's HTTP address is already taken by another process."""
