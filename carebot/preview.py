"""``carebot preview``: what one rule would send for one event, and when, without a database.

The facts are the event folded into an empty store (``carebot.fold``, the store's own merge
rules), then the real planner computes the due time and the reasons for it, and the real
renderer renders each message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from carebot.channels.base import ChannelKind
from carebot.events import Event
from carebot.exceptions import CarebotError, ExpressionError
from carebot.facts import Facts, facts_from_rows, shipment_facts
from carebot.fold import StoredState, fold
from carebot.masking import mask_recipient
from carebot.planning import Planner, build_context
from carebot.rendering import RenderLimits, TemplateRenderer
from carebot.rulebook.expressions import compile_condition
from carebot.rulebook.schema import Rulebook
from carebot.rulebook.windows import DailyWindow
from carebot.runtime import planning_policy
from carebot.segments import count_segments
from carebot.settings import Settings

__all__ = ["PreviewMessage", "facts_from_event", "format_preview", "preview"]


@dataclass(frozen=True)
class PreviewMessage:
    """One message the rule would produce: where, when and why then, and what it says."""

    rule: str
    channel: str
    recipient: str | None  # masked
    locale: str
    timezone: str
    due_at: datetime  # in the customer's zone
    why: tuple[str, ...]
    status: str
    reason: str | None
    subject: str | None
    text: str | None
    html: str | None


def facts_from_event(event: Event, *, locale: str | None = None) -> Facts:
    """The facts a store would hold after seeing only ``event`` (``locale`` overrides)."""
    state = fold(StoredState(), event)
    customer = state.customer
    if locale:
        customer = {**(customer or {}), "locale": locale}
    shipment = None
    if state.shipment is not None and event.shipment is not None:
        shipment = shipment_facts(state.shipment, event.shipment.id)
    if state.order is None or event.order_id is None:
        return Facts(customer=customer, shipment=shipment)
    return facts_from_rows(
        event.order_id, state.order, customer=customer, shipment=shipment, items=state.items
    )


def preview(
    rule_id: str,
    event: Event,
    *,
    rulebook: Rulebook,
    settings: Settings,
    locale: str | None = None,
) -> list[PreviewMessage]:
    """Plan and render ``rule_id`` for ``event`` as if it arrived when it occurred.

    Raises ``CarebotError`` saying why when the rule does not exist, does not trigger on this
    event type, or its ``when`` is false for this event.
    """
    rule = rulebook.rule(rule_id)
    if rule is None:
        known = ", ".join(r.id for r in rulebook.rules) or "none"
        raise CarebotError(f"no rule {rule_id!r} in {settings.rules_dir} (rules: {known})")
    if str(event.type) not in rule.on:
        raise CarebotError(
            f"rule {rule_id!r} does not trigger on {event.type} (it triggers on "
            f"{', '.join(rule.on)})"
        )
    facts = facts_from_event(event, locale=locale)
    policy = planning_policy(settings)
    if rule.when:
        context = build_context(event, facts, rulebook=rulebook, shop_name=policy.shop_name)
        try:
            holds = compile_condition(rule.when)(context)
        except ExpressionError as exc:
            raise CarebotError(f"rule {rule_id!r}: when: {exc}") from exc
        if not holds:
            raise CarebotError(
                f"rule {rule_id!r} sends nothing for event {event.id}: its when "
                f"({rule.when}) is false for this event"
            )
    only = rulebook.model_copy(update={"rules": (rule,)})
    plan = Planner(policy=policy).plan(event, facts, rulebook=only, now=event.occurred_at)
    if not plan.notifications:
        raise CarebotError(f"rule {rule_id!r} plans nothing for event {event.id}")
    settled = _settled_reasons(rule.delay, rule.window, policy.quiet_hours)
    renderer = TemplateRenderer(
        templates_dir=settings.templates_dir,
        default_locale=settings.default_locale,
        limits=RenderLimits(**settings.render.model_dump()),
    )
    messages = []
    for planned in plan.notifications:
        rendered = renderer.render(
            planned.template, ChannelKind(planned.channel), planned.locale, planned.context
        )
        messages.append(
            PreviewMessage(
                rule=rule.id,
                channel=planned.channel,
                recipient=mask_recipient(planned.recipient) if planned.recipient else None,
                locale=rendered.locale,
                timezone=planned.timezone,
                due_at=planned.due_at.astimezone(ZoneInfo(planned.timezone)),
                why=tuple(planned.why) or settled,
                status=str(planned.status),
                reason=planned.reason,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
            )
        )
    return messages


def _settled_reasons(
    delay: str | None, window: str | None, quiet: DailyWindow | None
) -> tuple[str, ...]:
    """Why a message is due at once: what could have moved it, and that nothing did."""
    reasons = ["no delay" if not delay else f"delay {delay}"]
    if quiet is not None:
        reasons.append(f"outside quiet hours {quiet}")
    else:
        reasons.append("no quiet hours")
    if window:
        reasons.append(f"inside the rule's window {window}")
    return tuple(reasons)


def format_preview(message: PreviewMessage, occurred_at: datetime) -> str:
    """The readable block ``carebot preview`` prints for one message."""
    due = message.due_at
    at_once = due <= occurred_at
    why = "; ".join(message.why)
    lines = [
        f"rule:     {message.rule}",
        f"channel:  {message.channel} to {message.recipient or '-'} (locale {message.locale})",
        f"due:      {due:%Y-%m-%d %H:%M} {message.timezone} ({due:%z})"
        + (" — at once" if at_once else ""),
        f"why:      {why}",
    ]
    if message.reason:
        lines.append(f"status:   {message.status}: {message.reason}")
    if message.subject is not None:
        lines.append(f"subject:  {message.subject}")
    if message.channel == "sms" and message.text:
        encoding, segments = count_segments(message.text)
        lines.append(f"segments: {segments} ({encoding})")
    lines.append("text:")
    lines.extend(f"  {line}" for line in (message.text or "").splitlines())
    return "\n".join(lines)
