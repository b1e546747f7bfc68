"""A merchant's template cannot take the machine: bounded time, sizes and output."""

from __future__ import annotations

import resource
import time
import tracemalloc
from pathlib import Path

import pytest

from carebot.channels.base import ChannelKind
from carebot.exceptions import TemplateError
from carebot.rendering import RenderLimits, TemplateRenderer
from carebot.rulebook.samples import sample_context

LIMITS = RenderLimits(timeout_seconds=0.5, max_output_chars=10_000, max_sequence_items=10_000)


def render(tmp_path: Path, source: str, limits: RenderLimits = LIMITS) -> str:
    folder = tmp_path / "zh-CN"
    folder.mkdir(exist_ok=True)
    (folder / "t.sms.j2").write_text(source, encoding="utf-8")
    renderer = TemplateRenderer(templates_dir=tmp_path, default_locale="zh-CN", limits=limits)
    return renderer.render("t", ChannelKind.SMS, "zh-CN", sample_context("order.shipped")).text


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10**9 }}",
        "{{ 10**9 * 'a' }}",
        "{{ [1] * 10**9 }}",
        "{% set s = 'a' * 9000 %}{{ s + s }}",
        "{{ 'a'.center(10**9) }}",
        "{{ 'a'.ljust(10**9) }}",
        "{{ '{:>999999999}'.format('a') }}",
        "{{ '{:{}}'.format('a', 999999999) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%.999999999f' % 1 }}",
        "{{ '%999999999s'|format('a') }}",
        "{{ 'a'|center(999999999) }}",
        "{{ 'a'|indent(999999999, true) }}",
        "{{ 9 ** 999999999 }}",
        "{{ 2 ** (2 ** 70) }}",
    ],
)
def test_a_huge_allocation_is_refused_at_once_with_a_reason(tmp_path: Path, source: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(TemplateError, match="render budget exceeded"):
        render(tmp_path, source)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - started < 2
    assert peak < 20_000_000


@pytest.mark.parametrize(
    "source",
    [
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{% set xs = [1] * 10000 %}{% for a in xs %}{% for b in xs %}{% endfor %}{% endfor %}",
        "{% set xs = 'a' * 10000 %}{% for a in xs %}{% for b in xs %}{{ '' }}{% endfor %}"
        "{% endfor %}",
        "{% for a in range(100000) %}{% for b in range(100000) %}{% if a > b %}{% endif %}"
        "{% endfor %}{% endfor %}",
    ],
)
def test_a_render_past_its_time_budget_fails_with_a_reason(tmp_path: Path, source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateError, match=r"render took longer than 0.5 s"):
        render(tmp_path, source)
    assert time.perf_counter() - started < 3


def test_a_render_producing_too_much_text_fails_with_a_reason(tmp_path: Path) -> None:
    source = "{% for a in range(5000) %}{{ 'abcdefghij' }}{% endfor %}"
    with pytest.raises(TemplateError, match="more than 10000 characters"):
        render(tmp_path, source)


def test_ordinary_templates_are_untouched_by_the_budget(tmp_path: Path) -> None:
    source = (
        "{{ '%s-%05d' % ('A', 42) }} {{ '{:>6}'.format(order.id) }} {{ 'ab' * 3 }} "
        "{{ 2 ** 10 }} {{ [1, 2] + [3] }} {{ 'x'|center(5) }} "
        "{% for item in items %}{{ loop.index }}{{ item.sku }}{% endfor %}"
        "{{ '%s'|format(1234567890123) }} {{ '{}'.format(98765432101234) }}"
    )
    text = render(tmp_path, source)
    assert text.startswith("A-00042 ")
    assert "ababab 1024 [1, 2, 3]" in text
    assert "1234567890123 98765432101234" in text


def test_a_budget_does_not_leak_into_the_next_render(tmp_path: Path) -> None:
    with pytest.raises(TemplateError):
        render(tmp_path, "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
               "{% endfor %}")  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    assert render(tmp_path, "{{ order.id }}") != ""
    assert resource.getrusage(resource.RUSAGE_SELF).ru_utime - before < 1
