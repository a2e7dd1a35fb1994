"""User mapping: templates, folding, illegal characters and the address rules of PRODUCT §2."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config import ConfigError, parse
from core.model import Customer
from core.mapping import Formats, Identity, fold, local_part, proxy_addresses, render, sam_account_name

RENEE = Identity(first="Renée", last="Müller-Łukasz", sam="rmuller.c0003", upn_prefix="renee.muller")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{first}.{last}@{domain}", "renee.muller-lukasz@contoso.example"),
        ("{f}{last}@{domain}", "rmuller-lukasz@contoso.example"),
        ("{sam}@{domain}", "rmuller.c0003@contoso.example"),
        ("{upn_prefix}@{domain}", "renee.muller@contoso.example"),
        ("{f}{l}.{code}@{domain}", "rm.c0042@contoso.example"),
    ],
)
def test_templates(template, expected):
    assert render(template, RENEE, "Contoso.EXAMPLE", "C0042") == expected


def test_accents_ligatures_and_illegal_characters():
    assert fold("Zoë Ærøskøbing straße") == "Zoe AEroskobing strasse"
    assert local_part("  O'Brien, (Jr.) <x> ") == "obrienjr.x"  # apostrophes go, as in the directory's data
    assert local_part("..a..b..") == "a.b"
    assert local_part("東京") == ""
    assert sam_account_name('a"b/c\\d[e]f:g;h|i=j,k+l*m?n<o>p@q r') == "abcdefghijklmnopqr"[:20]
    assert len(sam_account_name("a" * 40)) == 20
    assert sam_account_name("abc.") == "abc"


@given(st.text())
def test_local_parts_only_ever_hold_safe_characters(text):
    assert set(local_part(text)) <= set("abcdefghijklmnopqrstuvwxyz0123456789.'_+-")


def test_unknown_placeholder_in_config_is_named():
    raw = {"directory": {"urls": ["ldaps://x"], "base_dn": "DC=x", "bind_user": "u"}, "mapping": {"email": "{frist}@{domain}"}}
    with pytest.raises(ConfigError, match=r"unknown placeholder \{frist\}"):
        parse(raw)


def test_per_customer_formats_fall_back_to_the_default():
    raw = {
        "directory": {"urls": ["ldaps://x"], "base_dn": "DC=x", "bind_user": "u"},
        "mapping": {"email": "{f}{last}@{domain}", "customers": {"C0042": {"upn": "{sam}@{domain}"}}},
    }
    mapping = parse(raw).mapping
    special = mapping.formats_for(Customer("Contoso", "OU=Contoso", code="C0042"))
    assert special == Formats(upn="{sam}@{domain}", email="{f}{last}@{domain}")
    assert mapping.formats_for(Customer("Other", "OU=Other")).upn == "{upn_prefix}@{domain}"


def test_addresses_in_source_domains_leave_and_x500_keeps_the_old_dn():
    current = (
        "SMTP:anna@contoso.example",
        "smtp:a.berg@contoso-mail.example",
        "smtp:anna@shared.example",
        "X500:/o=Old/cn=anna-old",
        "sip:anna@contoso.example",
        "EUM:anna@contoso-mail.example;phone-context=Contoso.contoso.example",
        "EUM:4711;phone-context=Shared.shared.example",
        "SIP:anna@shared.example",
    )
    result = proxy_addresses(current, "anna.berg@fabrikam.example", ("contoso.example", "contoso-mail.example"), "/o=Ex/cn=Recipients/cn=anna")
    assert result == (
        "SMTP:anna.berg@fabrikam.example",
        "smtp:anna@shared.example",
        "X500:/o=Old/cn=anna-old",
        "EUM:4711;phone-context=Shared.shared.example",
        "SIP:anna@shared.example",
        "X500:/o=Ex/cn=Recipients/cn=anna",
    )
    assert [a for a in result if a.startswith("SMTP:")] == ["SMTP:anna.berg@fabrikam.example"]


def test_a_sip_address_in_a_source_domain_is_replaced_by_the_new_sip_uri():
    current = ("SMTP:anna@contoso.example", "SIP:anna@contoso.example", "eum:anna@CONTOSO.example;phone-context=X")
    result = proxy_addresses(current, "anna@fabrikam.example", ("contoso.example",), None, "sip:anna.berg@fabrikam.example")
    assert result == ("SMTP:anna@fabrikam.example", "SIP:anna.berg@fabrikam.example")
    # no SIP address before: none is invented
    assert proxy_addresses(("SMTP:anna@contoso.example",), "anna@fabrikam.example", ("contoso.example",), None,
                           "sip:anna@fabrikam.example") == ("SMTP:anna@fabrikam.example",)


def test_an_alias_equal_to_the_new_primary_is_not_kept_twice():
    result = proxy_addresses(("SMTP:a@old.example", "smtp:new@dest.example"), "new@dest.example", ("old.example",), None)
    assert result == ("SMTP:new@dest.example",)
