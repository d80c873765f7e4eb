"""engine/codec.py: texts kept parsed (``shared``, ``kept``), and the suite's check that nobody changes them."""

from __future__ import annotations

import pytest

from axme_cli.runtime.engine import codec


@pytest.fixture(autouse=True)
def _empty(monkeypatch: pytest.MonkeyPatch) -> None:
    codec._parsed.clear()
    monkeypatch.setattr(codec, "_chars", 0)


def test_shared_parses_a_text_once_and_gives_the_same_value_again() -> None:
    first = codec.shared('{"a":[1,2],"b":{"c":null}}')
    assert first == {"a": [1, 2], "b": {"c": None}}
    assert codec.shared('{"a":[1,2],"b":{"c":null}}') is first


def test_kept_is_the_text_of_dumps_and_what_shared_gives_for_it() -> None:
    value = {"status": "DELIVERED", "details": {"attempt": 1}}
    text = codec.kept(value)
    assert text == codec.dumps(value)
    assert codec.shared(text) is value


def test_a_full_memo_starts_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_PARSED_MAX", 2)
    a, b = codec.shared("[1]"), codec.shared("[2]")
    assert codec.shared("[3]") == [3]  # the memo was full: emptied, then this one kept
    assert codec.shared("[1]") == a and codec.shared("[1]") is not a
    assert b == [2]


def test_a_long_text_is_not_kept_and_the_texts_kept_are_bounded_in_length(monkeypatch: pytest.MonkeyPatch) -> None:
    long = codec.dumps({"blob": "x" * (codec._TEXT_MAX + 1)})
    assert codec.shared(long) is not codec.shared(long)  # parsed each time, as before
    assert codec.kept({"blob": "x" * (codec._TEXT_MAX + 1)}) not in codec._parsed
    monkeypatch.setattr(codec, "_CHARS_MAX", 10)
    monkeypatch.setattr(codec, "_chars", 0)
    codec.shared("[111,222]")  # 9 characters
    codec.shared("[333,444]")  # 18: over the bound, so the next one starts again
    assert len(codec._parsed) == 2
    codec.shared("[5]")
    assert list(codec._parsed) == ["[5]"]


def test_the_suite_finds_a_shared_value_that_was_changed() -> None:
    assert codec._CHECK  # tests/__init__.py sets AXME_CHECK_SHARED before axme_cli is imported
    value = codec.shared('{"history":[]}')
    value["history"].append({"step_id": "x"})
    with pytest.raises(RuntimeError, match="was changed"):
        codec.shared('{"history":[]}')
