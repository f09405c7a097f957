"""The portal's words: one catalogue, both languages complete, no visible text written in
a template, and the reader's language chosen by the switch's cookie, then Accept-Language."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from services.portal import messages

TEMPLATES = Path(messages.__file__).parent / "templates"


def test_every_key_has_both_languages_with_the_same_placeholders():
    zh, en = messages.CATALOGUE["zh-CN"], messages.CATALOGUE["en"]
    assert zh.keys() == en.keys()
    fields = lambda text: sorted(f for _, f, _, _ in string.Formatter().parse(text) if f)  # noqa: E731
    assert [k for k in zh if fields(zh[k]) != fields(en[k])] == []
    assert [k for k in zh if not zh[k].strip() or not en[k].strip()] == []


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_write_no_visible_text_of_their_own(template):
    source = template.read_text()
    bare = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", source, flags=re.S)
    bare = re.sub(r"<[^>]*>", " ", bare)
    words = [w for w in bare.split() if any(c.isalpha() for c in w)]
    assert words == [], f"{template.name} writes {words}: put them in services/portal/messages.py"


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_name_only_keys_of_the_catalogue(template):
    source = template.read_text()
    keys = re.findall(r"\bt\('([^']+)'\s*[,)]", source)
    prefixes = re.findall(r"\bt\('([^']+\.)'\s*~", source)
    assert [k for k in keys if k not in messages.CATALOGUE["en"]] == []
    assert [p for p in prefixes if not any(k.startswith(p) for k in messages.CATALOGUE["en"])] == []


@pytest.mark.parametrize(("cookie", "accept", "chosen"), [
    (None, None, "zh-CN"),
    (None, "", "zh-CN"),
    (None, "en-GB,en;q=0.9", "en"),
    (None, "fr-FR, en;q=0.5, zh;q=0.8", "zh-CN"),
    (None, "de, en;q=0.3", "en"),
    (None, "en;q=0, zh-TW", "zh-CN"),
    (None, "fr", "zh-CN"),
    (None, "en;q=abc, zh", "zh-CN"),
    ("en", "zh-CN", "en"),
    ("zh-CN", "en", "zh-CN"),
    ("xx", "en", "en"),
])
def test_the_language_is_the_cookie_else_accept_language_else_chinese(cookie, accept, chosen):
    assert messages.choose(cookie, accept) == chosen


def test_a_step_is_told_with_its_figures_in_words():
    figures = {"outcome": "no_quorum", "turnout": 40.0, "in_favour": 2, "against": 0, "abstain": 0}
    assert messages.describe("en", "VoteClosed", figures) == \
        "Vote closed: no quorum, turnout 40.0% (2 for, 0 against, 0 abstaining)"
    assert messages.describe("zh-CN", "FundsSpent", {"amount_fen": 123456}) == "支出 ¥1,234.56"
