"""The tenant map (``[tenants]``): parsed strictly, found by objectGUID or DN, and the
only source of a customer's code, domains and service tenants."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load
from core.errors import ConfigError
from core.model import Customer
from core.plan import TENANT
from core.tenants import problems_of

from test_config import MINIMAL

ROOT = Path(__file__).resolve().parent.parent
CONTOSO_DN = "OU=Contoso,OU=Hosting,DC=example,DC=net"
FABRIKAM_GUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def config(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL + text, encoding="utf-8")
    return load(path)


def refused(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as error:
        config(tmp_path, text)
    return str(error.value)


def test_the_example_file_maps_by_dn_and_by_guid():
    tenants = load(ROOT / "config.example.toml").tenants
    contoso = tenants.for_customer(Customer("Contoso", "ou=contoso,ou=HOSTING,dc=example,dc=net"))
    assert contoso is not None and contoso.code == "C0012" and contoso.domains == ("contoso.example", "contoso-mail.example")
    assert contoso.service("blackberry") == {"tenant_guid": "S12345678"} and contoso.service("exchange") is None
    # by objectGUID, wherever the OU has been moved or renamed to
    fabrikam = tenants.for_customer(Customer("Renamed", "OU=Renamed,OU=Elsewhere,DC=example,DC=net", guid=FABRIKAM_GUID.upper()))
    assert fabrikam is not None and fabrikam.code == "C0013"
    assert tenants.for_customer(Customer("Other", "OU=Other,OU=Hosting,DC=example,DC=net")) is None


@pytest.mark.parametrize("text, message", [
    (f'[tenants."{CONTOSO_DN}"]\ncolour = "red"\n', f'unknown key tenants."{CONTOSO_DN}".colour'),
    (f'[tenants."{CONTOSO_DN}".blackberry]\nurl = "https://x"\n', f'unknown key tenants."{CONTOSO_DN}".blackberry.url'),
    (f'[tenants."{CONTOSO_DN}".blackberry]\npassword = "hunter2"\n', f'tenants."{CONTOSO_DN}".blackberry.password is not allowed'),
    (f'[tenants."{CONTOSO_DN}".blackberry]\napi_token = "abc"\n', f'tenants."{CONTOSO_DN}".blackberry.api_token is not allowed'),
    ('[tenants."not a dn"]\ncode = "A"\n', 'tenants."not a dn" must be a customer OU\'s objectGUID or its DN'),
    (f'[tenants."{CONTOSO_DN}"]\ncode = "a b"\n', f'tenants."{CONTOSO_DN}".code must be a short code'),
    (f'[tenants."{CONTOSO_DN}"]\ndomains = ["not_a domain"]\n', "which is not a domain name"),
    (f'[tenants."{CONTOSO_DN}"]\ncode = "C1"\n[tenants."OU=B,OU=Hosting,DC=example,DC=net"]\ncode = "c1"\n', "codes must be unique"),
    (f'[tenants."{CONTOSO_DN}"]\ndomains = ["a.example"]\n[tenants."OU=B,OU=Hosting,DC=example,DC=net"]\ndomains = ["A.example"]\n',
     "a domain belongs to one customer"),
    (f'[tenants."{CONTOSO_DN}"]\ncode = "C1"\n[tenants."ou=contoso,ou=hosting,dc=example,dc=net"]\ncode = "C2"\n', "names the same customer"),
    (f'[tenants."{CONTOSO_DN}".blackberry]\ntenant_guid = "S1"\n[tenants."OU=B,OU=Hosting,DC=example,DC=net".blackberry]\ntenant_guid = "S1"\n',
     "blackberry.tenant_guid S1 is also the tenant_guid of"),
    ('[tenants]\nx = 1\n', 'tenants."x" must be a table'),
    ('[tenants."OU=Contoso,OU=Elsewhere,DC=example,DC=net"]\ncode = "A"\n', "is not below the hosting OU OU=Hosting,DC=example,DC=net, so it can never be a customer"),
    ('[tenants."OU=Hosting,DC=example,DC=net"]\ncode = "A"\n', "is not below the hosting OU"),
])
def test_faults_are_refused_naming_the_key(tmp_path, text, message):
    assert message in refused(tmp_path, text)


def test_a_service_table_needs_a_configured_service(tmp_path):
    text = '[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\n' + f'[tenants."{CONTOSO_DN}".blackberry]\ntenant_guid = "S1"\n'
    assert f'unknown key tenants."{CONTOSO_DN}".blackberry (expected code, domains or a configured service: exchange)' in refused(tmp_path, text)


def test_problems_of_a_customer_name_the_missing_entry_and_foreign_claims(tmp_path):
    tenants = config(tmp_path, (
        f'[tenants."{CONTOSO_DN}"]\ncode = "C1"\ndomains = ["contoso.example"]\n'
        f'[tenants."{FABRIKAM_GUID}"]\ncode = "C2"\ndomains = ["fabrikam.example"]\n'
    )).tenants
    honest = Customer("Contoso", CONTOSO_DN, claimed_domains=("contoso.example", "unassigned.example"), claimed_code="C1")
    assert problems_of(honest, tenants) == []
    greedy = Customer("Contoso", CONTOSO_DN, claimed_domains=("contoso.example", "Fabrikam.example"), claimed_code="c2")
    assert [(p.code, p.message) for p in problems_of(greedy, tenants)] == [
        (TENANT, "Contoso claims the domain Fabrikam.example in the directory, which the configuration assigns to another customer."),
        (TENANT, "Contoso claims the code c2 in the directory, which the configuration assigns to another customer."),
    ]
    unknown = Customer("[b]Nobody[/b]\x1b[2J", "OU=Nobody,OU=Hosting,DC=example,DC=net")
    assert [p.message for p in problems_of(unknown, tenants)] == [
        "[b]Nobody[/b][2J has no entry in the [tenants] configuration, so its code, domains and service tenants are unknown."
    ]
