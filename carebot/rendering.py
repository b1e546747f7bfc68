"""Message templates: sandboxed Jinja2, looked up by locale, rendered per channel.

Templates live in ``<templates_dir>/<locale>/<name>.sms.j2`` and ``<name>.email.j2``; an email
template defines the blocks ``subject``, ``text`` and (optionally) ``html``. Merchants edit
them, so they run in Jinja2's immutable sandbox; only the ``html`` block is autoescaped.

A renderer reads the templates folder once: the locale folders, which template each locale
resolves to, and the compiled templates are kept until ``reload()``. The daemon's hot reload
(``carebot.reload``) polls the folder and calls it when anything changed, so a message costs
no file system call; a one-shot command (validate, preview, simulate) builds its own renderer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, TemplateNotFound, UndefinedError
from jinja2.runtime import Context

from carebot.channels.base import ChannelKind
from carebot.exceptions import Problem, TemplateError
from carebot.sandbox import (
    DEFAULT_RENDER_LIMITS,
    BoundedSandbox,
    BudgetExceeded,
    RenderLimits,
    budget,
    check_time,
)

__all__ = ["RenderLimits", "Rendered", "TemplateRenderer", "format_date", "format_money"]

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_NO_ATTRIBUTE = re.compile(r"^'(?P<owner>.+)' has no attribute '(?P<name>.+)'$")
_UNDEFINED = re.compile(r"^'(?P<name>.+)' is undefined$")
_SYMBOLS = {"CNY": "¥", "RMB": "¥", "USD": "$"}
_EMAIL_BLOCKS = ("subject", "text")
# How many (template, channel, locale) resolutions a renderer keeps until `reload()`.
_MAX_RESOLVED = 10_000


@dataclass(frozen=True)
class Rendered:
    """One rendered message; ``locale`` is the template folder actually used."""

    subject: str | None
    text: str
    html: str | None
    locale: str


class _Failure(TemplateError):
    """Raised when a template fails; knows the file and line (a private, located TemplateError)."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


def format_money(value: Any, currency: str | None = None) -> str:
    """``358`` and ``"CNY"`` → ``¥358.00``; ``USD`` → ``$12.50``; else ``358.00 EUR``."""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return "" if value is None else str(value)
    text = f"{amount:,.2f}"
    code = (currency or "").upper()
    if code in _SYMBOLS:
        return f"-{_SYMBOLS[code]}{text[1:]}" if amount < 0 else f"{_SYMBOLS[code]}{text}"
    return f"{text} {code}" if code else text


def format_date(value: Any, fmt: str = "%Y-%m-%d") -> str:
    """Format an ISO 8601 date or datetime (string or object) with a ``strftime`` format."""
    moment: date | None = value if isinstance(value, date) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            moment = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            return value
    if moment is None:
        return "" if value is None else str(value)
    return moment.strftime(fmt)


def _finalize(value: Any) -> Any:
    # A missing optional field (None) prints as nothing, not as "None".
    return "" if value is None else value


def _environment(
    loader: FileSystemLoader, *, html: bool, strict: bool, limits: RenderLimits
) -> BoundedSandbox:
    env = BoundedSandbox(
        limits=limits,
        loader=loader,
        autoescape=html,
        undefined=StrictUndefined if strict else Undefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        # Kept until ``TemplateRenderer.reload()``: no ``stat`` per render.
        auto_reload=False,
    )
    env.filters["money"] = format_money
    env.filters["date"] = format_date
    return env


class TemplateRenderer:
    """Renders a named template for a channel and a customer's locale."""

    def __init__(
        self,
        *,
        templates_dir: Path,
        default_locale: str,
        strict: bool = False,
        limits: RenderLimits = DEFAULT_RENDER_LIMITS,
    ) -> None:
        self.templates_dir = templates_dir
        self.default_locale = default_locale
        self.strict = strict
        self.limits = limits
        loader = FileSystemLoader(str(templates_dir))
        self._plain = _environment(loader, html=False, strict=strict, limits=limits)
        self._html = _environment(loader, html=True, strict=strict, limits=limits)
        # Read once, kept until `reload()`: the locale folders by lower-case name, and the
        # folder each (template, channel, asked locale) resolved to.
        self._listing: dict[str, str] | None = None
        self._resolved: dict[tuple[str, ChannelKind, str | None], str] = {}

    def locales(self) -> list[str]:
        """The locale folders present, sorted."""
        if not self.templates_dir.is_dir():
            return []
        return sorted(p.name for p in self.templates_dir.iterdir() if p.is_dir())

    def path(self, name: str, kind: ChannelKind, locale: str) -> Path:
        """Where the template ``name`` for ``kind`` lives in the folder of ``locale``."""
        return self.templates_dir / locale / _filename(name, kind)

    def exists(self, name: str, kind: ChannelKind, locale: str | None) -> bool:
        """Whether the folder of ``locale`` itself (no fallback) has the template."""
        folder = self._folder(locale or self.default_locale)
        if folder is None or not _NAME.match(name):
            return False
        return self.path(name, kind, folder).is_file()

    def reload(self) -> None:
        """Forget what was read of the folder: edited, added or removed templates and locale
        folders are read again at the next render."""
        for env in (self._plain, self._html):
            if env.cache is not None:
                env.cache.clear()
        self._listing = None
        self._resolved.clear()

    def render(
        self, name: str, kind: ChannelKind, locale: str | None, context: Mapping[str, Any]
    ) -> Rendered:
        """Render with locale fallback: ``en-US`` → ``en`` → the default locale.

        The render is bounded by ``limits``: past its time or size budget it fails with a
        TemplateError saying so. It is blocking work: call it off the event loop.
        """
        key = (name, kind, locale)
        folder = self._resolved.get(key)
        if folder is None:
            folder = self._resolve(name, kind, locale)
            if len(self._resolved) < _MAX_RESOLVED:  # customers' locales are free text
                self._resolved[key] = folder
        return self._render_in(name, kind, folder, context)

    def _resolve(self, name: str, kind: ChannelKind, locale: str | None) -> str:
        """The locale folder whose template ``name`` a message in ``locale`` uses."""
        if not _NAME.match(name):
            raise TemplateError(f"template name {name!r} is not a plain name")
        tried: list[str] = []
        for candidate in self._candidates(locale):
            folder = self._folder(candidate) or candidate
            path = self.path(name, kind, folder)
            if path.is_file():
                return folder
            tried.append(str(path))
        raise TemplateError(f"no {kind} template {name!r}; tried {', '.join(tried)}")

    def check(
        self, name: str, kind: ChannelKind, locale: str, context: Mapping[str, Any]
    ) -> list[Problem]:
        """Render the template of exactly this locale folder; its problems, located."""
        try:
            self._render_in(name, kind, locale, context)
        except _Failure as failure:
            return [Problem(failure.path, failure.line, 1, failure.reason)]
        return []

    def _candidates(self, locale: str | None) -> list[str]:
        wanted: list[str] = []
        if locale and _LOCALE.match(locale):
            tag = locale.replace("_", "-")
            wanted += [tag, tag.split("-")[0]]
        wanted += [self.default_locale, self.default_locale.split("-")[0]]
        return list(dict.fromkeys(wanted))

    def _folder(self, locale: str) -> str | None:
        """The locale folder matching ``locale`` regardless of case (``zh-cn`` → ``zh-CN``)."""
        if not _LOCALE.match(locale):
            return None
        return self._folders().get(locale.replace("_", "-").lower())

    def _folders(self) -> dict[str, str]:
        if self._listing is None:
            self._listing = {f.lower(): f for f in self.locales()}
        return self._listing

    def _render_in(
        self, name: str, kind: ChannelKind, folder: str, context: Mapping[str, Any]
    ) -> Rendered:
        template_name = f"{folder}/{_filename(name, kind)}"
        where = str(self.path(name, kind, folder))
        # Loaded (and compiled) before the budget starts: a cold cache on a busy machine must
        # not fail a message; the budget is for what the merchant's template does.
        plain = self._load(self._plain, template_name, where)
        if kind is ChannelKind.SMS:
            with budget(self.limits):
                text = _run(plain, plain.root_render_func, context, where, self.limits)
            return Rendered(subject=None, text=text.strip(), html=None, locale=folder)
        for block in _EMAIL_BLOCKS:
            if block not in plain.blocks:
                raise _Failure(where, 1, f"email template has no {{% block {block} %}}")
        escaped = self._load(self._html, template_name, where) if "html" in plain.blocks else None
        with budget(self.limits):
            subject = _run(plain, plain.blocks["subject"], context, where, self.limits)
            text = _run(plain, plain.blocks["text"], context, where, self.limits)
            html: str | None = None
            if escaped is not None:
                html = _run(escaped, escaped.blocks["html"], context, where, self.limits).strip()
        return Rendered(
            subject=" ".join(subject.split()), text=text.strip(), html=html, locale=folder
        )

    @staticmethod
    def _load(env: BoundedSandbox, template_name: str, where: str) -> Template:
        try:
            return env.get_template(template_name)
        except TemplateSyntaxError as exc:
            raise _Failure(exc.filename or where, exc.lineno, exc.message or str(exc)) from exc
        except TemplateNotFound as exc:
            raise _Failure(where, 1, "template not found") from exc


def _filename(name: str, kind: ChannelKind) -> str:
    return f"{name}.{kind.value}.j2"


def _run(
    template: Template,
    render: Callable[[Context], Iterator[str]],
    context: Mapping[str, Any],
    where: str,
    limits: RenderLimits,
) -> str:
    """Run a template's root or block function, turning any failure into a located one."""
    try:
        pieces: list[str] = []
        size = 0
        for piece in render(template.new_context(dict(context))):
            check_time()
            size += len(piece)
            if size > limits.max_output_chars:
                raise BudgetExceeded(
                    f"render produced more than {limits.max_output_chars} characters "
                    "(render.max_output_chars)"
                )
            pieces.append(piece)
        return "".join(pieces)
    except TemplateSyntaxError as exc:  # from an included template
        raise _Failure(exc.filename or where, exc.lineno, exc.message or str(exc)) from exc
    except Exception as exc:  # a merchant's template may fail in any way
        path, line = _template_line(exc, where)
        raise _Failure(path, line, _reason(exc)) from exc


def _template_line(exc: BaseException, where: str) -> tuple[str, int]:
    """The innermost template frame of the traceback, as (file, template line)."""
    path, line = where, 1
    tb = exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None and template.filename:
            path, line = template.filename, template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return path, line


def _reason(exc: Exception) -> str:
    message = str(exc)
    if isinstance(exc, UndefinedError):
        if found := _UNDEFINED.match(message):
            return f"unknown variable {found['name']!r}"
        if found := _NO_ATTRIBUTE.match(message):
            return f"unknown field {found['name']!r} (in {found['owner']})"
        return f"undefined: {message}"
    if isinstance(exc, BudgetExceeded):
        return f"render budget exceeded: {message}"
    if isinstance(exc, SecurityError):
        return f"not allowed in a template: {message}"
    if isinstance(exc, TemplateNotFound):
        return f"included template {message!r} not found"
    return f"{type(exc).__name__}: {message}"
