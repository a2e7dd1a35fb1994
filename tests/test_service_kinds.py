"""Whether a user gets an email address or a SIP URI follows the service's adapter (its
kind), not its key: a service configured as ``[services.mail] adapter = "exchange"`` gets
an address on a move as on a copy (the move planner used to test the key "exchange")."""

from __future__ import annotations

import tomllib

from core.config import parse
from core.copy import CopyRequest, map_copy
from core.model import Customer, User
from core.move import MoveRequest, map_user

CONFIG = """
[directory]
urls = ["ldaps://dc1.example.net"]
base_dn = "DC=example,DC=net"
bind_user = "svc@example.net"

[services.mail]
display_name = "Hosted Exchange"
adapter = "exchange"

[services.voice]
display_name = "Lync"
adapter = "ocs"

[services.exchange]
display_name = "Exchange, the name only"
adapter = "group"
"""

DESTINATION = Customer("Woodgrove Bank", "OU=Woodgrove Bank,OU=Hosting,DC=example,DC=net", domains=("woodgrove.example",))


def user(*services: str) -> User:
    return User("CN=Ana Hall,OU=Users,OU=Fabrikam,OU=Hosting,DC=example,DC=net", "Ana Hall", "ana.hall", "ana.hall@fabrikam.example",
                first="Ana", last="Hall", services=services)


def test_a_service_of_the_exchange_kind_under_another_key_gets_an_address_on_move_and_copy():
    config = parse(tomllib.loads(CONFIG))
    assert config.kinds(["mail", "voice", "exchange", "unknown"]) == {"exchange", "ocs", "group"}
    moved = map_user(config, user("mail", "voice"), DESTINATION, MoveRequest("ana.hall", "woodgrove.example"))
    assert moved.email and moved.email.endswith("@woodgrove.example")
    assert moved.sip and moved.sip.startswith("sip:") and moved.sip.endswith("@woodgrove.example")
    copied = map_copy(config, user("mail", "voice"), DESTINATION, CopyRequest("ana.hall", "Zoe", "Quinn"), ["mail", "voice"])
    assert copied.email and copied.sip


def test_a_service_merely_called_exchange_gives_no_address():
    config = parse(tomllib.loads(CONFIG))
    moved = map_user(config, user("exchange"), DESTINATION, MoveRequest("ana.hall", "woodgrove.example"))
    assert moved.email is None and moved.sip is None
