"""Filter and DN escaping: the only way values enter filters and DNs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from core.escape import child_dn, filter_value, parent_dn, rdn_value, split_dn


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("*)(objectClass=*", r"\2a\29\28objectClass=\2a"),
        ("back\\slash", r"back\5cslash"),
        ("nul\x00byte", r"nul\00byte"),
        ("Zoë 東京", "Zoë 東京"),
        ("esc\x1b[31m", r"esc\1b[31m"),
    ],
)
def test_filter_value_escapes_every_special(value, escaped):
    assert filter_value(value) == escaped


@given(st.text())
def test_filter_value_leaves_no_filter_syntax(value):
    escaped = filter_value(value)
    assert not set("*()\x00") & set(escaped)
    # every backslash starts a two-digit hex escape
    parts = escaped.split("\\")[1:]
    assert all(len(p) >= 2 and all(c in "0123456789abcdef" for c in p[:2]) for p in parts)


@pytest.mark.parametrize(
    "value",
    ["Smith, John", "A+B", '"Quoted" Ltd', "Back\\slash", "#1 Hosting", "  Leading", "trailing ", "a;b<c>d=e", "東京商事", "[@click=app.quit]x[/]", "x\x1b[31m"],
)
def test_rdn_round_trips(value):
    dn = child_dn("CN", value, "OU=Users,OU=Smith\\, Jones,DC=example,DC=net")
    assert rdn_value(dn) == value
    assert parent_dn(dn) == "OU=Users,OU=Smith\\, Jones,DC=example,DC=net"
    assert len(parse_dn(dn)) == 5  # the value never splits the DN


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1))
def test_any_rdn_value_round_trips(value):
    dn = child_dn("CN", value, "DC=example,DC=net")
    assert split_dn(dn) == [("CN", value), ("DC", "example"), ("DC", "net")]


def test_our_filter_escaping_agrees_with_ldap3_on_ascii_specials():
    sample = "a*b(c)d\\e\x00f"
    assert filter_value(sample).lower() == escape_filter_chars(sample).lower()
