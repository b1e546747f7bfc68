"""Reply capture: the score in a customer's reply and the after-sales category of its words."""

from __future__ import annotations

from pathlib import Path

import pytest

from carebot.feedback import OTHER, assess, parse_score
from carebot.rulebook.loader import load_rulebook, load_rulebook_text
from carebot.rulebook.schema import FeedbackCategory

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="module")
def categories() -> tuple[FeedbackCategory, ...]:
    return load_rulebook(RULES).feedback


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("2 罐子压坏了", 2),
        ("5", 5),
        ("  4分，还不错", 4),
        ("５分", 5),  # full-width digit
        ("给３分吧", 3),
        ("五星好评", 5),
        ("三", 3),
        ("给两颗星", 2),
        ("打一分", 1),
        ("great, 5/5", 5),
    ],
)
def test_the_score_is_the_first_number_or_a_chinese_numeral(text: str, score: int) -> None:
    assert parse_score(text) == score


@pytest.mark.parametrize(
    "text",
    [
        "",
        "很好用，谢谢",
        "一般般",  # 一 starting a word is not a score
        "一直在用，不错",
        "ordered 10 tins",  # a number out of 1-5 is not a score
        "0",
        "thanks!",
    ],
)
def test_a_reply_without_a_score_has_none(text: str) -> None:
    assert parse_score(text) is None


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("2 罐子压坏了", "damaged_in_transit"),
        ("The tin arrived DENTED", "damaged_in_transit"),
        ("发错货了，我买的是三段", "wrong_item"),
        ("wrong size, please exchange", "wrong_item"),
        ("奶粉结块，是不是过期了", "product_quality"),
        ("物流太慢了", "logistics_speed"),
        ("客服态度差", "service_attitude"),
        ("5 很满意", OTHER),
    ],
)
def test_the_keyword_table_in_rules_classifies_replies(
    text: str, category: str, categories: tuple[FeedbackCategory, ...]
) -> None:
    assert assess(text, categories).category == category


def test_a_low_score_needs_attention_even_without_a_complaint_word(
    categories: tuple[FeedbackCategory, ...],
) -> None:
    low = assess("1", categories)
    assert (low.score, low.category, low.complaint, low.needs_attention) == (1, OTHER, False, True)
    happy = assess("5 很满意", categories)
    assert not happy.needs_attention


def test_a_complaint_with_a_high_score_still_needs_attention(
    categories: tuple[FeedbackCategory, ...],
) -> None:
    found = assess("4 东西不错但是盒子压坏了", categories)
    assert (found.score, found.category, found.needs_attention) == (4, "damaged_in_transit", True)


def test_the_first_matching_category_in_file_order_wins() -> None:
    rulebook = load_rulebook_text(
        "feedback:\n  - {id: first, keywords: [坏]}\n  - {id: second, keywords: [压坏]}\n"
    )
    assert assess("压坏了", rulebook.feedback).category == "first"


def test_a_merchant_category_marked_not_a_complaint_does_not_alert() -> None:
    rulebook = load_rulebook_text(
        "feedback:\n  - {id: praise, complaint: false, keywords: [喜欢, love]}\n"
    )
    found = assess("I love it", rulebook.feedback)
    assert (found.category, found.complaint, found.needs_attention) == ("praise", False, False)
