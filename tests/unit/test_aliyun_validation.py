"""``carebot validate`` with Alibaba Cloud SMS: every SMS rule names an approved template."""

from __future__ import annotations

from pathlib import Path

from carebot.rulebook.validation import CheckOptions, validate_rules

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "message_templates"

RULES = """\
rules:
  - id: shipped
    on: order.shipped
    send:
      channel: sms
      template: shipped
      aliyun:
        code: SMS_465120001
        params:
          name: "{{ customer.name }}"
          order: "{{ order.id }}"
  - id: no-mapping
    on: order.shipped
    send: {channel: preferred, template: shipped}
  - id: too-long
    on: order.shipped
    send:
      channel: sms
      template: shipped
      aliyun:
        code: SMS_465120002
        params:
          name: "{{ customer.name * 20 }}"
  - id: link
    on: order.shipped
    send:
      channel: sms
      template: shipped
      aliyun:
        code: SMS_465120003
        params:
          url: "https://shop.example/t/{{ order.id }}"
  - id: unknown-name
    on: order.shipped
    send:
      channel: sms
      template: shipped
      aliyun: {code: SMS_465120004, params: {who: "{{ customer.nickname }}"}}
  - id: merchant-mail
    on: order.shipped
    audience: merchant
    send: {channel: email, template: shipped}
"""


def problems(tmp_path: Path, provider: str) -> list[str]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "china.yaml").write_text(RULES, encoding="utf-8")
    found = validate_rules(
        rules, TEMPLATES, CheckOptions(default_locale="zh-CN", sms_provider=provider)
    )
    return [str(p) for p in found]


def test_with_aliyun_each_sms_rule_without_a_template_or_with_a_bad_parameter_is_reported(
    tmp_path: Path,
) -> None:
    found = problems(tmp_path, "aliyun")
    by_rule = {
        rule: [p for p in found if f"rule {rule!r}" in p]
        for rule in ("shipped", "no-mapping", "too-long", "link", "unknown-name", "merchant-mail")
    }
    assert by_rule["shipped"] == []
    assert by_rule["merchant-mail"] == []
    assert len(by_rule["no-mapping"]) == 1 and "send.aliyun" in by_rule["no-mapping"][0]
    assert ":14:" in by_rule["no-mapping"][0]  # the rule's send line
    assert "Alibaba Cloud allows 35" in by_rule["too-long"][0]
    assert "link" in by_rule["link"][0]
    assert "nickname" in by_rule["unknown-name"][0]
    assert len(found) == 4


def test_with_twilio_the_aliyun_blocks_are_not_required(tmp_path: Path) -> None:
    assert problems(tmp_path, "twilio") == []


def test_a_reserved_or_malformed_variable_name_is_a_schema_error(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yaml").write_text(
        "rules:\n"
        "  - id: r\n"
        "    on: order.shipped\n"
        "    send: {channel: sms, template: shipped,\n"
        "           aliyun: {code: SMS_1, params: {mobile: '{{ customer.phone }}'}}}\n"
        "  - id: s\n"
        "    on: order.shipped\n"
        "    send: {channel: sms, template: shipped, aliyun: {code: '123', params: {}}}\n",
        encoding="utf-8",
    )
    found = [str(p) for p in validate_rules(rules, TEMPLATES, CheckOptions(default_locale="zh-CN"))]
    assert any("mobile" in p and "does not allow" in p for p in found)
    assert any("SMS_" in p for p in found)
