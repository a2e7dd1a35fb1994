"""What the measurements run against: a DC, a configuration file for it, and the names
the measurements need (what to search for, whom to move where)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD_ENV = "TENANTRY_BENCH_PASSWORD"

# Every service directory-side only: the measured moves make LDAP writes and no HTTP
# calls, so a hand-written ldap3 script can make exactly the same ones.
SERVICES = """
[services.exchange]
display_name = "Hosted Exchange"
adapter = "exchange"
plans = ["Basic 2 GB", "Premium 50 GB"]

[services.ocs]
display_name = "Office Communications Server"
adapter = "ocs"

[services.blackberry]
display_name = "BlackBerry"
adapter = "group"
movable = true
plans = ["Standard", "Enterprise"]

[services.sharepoint]
display_name = "SharePoint"
adapter = "group"
movable = false

[services.crm]
display_name = "Hosted CRM"
adapter = "group"
movable = false
"""


@dataclass
class Target:
    config: Path  # the configuration file the console and the core read
    password: str  # the bound operator's (SP administrator's)
    url: str
    ca_file: str
    bind_user: str
    base_dn: str
    big_customer: str  # whose users screen is searched
    customer_words: list[str]  # typed into the customers search, one key at a time
    user_words: list[str]  # typed into the big customer's users search
    movers: list[str]  # UPNs of users to move one by one (two per measured pair)
    move_destination: str
    bulk: dict[str, tuple[list[str], str]] = field(default_factory=dict)  # run → (UPNs, destination)
    state: Path | None = None  # journal and audit of the measured moves
    dc_dir: str = ""  # the DC's directory: its samba processes are those started with it
    idle_seconds: float = 2.0  # how long the console sits idle for the DC's CPU per minute
    staleness_samples: int = 1  # changes made on another connection, each timed until on screen
    huge_customer: str = ""  # opened last, over the users cap: searched on the DC, none held
    huge_cap: int | None = None  # the users cap it is opened with (None: the configuration's, 50,000 as shipped)

    def env(self) -> dict[str, str]:
        """The environment of a console process bound as the operator."""
        env = dict(os.environ)
        env[PASSWORD_ENV] = self.password
        env["TENANTRY_STATE_DIR"] = str(self.state) if self.state else env.get("TENANTRY_STATE_DIR", "")
        return {k: v for k, v in env.items() if v}


def write_config(path: Path, *, url: str, base_dn: str, bind_user: str, ca_file: str, tenants: str, pool_size: int = 4) -> Path:
    """A configuration for the bench DC: SP administrator, verified LDAPS, and a mapping
    whose new addresses keep the UPN prefix (unique forest-wide, so a bulk move of a
    thousand users maps no two to the same address)."""
    path.write_text(
        "[directory]\n"
        f'urls = ["{url}"]\n'
        f'base_dn = "{base_dn}"\n'
        f'bind_user = "{bind_user}"\n'
        f'password_env = "{PASSWORD_ENV}"\n'
        f'ca_file = "{ca_file}"\n'
        f"pool_size = {pool_size}\n"
        # a loaded machine's single-process Samba can take longer than the shipped 15 s
        # for one scan of 20,000 OUs: the bench measures, it must not give up
        "receive_timeout = 120\n"
        "connect_timeout = 60\n"
        "\n[mapping]\n"
        'email = "{upn_prefix}@{domain}"\n'
        + SERVICES
        + tenants,
        encoding="utf-8",
    )
    return path
