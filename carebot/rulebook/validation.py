"""Everything ``carebot validate`` checks, as a sorted list of located problems."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from carebot.channels._aliyun import param_problem
from carebot.channels.base import ChannelKind
from carebot.exceptions import ExpressionError, Problem, TemplateError
from carebot.rendering import TemplateRenderer
from carebot.rulebook.expressions import compile_condition, render_value
from carebot.rulebook.loader import (
    DEFAULT_RULE_LIMITS,
    LoadResult,
    RuleLimits,
    RuleSource,
    read_rules,
)
from carebot.rulebook.samples import sample_context
from carebot.rulebook.schema import Audience, ChannelChoice, Rule
from carebot.rulebook.windows import parse_duration
from carebot.sandbox import DEFAULT_RENDER_LIMITS, RenderLimits
from carebot.segments import count_segments

__all__ = ["CheckOptions", "channel_kinds", "check_rules", "validate_rules"]

_KINDS: dict[ChannelChoice, tuple[ChannelKind, ...]] = {
    ChannelChoice.SMS: (ChannelKind.SMS,),
    ChannelChoice.EMAIL: (ChannelKind.EMAIL,),
    ChannelChoice.BOTH: (ChannelKind.SMS, ChannelKind.EMAIL),
    # The customer's preferred channel may be either, so both templates must exist.
    ChannelChoice.PREFERRED: (ChannelKind.SMS, ChannelKind.EMAIL),
}


def channel_kinds(choice: ChannelChoice) -> tuple[ChannelKind, ...]:
    """The channels a rule's ``send.channel`` may use, hence the templates it needs."""
    return _KINDS[choice]


@dataclass(frozen=True)
class CheckOptions:
    """How to check a rules folder (``carebot validate`` and a reload take them from settings).

    ``shop_name`` (the configured one) makes SMS segment counts match what customers get;
    with ``sms_provider`` ``aliyun`` every SMS rule needs its approved template (``send.aliyun``).
    """

    default_locale: str
    shop_name: str | None = None
    limits: RuleLimits = DEFAULT_RULE_LIMITS
    render: RenderLimits = DEFAULT_RENDER_LIMITS
    sms_provider: str = "twilio"


def check_rules(
    rules_dir: Path, templates_dir: Path, options: CheckOptions
) -> tuple[LoadResult, list[Problem]]:
    """Load the rules and check them; the load (for a reload to apply) and every problem."""
    loaded = read_rules(rules_dir, limits=options.limits)
    problems = set(loaded.problems)
    renderer = TemplateRenderer(
        templates_dir=templates_dir,
        default_locale=options.default_locale,
        strict=True,
        limits=options.render,
    )
    checker = _TemplateChecker(renderer, options.default_locale, options.shop_name)
    for rule in loaded.rulebook.rules:
        source = loaded.sources[rule.id]
        problems.update(_check_expressions(rule, source))
        problems.update(checker.check(rule, source))
        if options.sms_provider == "aliyun":
            problems.update(_check_aliyun(rule, source))
    return loaded, sorted(problems, key=lambda p: (p.path, p.line, p.col, p.message))


def validate_rules(rules_dir: Path, templates_dir: Path, options: CheckOptions) -> list[Problem]:
    """Load the rules and check every condition, delay and template against sample data."""
    return check_rules(rules_dir, templates_dir, options)[1]


def _check_aliyun(rule: Rule, source: RuleSource) -> Iterator[Problem]:
    """An SMS rule names an approved template whose variables render within the limits."""
    if rule.audience == Audience.MERCHANT or ChannelKind.SMS not in channel_kinds(
        rule.send.channel
    ):
        return
    label = f"rule {rule.id!r}"
    template = rule.send.aliyun
    if template is None:
        yield source.at("send").problem(
            f"{label}: send.aliyun: Alibaba Cloud SMS sends approved templates only; "
            "name the template CODE and its params (see docs/rules.md, aliyun)"
        )
        return
    for event_type in rule.on:
        context = sample_context(event_type)
        for name, value in template.params.items():
            where = source.at("send", "aliyun", "params", name)
            try:
                rendered = render_value(value, context, strict=True)
            except ExpressionError as exc:
                yield where.problem(f"{label}: send.aliyun.params.{name}: {exc}")
                continue
            reason = param_problem(rendered)
            if reason is not None:
                yield where.problem(
                    f"{label}: send.aliyun.params.{name} {reason} ({event_type} sample: "
                    f"{rendered[:60]!r})"
                )


def _check_expressions(rule: Rule, source: RuleSource) -> Iterator[Problem]:
    label = f"rule {rule.id!r}"
    context = sample_context(rule.on[0])
    if rule.when is not None:
        try:
            compile_condition(rule.when, strict=True)(context)
        except ExpressionError as exc:
            yield source.at("when").problem(f"{label}: when: {exc}")
    if rule.wait_for is not None:
        try:
            compile_condition(rule.wait_for, strict=True)(context)
        except ExpressionError as exc:
            yield source.at("wait_for").problem(f"{label}: wait_for: {exc}")
    if rule.delay is not None and "{{" in rule.delay:
        try:
            parse_duration(render_value(rule.delay, context, strict=True))
        except (ExpressionError, ValueError) as exc:
            yield source.at("delay").problem(f"{label}: delay: {exc}")


class _TemplateChecker:
    """Checks the templates rules name; renders each (template, locale, event) only once."""

    def __init__(
        self, renderer: TemplateRenderer, default_locale: str, shop_name: str | None
    ) -> None:
        self._renderer = renderer
        self._default = default_locale
        self._shop_name = shop_name
        self._locales = renderer.locales()
        self._rendered: dict[tuple[str, ChannelKind, str, str], list[Problem]] = {}
        self._segments: dict[tuple[str, str, str], tuple[str, int] | None] = {}

    def check(self, rule: Rule, source: RuleSource) -> Iterator[Problem]:
        name = rule.send.template
        for kind in channel_kinds(rule.send.channel):
            if not self._renderer.exists(name, kind, self._default):
                expected = self._renderer.path(name, kind, self._default)
                yield source.at("send", "template").problem(
                    f"rule {rule.id!r}: send.template: no {kind} template {name!r} for the "
                    f"default locale {self._default} (expected {expected})"
                )
            for locale in self._locales:
                if not self._renderer.exists(name, kind, locale):
                    continue
                for event_type in rule.on:
                    yield from self._render(name, kind, locale, event_type)
                    if kind is ChannelKind.SMS:
                        yield from self._check_segments(rule, source, locale, event_type)

    def _check_segments(
        self, rule: Rule, source: RuleSource, locale: str, event: str
    ) -> Iterator[Problem]:
        key = (rule.send.template, locale, event)
        if key not in self._segments:
            self._segments[key] = self._count(*key)
        counted = self._segments[key]
        if counted is None or counted[1] <= rule.max_segments:
            return
        encoding, segments = counted
        where = "max_segments" if "max_segments" in rule.model_fields_set else "send"
        yield source.at(where).problem(
            f"rule {rule.id!r}: the sms template {rule.send.template!r} ({locale}) takes "
            f"{segments} {encoding.upper()} segments with sample {event} data; "
            f"max_segments is {rule.max_segments}"
        )

    def _count(self, name: str, locale: str, event: str) -> tuple[str, int] | None:
        context = sample_context(event, locale=locale)
        if self._shop_name:
            context["shop"] = {"name": self._shop_name}
        try:
            text = self._renderer.render(name, ChannelKind.SMS, locale, context).text
        except TemplateError:
            return None  # the rendering problem itself is reported by ``_render``
        return count_segments(text)

    def _render(self, name: str, kind: ChannelKind, locale: str, event: str) -> list[Problem]:
        key = (name, kind, locale, event)
        if key not in self._rendered:
            context = sample_context(event, locale=locale)
            self._rendered[key] = self._renderer.check(name, kind, locale, context)
        return self._rendered[key]
