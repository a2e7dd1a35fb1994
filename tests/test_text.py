"""The core sanitiser: directory and API strings become plain, printable text."""

from hypothesis import given
from hypothesis import strategies as st

from core.text import plain


def test_strips_escape_sequences_and_controls():
    assert plain("\x1b[31mRed\x1b[0m") == "[31mRed[0m"
    assert plain("a\x00b\x07c\x7fd\x9be") == "abcde"


def test_markup_is_kept_as_literal_text():
    assert plain("[@click=app.quit]x[/]") == "[@click=app.quit]x[/]"


def test_line_breaks_become_spaces_unless_multi_line():
    assert plain("one\ntwo\tthree") == "one two three"
    assert plain("one\ntwo", single_line=False) == "one\ntwo"


def test_none_is_empty():
    assert plain(None) == ""


@given(st.text())
def test_output_never_contains_control_characters(value):
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in plain(value))
