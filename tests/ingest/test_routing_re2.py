"""Rule regexes are RE2: what it cannot match in linear time is refused at save with the
construct named, and the shapes that made Python's `re` backtrack for minutes match at once."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from app.errors import InputError
from app.ingest._regex import MAX_MEM, Regex, RegexRefused, compiled
from app.ingest.alert import Alert
from app.ingest.routing import Condition, holds, parse_rule, regex_problem
from tests.ingest.test_routing import ALERT, DB

# Far above a linear match of 1 KiB (microseconds), far below a backtracking one (minutes);
# a bound on a wait, not a speed measure.
LINEAR_SECONDS = 1.0


def rule_with(pattern: str) -> dict[str, Any]:
    return {
        "name": "r",
        "conditions": [{"field": "summary", "op": "regex", "value": pattern}],
        "service_ids": [str(DB.id)],
    }


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(?=a)b", "lookahead (?=…) is not supported: rules use RE2 syntax"),
        ("(?!a)b", "negative lookahead (?!…) is not supported: rules use RE2 syntax"),
        ("(?<=a)b", "lookbehind (?<=…) is not supported: rules use RE2 syntax"),
        ("(?<!a)b", "negative lookbehind (?<!…) is not supported: rules use RE2 syntax"),
        ("(a)\\1", "backreference \\1 is not supported: rules use RE2 syntax"),
        ("(?P<x>a)(?P=x)", "backreference (?P=name) is not supported: rules use RE2 syntax"),
        ("(?<x>a)\\k<x>", "backreference \\k is not supported: rules use RE2 syntax"),
        ("a++", "possessive quantifier ++ is not supported: rules use RE2 syntax"),
        ("a*+b", "possessive quantifier *+ is not supported: rules use RE2 syntax"),
        ("a{2}+", "possessive quantifier {2}+ is not supported: rules use RE2 syntax"),
        ("(?>a+)b", "atomic group (?>…) is not supported: rules use RE2 syntax"),
        ("(?#note)a", "comment (?#…) is not supported: rules use RE2 syntax"),
        ("(?x) a", "flag (?x) is not supported: rules use RE2 syntax, whose flags are i, m, s"),
        ("a\\Z", "\\Z is not supported: rules use RE2 syntax; write \\z for the end of the text"),
        ("\\Gabc", "escape \\G is not supported: rules use RE2 syntax"),
        ("a{1000}{1000}", "a repetition of a repetition, {1000}{1000}, is not supported"),
        ("a**", "a repetition of a repetition, **, is not supported"),
        ("a{1001}", "repetition {1001} is out of range: a count goes up to 1000"),
        ("((a{100}){100}){100}", "repetition {100} is out of range"),
        ("\\pL{999}\\pL{999}\\pL{999}\\pL{999}", "is too large: compiled, it needs more memory"),
        ("(", "is not a valid regular expression: missing ): ("),
        ("[z-a]", "is not a valid regular expression: invalid character class range: z-a"),
        ("\\", "is not a valid regular expression: trailing \\"),
    ],
)
def test_what_re2_refuses_is_named_at_the_rules_field(pattern: str, message: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_rule(rule_with(pattern))
    assert refused.value.field == "conditions[0].value"
    assert refused.value.message.startswith(message), refused.value.message
    assert refused.value.status == 422


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("^(a|a)*b$", "a" * 30, False),
        ("^(a|a)*b$", "a" * 1023 + "b", True),
        ("(a*)*b", "a" * 1024, False),
        ("(x+x+)+y", "x" * 1024, False),
        ("(x+x+)+y", "x" * 1000 + "y", True),
        ("\\w+x", "a" * 1024, False),
        ("^(\\w+\\s?)*$", "word " * 200 + "!", False),
        ("(a+)+$", "a" * 1023 + "!", False),
        ("(.*a){20}", "a" * 1024, True),
        ("(a|aa)*c", "a" * 1024, False),
    ],
)
def test_shapes_that_backtrack_in_python_are_linear(
    pattern: str, value: str, expected: bool
) -> None:
    parse_rule(rule_with(pattern))
    started = time.monotonic()
    assert holds(Condition("summary", "regex", pattern), replace(ALERT, summary=value)) is expected
    assert time.monotonic() - started < LINEAR_SECONDS


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("(?i)^DISK", "disk full", True),
        ("(?i:db)\\d", "DB1", True),
        ("^db\\d+\\.example\\.com$", "db12.example.com", True),
        ("^db\\d+\\.example\\.com$", "db12.example.com\n", False),
        ("(?m)^full$", "disk\nfull\nnow", True),
        ("(?s)disk.full", "disk\nfull", True),
        ("disk.full", "disk\nfull", False),
        ("\\pL+ø", "Ærø", True),
        ("^.{3}$", "日本語", True),
        ("(?P<host>db)\\d", "db1", True),
        ("\\Qa.b\\E", "a.b", True),
        ("\\Qa.b\\E", "axb", False),
        ("end\\z", "the end", True),
        ("a{,2}", "a{,2}", True),
    ],
)
def test_re2_syntax_and_meaning(pattern: str, value: str, expected: bool) -> None:
    parse_rule(rule_with(pattern))
    assert holds(Condition("summary", "regex", pattern), replace(ALERT, summary=value)) is expected


def test_a_lone_surrogate_in_a_value_is_one_character_and_never_fails_the_alert() -> None:
    alert = replace(ALERT, labels={"host": "db1\ud800x"})
    assert holds(Condition("labels.host", "regex", "^db1"), alert)
    assert holds(Condition("labels.host", "regex", "^db1.x$"), alert)
    assert not holds(Condition("labels.host", "regex", "^db1\\pLx$"), alert)


def test_a_stored_pattern_re2_refuses_matches_nothing() -> None:
    # Saved when rules were Python's `re`: valid there, refused by RE2.
    for pattern in ("(?=Disk)Disk", "a\\Z", "(.)\\1"):
        assert not holds(Condition("summary", "regex", pattern), ALERT)
        assert regex_problem(pattern) is not None


def test_refusals_are_remembered_not_recompiled() -> None:
    first = compiled("(?=x)")
    assert isinstance(first, RegexRefused)
    assert compiled("(?=x)") is first


def test_the_program_is_bounded_by_max_mem() -> None:
    # 200 characters of the largest repetitions compile to some 12 000 instructions at most.
    refused = compiled("[\\s\\S]{1000}" * 10)
    assert isinstance(refused, RegexRefused)
    assert "too large" in refused.message
    largest = compiled("[a-z]{1000}" * 2)
    assert isinstance(largest, Regex)
    assert largest.size < MAX_MEM // 16


def test_an_alert_without_the_field_never_reaches_the_regex() -> None:
    alert = Alert(status="firing", dedup_key="k", summary=None)
    assert not holds(Condition("summary", "regex", ".*"), alert)
    assert not holds(Condition("labels.none", "regex", ".*"), alert)
