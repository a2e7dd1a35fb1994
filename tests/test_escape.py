"""Filter and DN escaping: the only way values enter filters and DNs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from core.escape import _split, _unescape, child_dn, filter_value, parent_dn, rdn_value, split_dn


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


def _parsed(split, dn: str) -> object:
    try:
        return split(dn)
    except Exception as error:  # the same failure, or the same pairs
        return type(error)


@given(st.lists(st.tuples(st.sampled_from(["OU", "CN", "dc", "a-1", "1x", "-x", " OU", ""]),
                          st.text(alphabet=' ,=+"\\#;<>aZ0é東\x00\n\xa0', max_size=8)), min_size=1, max_size=4))
def test_splitting_a_dn_agrees_with_ldap3_s_parser(rdns):
    """The shortcut for DNs with nothing to unescape gives what parse_dn gives (a
    snapshot's 5,000 customer DNs are split at start): the same pairs, or the same error."""
    dn = ",".join(f"{attr}={value}" for attr, value in rdns)
    by_ldap3 = _parsed(lambda d: tuple((a, _unescape(v)) for a, v, _ in parse_dn(d, escape=False)), dn)
    assert _parsed(_split.__wrapped__, dn) == by_ldap3, dn
