"""A throwaway Samba AD domain controller on 127.0.0.1 for the directory tests.

:class:`SambaDC` provisions a fresh domain (``EXAMPLE.NET``) in a temporary directory,
adds the Exchange/OCS schema attributes Tenantry uses, loads :func:`core.demo.seed.build_seed`
into it *offline* (straight into ``sam.ldb`` with Samba's own Python bindings, before the
daemon runs: ~540 objects/s against ~150/s over LDAP, where parallel connections do not
help because ``-M single`` serialises them), gives the DC a throwaway CA and server
certificate, and runs ``samba -i -M single`` bound to loopback only. :meth:`SambaDC.stop`
ends it (terminate, then kill); ``samba -i`` also exits by itself when its stdin closes,
so a killed test run cannot leave a DC behind.

The pytest fixture lives in ``tests/conftest.py`` (``samba_dc``, session scope) and yields
the :class:`DCInfo` made here.

Needs the Debian packages ``samba``, ``samba-ad-provision`` and ``samba-dsdb-modules``
(the last two are only *recommended* by ``samba``), run as root (ports 389/636), and the
``cryptography`` wheel in the test environment for the certificates.

DNs read back from Samba are spelled its own way (``=`` as ``\\3D``, ``;`` as ``\\3B``,
raw ESC bytes, upper/lower case as stored): compare them with :func:`norm_dn`.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ldap3
from ldap3.utils.dn import parse_dn

from core.demo.seed import SECOND_PLATFORM_OPERATORS, SECOND_PLATFORM_OU, Seed, build_seed

REALM = "EXAMPLE.NET"
NETBIOS_DOMAIN = "EXAMPLE"
HOST_NAME = "tenantrydc"


def worker_address(base: str, worker: str | None) -> str:
    """The address of a pytest-xdist worker's own DC: worker ``gwN`` adds N to the second
    byte of ``base`` (127.0.0.1, 127.1.0.1, 127.2.0.1, …; not the third: Debian names the
    host 127.0.1.1); outside xdist, ``base``."""
    n = int(worker[2:]) if worker and worker.startswith("gw") and worker[2:].isdigit() else 0
    a, b, c, d = base.split(".")
    if int(b) + n > 255:
        raise ValueError(f"no loopback address for test worker {worker} from {base}")
    return f"{a}.{int(b) + n}.{c}.{d}"


# The loopback address the session's DC listens on. Two test runs on one machine (a second
# checkout, a suite run beside another under load) each give their own address, e.g.
# TENANTRY_TEST_DC_ADDRESS=127.0.0.21; runs that share an address take turns (a lock).
# Each pytest-xdist worker of a run has a DC of its own (worker_address).
LOOPBACK = worker_address(os.environ.get("TENANTRY_TEST_DC_ADDRESS", "127.0.0.1"), os.environ.get("PYTEST_XDIST_WORKER"))
LOCK_WAIT = 900  # seconds to wait for another run's test DC to stop
LDAP_PORT = 389
LDAPS_PORT = 636
KDC_PORT = 88
KERBEROS_HOST = f"{HOST_NAME}.{REALM.lower()}"  # the DC's ldap/ SPN is ldap/<this>


# --------------------------------------------------------------------------- schema

# Attributes Samba's base schema lacks (legacyExchangeDN, proxyAddresses, mail and
# uPNSuffixes it has). Names, attributeIDs, syntaxes, single-valuedness and ranges as in
# the Exchange / Lync schema extensions. schemaIDGUIDs are left to Samba to generate.
SCHEMA_ATTRIBUTES: tuple[dict[str, str], ...] = (
    {
        "cn": "ms-Exch-Mail-Nickname",
        "lDAPDisplayName": "mailNickname",
        "attributeID": "1.2.840.113556.1.2.447",
        "attributeSyntax": "2.5.5.12",
        "oMSyntax": "64",
        "isSingleValued": "TRUE",
        "rangeLower": "1",
        "rangeUpper": "64",
        "searchFlags": "5",  # indexed + ANR
    },
    {
        "cn": "ms-Exch-Extension-Attribute-1",
        "lDAPDisplayName": "extensionAttribute1",
        "attributeID": "1.2.840.113556.1.2.423",
        "attributeSyntax": "2.5.5.12",
        "oMSyntax": "64",
        "isSingleValued": "TRUE",
        "rangeLower": "1",
        "rangeUpper": "1024",
        "searchFlags": "16",
    },
    {
        "cn": "ms-RTC-SIP-PrimaryUserAddress",
        "lDAPDisplayName": "msRTCSIP-PrimaryUserAddress",
        "attributeID": "1.2.840.113556.1.6.24.1.1",
        "attributeSyntax": "2.5.5.12",
        "oMSyntax": "64",
        "isSingleValued": "TRUE",
        "searchFlags": "1",  # indexed: SIP URIs are checked for uniqueness forest-wide
    },
    {
        "cn": "ms-RTC-SIP-UserEnabled",
        "lDAPDisplayName": "msRTCSIP-UserEnabled",
        "attributeID": "1.2.840.113556.1.6.24.1.6",
        "attributeSyntax": "2.5.5.8",
        "oMSyntax": "1",
        "isSingleValued": "TRUE",
        "searchFlags": "0",
    },
)
# Checked against Exchange's schema as OpenChange ships it for Samba
# (openchange/openchange setup/AD/oc_provision_schema_attributes.ldif: cn, attributeID, syntax,
# searchFlags), and for msRTCSIP- ones against Lync's schema documentation (the attribute
# names and the classes that may contain them; it lists no attributeIDs).
# What the Exchange and Lync cmdlets stamp on a user (core/demo/exchange.py, core/demo/lync.py). DN-valued ones
# point into the configuration partition. Exchange links homeMDB and the address book policy
# link to back-links (homeMDBBL, msExchAddressBookPolicyBL); here they are plain DN values.
DN_SYNTAX = {"attributeSyntax": "2.5.5.1", "oMSyntax": "127"}  # Samba fills in oMObjectClass
SCHEMA_ATTRIBUTES += (
    {
        "cn": "ms-Exch-Recipient-Type-Details",
        "lDAPDisplayName": "msExchRecipientTypeDetails",
        "attributeID": "1.2.840.113556.1.4.7000.102.50855",
        "attributeSyntax": "2.5.5.16",  # large integer: 1 = UserMailbox
        "oMSyntax": "65",
        "isSingleValued": "TRUE",
        "searchFlags": "1",
    },
    {
        "cn": "ms-Exch-Home-MDB",
        "lDAPDisplayName": "homeMDB",
        "attributeID": "1.2.840.113556.1.2.244",
        **DN_SYNTAX,
        "isSingleValued": "TRUE",
        "searchFlags": "0",
    },
    {
        "cn": "ms-RTC-SIP-PrimaryHomeServer",
        "lDAPDisplayName": "msRTCSIP-PrimaryHomeServer",
        "attributeID": "1.2.840.113556.1.6.24.1.57",
        **DN_SYNTAX,
        "isSingleValued": "TRUE",
        "searchFlags": "1",
    },
    {
        "cn": "ms-RTC-SIP-OptionFlags",
        "lDAPDisplayName": "msRTCSIP-OptionFlags",
        "attributeID": "1.2.840.113556.1.6.24.1.87",
        "attributeSyntax": "2.5.5.9",
        "oMSyntax": "2",
        "isSingleValued": "TRUE",
        "searchFlags": "0",
    },
    {
        # Lync 2010+: the user's per-user policy assignments. Lync's schema documentation
        # lists it on User, without its attributeID (unverified); the real values are the
        # policies' anchors, here "<policy type>=<name>".
        "cn": "ms-RTC-SIP-UserPolicies",
        "lDAPDisplayName": "msRTCSIP-UserPolicies",
        "attributeID": "1.2.840.113556.1.6.24.1.202",  # unverified
        "attributeSyntax": "2.5.5.12",
        "oMSyntax": "64",
        "isSingleValued": "FALSE",
        "searchFlags": "0",
    },
    {
        # Exchange 2010 SP2+, newer than OpenChange's copy of the schema: its attributeID was
        # not found in a reference (unverified; an ID in Exchange's own arc).
        "cn": "ms-Exch-Address-Book-Policy-Link",
        "lDAPDisplayName": "msExchAddressBookPolicyLink",
        "attributeID": "1.2.840.113556.1.4.7000.102.51949",  # unverified
        **DN_SYNTAX,
        "isSingleValued": "TRUE",
        "searchFlags": "1",
    },
    {
        "cn": "ms-Exch-Use-OAB",
        "lDAPDisplayName": "msExchUseOAB",
        "attributeID": "1.2.840.113556.1.4.7000.102.69",
        **DN_SYNTAX,
        "isSingleValued": "TRUE",
        "searchFlags": "16",
    },
    {
        "cn": "ms-Exch-Policies-Excluded",
        "lDAPDisplayName": "msExchPoliciesExcluded",
        "attributeID": "1.2.840.113556.1.4.7000.102.50051",
        "attributeSyntax": "2.5.5.12",
        "oMSyntax": "64",
        "isSingleValued": "FALSE",
        "searchFlags": "0",
    },
)
# A mailbox's own quotas (Set-Mailbox -IssueWarningQuota / -ProhibitSendQuota /
# -ProhibitSendReceiveQuota, in KB) and whether the database's apply instead
# (-UseDatabaseQuotaDefaults), as in Exchange's schema (OpenChange's copy, above).
SCHEMA_ATTRIBUTES += tuple(
    {"cn": cn, "lDAPDisplayName": name, "attributeID": oid, "attributeSyntax": "2.5.5.9", "oMSyntax": "2",
     "isSingleValued": "TRUE", "searchFlags": "16"}
    for cn, name, oid in (("ms-Exch-MDB-Storage-Quota", "mDBStorageQuota", "1.2.840.113556.1.2.266"),
                          ("ms-Exch-MDB-Over-Quota-Limit", "mDBOverQuotaLimit", "1.2.840.113556.1.2.272"),
                          ("ms-Exch-MDB-Over-Hard-Quota-Limit", "mDBOverHardQuotaLimit", "1.2.840.113556.1.4.7000.102.11037"))
) + ({"cn": "ms-Exch-MDB-Use-Defaults", "lDAPDisplayName": "mDBUseDefaults", "attributeID": "1.2.840.113556.1.2.309",
      "attributeSyntax": "2.5.5.8", "oMSyntax": "1", "isSingleValued": "TRUE", "searchFlags": "16"},)
# Lync hosting: the user's tenant and address-book grouping (GUIDs; written by the hosting
# pack's provisioning, not by a cmdlet: core/services/lync.py). Kept here as the GUID's text
# form; syntax and attributeIDs not found in a reference at hand (unverified).
SCHEMA_ATTRIBUTES += tuple(
    {"cn": cn, "lDAPDisplayName": name, "attributeID": oid, "attributeSyntax": "2.5.5.12", "oMSyntax": "64",
     "isSingleValued": "TRUE", "searchFlags": "1"}
    for cn, name, oid in (("ms-RTC-SIP-TenantId", "msRTCSIP-TenantId", "1.2.840.113556.1.6.24.1.303"),  # unverified
                          ("ms-RTC-SIP-GroupingID", "msRTCSIP-GroupingID", "1.2.840.113556.1.6.24.1.304"))  # unverified
)
# classSchema CN -> attributes added to its mayContain. Exchange extends Mail-Recipient
# (an auxiliary class of user, contact and group); Lync extends User directly.
SCHEMA_MAY_CONTAIN: dict[str, tuple[str, ...]] = {
    "Mail-Recipient": ("mailNickname", "extensionAttribute1", "msExchRecipientTypeDetails", "msExchAddressBookPolicyLink",
                       "msExchUseOAB", "msExchPoliciesExcluded"),
    "User": ("msRTCSIP-PrimaryUserAddress", "msRTCSIP-UserEnabled", "msRTCSIP-PrimaryHomeServer", "msRTCSIP-OptionFlags",
             "msRTCSIP-UserPolicies", "homeMDB", "mDBStorageQuota", "mDBOverQuotaLimit", "mDBOverHardQuotaLimit",
             "mDBUseDefaults", "msRTCSIP-TenantId", "msRTCSIP-GroupingID"),
}


# --------------------------------------------------------------------------- offline loader

# Runs under the interpreter Samba's own tools use (the system python3 with the
# python3-samba bindings), never inside pytest's interpreter.
_LOADER = r'''
import json, sys, time
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB


def open_db(job, options=None):
    lp = LoadParm()
    lp.load(job["smbconf"])
    lp.set("dsdb:schema update allowed", "yes")
    return SamDB(url=job["samdb"], session_info=system_session(), lp=lp, options=options)


def extend_schema(job):
    db = open_db(job)
    schema_dn = str(db.get_schema_basedn())
    # New attributes first, then a schema refresh, so the class changes can name them.
    db.transaction_start()
    try:
        for attr in job["schema_attributes"]:
            msg = {"dn": "CN=%s,%s" % (attr["cn"], schema_dn), "objectClass": ["top", "attributeSchema"]}
            msg.update(attr)
            db.add(msg)
        db.transaction_commit()
    except BaseException:
        db.transaction_cancel()
        raise
    db.set_schema_update_now()
    for cls, names in job["schema_may_contain"].items():
        m = ldb.Message(ldb.Dn(db, "CN=%s,%s" % (cls, schema_dn)))
        m["mayContain"] = ldb.MessageElement(list(names), ldb.FLAG_MOD_ADD, "mayContain")
        db.modify(m)
    db.set_schema_update_now()


def load_entries(job):
    with open(job["entries"], encoding="utf-8") as fh:
        entries = json.load(fh)
    # batch_mode: no per-operation sub-transaction (one failure cancels everything,
    # which is what we want anyway); ~40% faster on thousands of adds.
    # transaction_index_cache_size: the in-memory index cache of the transaction gets a
    # hash table sized for the ~15 index records per entry (as samba-tool's provision
    # and join do); with ldb's default size the load slows down quadratically.
    cache = 16 * len(entries) + 1
    db = open_db(job, options=["batch_mode:1", "transaction_index_cache_size:%d" % cache])
    passwords = job["passwords"]
    rights = Delegations(db, job["delegations"])
    db.transaction_start()
    try:
        for dn, attributes in entries:
            msg = ldb.Message(ldb.Dn(db, dn))
            for name, values in attributes.items():
                msg[name] = ldb.MessageElement([v.encode("utf-8") for v in values], ldb.FLAG_MOD_ADD, name)
            if dn in passwords:
                pw = ('"%s"' % passwords[dn]).encode("utf-16-le")
                msg["unicodePwd"] = ldb.MessageElement([pw], ldb.FLAG_MOD_ADD, "unicodePwd")
            try:
                db.add(msg)
            except ldb.LdbError as exc:
                raise SystemExit("cannot add %r: %s" % (dn, exc.args[-1]))
            rights.added(msg.dn)
        rights.finish()
        db.transaction_commit()
    except BaseException:
        db.transaction_cancel()
        raise
    return len(entries)


class Delegations:
    # Operators get their rights from ACEs, as on a production DC: each trustee group
    # gets full control (GA), inherited by every child (CI), of its object. Each ACE is
    # added as soon as its object and its trustee exist, so objects added below it later
    # inherit it when created (adding it at the end rewrites the whole subtree).
    def __init__(self, db, pairs):
        from samba.sd_utils import SDUtils

        self.db = db
        self.sd_utils = SDUtils(db)
        self.pairs = [(object_dn, trustee_dn) for object_dn, trustee_dn in pairs]
        self.missing = []
        self.waiting = {}
        for index, (object_dn, trustee_dn) in enumerate(self.pairs):
            keys = {self.key(ldb.Dn(db, object_dn)), self.key(ldb.Dn(db, trustee_dn))}
            self.missing.append(len(keys))
            for key in keys:
                self.waiting.setdefault(key, []).append(index)

    @staticmethod
    def key(dn):
        return dn.get_casefold()

    def added(self, dn):
        for index in self.waiting.pop(self.key(dn), ()):
            self.missing[index] -= 1
            if self.missing[index] == 0:
                self.grant(*self.pairs[index])

    def finish(self):
        # objects that were there before the seed (none in ours): granted last
        for index, pair in enumerate(self.pairs):
            if self.missing[index] > 0:
                self.missing[index] = 0
                self.grant(*pair)

    def grant(self, object_dn, trustee_dn):
        from samba.dcerpc import security
        from samba.ndr import ndr_unpack

        found = self.db.search(base=trustee_dn, scope=ldb.SCOPE_BASE, attrs=["objectSid"])
        sid = ndr_unpack(security.dom_sid, found[0]["objectSid"][0])
        self.sd_utils.dacl_add_ace(object_dn, "(A;CI;GA;;;%s)" % sid)


def add_spns(job):
    # The DC's ldap/ service principal names, which samba_spnupdate (the dnsupdate
    # service, not run here) would add: Kerberos binds ask the KDC for ldap/<host>.
    db = open_db(job)
    found = db.search(base=job["dc_account"], scope=ldb.SCOPE_BASE, attrs=["servicePrincipalName"])
    have = {str(v).lower() for v in found[0].get("servicePrincipalName", [])}
    missing = [spn for spn in job["spns"] if spn.lower() not in have]
    if missing:
        m = ldb.Message(ldb.Dn(db, job["dc_account"]))
        m["servicePrincipalName"] = ldb.MessageElement(missing, ldb.FLAG_MOD_ADD, "servicePrincipalName")
        db.modify(m)


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        job = json.load(fh)
    timings = {}
    start = time.monotonic()
    add_spns(job)
    if job["schema_attributes"]:
        extend_schema(job)
    timings["schema"] = time.monotonic() - start
    start = time.monotonic()
    count = load_entries(job)
    timings["seed"] = time.monotonic() - start  # the operators' delegation included
    print(json.dumps({"timings": timings, "count": count}))


main()
'''


# --------------------------------------------------------------------------- certificates


def _make_ca(common_name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_certificates(tls_dir: Path, address: str = LOOPBACK) -> dict[str, Path]:
    """Write a CA, a server certificate for localhost and ``address``, and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("Tenantry Test CA")
    _, wrong_cert = _make_ca("Tenantry Unrelated CA")

    # RSA for the server: the widest compatibility with Samba's GnuTLS defaults.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(hours=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(address))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": tls_dir / "ca.pem",
        "wrong_ca": tls_dir / "wrong-ca.pem",
        "cert": tls_dir / "server.pem",
        "key": tls_dir / "server-key.pem",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["wrong_ca"].write_bytes(wrong_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # Samba refuses a key file others can read.
    fd = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return paths


# --------------------------------------------------------------------------- DN helpers


def unescape_value(value: str) -> str:
    """Undo RFC 4514 escaping of one attribute value (``\\,`` and ``\\XX`` hex pairs).

    Written independently of the seed's escaping so tests can check one with the other.
    """
    out = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out += value[i + 1].encode("utf-8")
            i += 2
            continue
        out += char.encode("utf-8")
        i += 1
    return out.decode("utf-8")


def norm_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """A comparable form of a DN: (attribute, value) per RDN, unescaped and case-folded.

    Samba spells DNs its own way (``=`` as ``\\3D``, ``;`` as ``\\3B``, raw ESC bytes), so
    compare DNs read from the DC with seed DNs through this, never as strings.
    """
    return tuple((attr.lower(), unescape_value(value).casefold()) for attr, value, _ in parse_dn(dn))


# --------------------------------------------------------------------------- the DC


class SambaDCError(RuntimeError):
    """The test DC could not be provisioned or started; the message says why."""


def throwaway_password() -> str:
    """A random password that satisfies AD complexity (upper, lower, digit, symbol)."""
    return f"Tt1!{secrets.token_urlsafe(18)}"


def throwaway_credentials(seed: Seed) -> dict:
    """``admin_password`` and ``operator_passwords`` (one per seed operator), all random."""
    return {
        "admin_password": throwaway_password(),
        "operator_passwords": {op.name: throwaway_password() for op in seed.operators},
    }


@dataclass
class DCInfo:
    """What a directory test needs to reach the running test DC."""

    ldaps_url: str
    ldap_url: str
    ca_file: str
    wrong_ca_file: str
    base_dn: str
    admin_upn: str
    admin_dn: str
    admin_password: str
    operator_passwords: dict[str, str]  # OperatorAccount.name -> password
    seed: Seed
    targetdir: str
    timings: dict[str, float] = field(default_factory=dict)
    krb5_conf: str = ""  # a krb5.conf for the realm whose KDC is this DC (pass it as KRB5_CONFIG)
    realm: str = REALM
    kerberos_host: str = KERBEROS_HOST

    def tls(self, ca_file: str | None = None) -> ldap3.Tls:
        return ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=ca_file or self.ca_file,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def server(self, *, ldaps: bool = True, ca_file: str | None = None) -> ldap3.Server:
        return ldap3.Server(
            self.ldaps_url if ldaps else self.ldap_url,
            use_ssl=ldaps,
            tls=self.tls(ca_file),
            get_info=ldap3.NONE,
            connect_timeout=10,
        )

    def connect(self, user: str | None = None, password: str | None = None) -> ldap3.Connection:
        """A bound connection over verified LDAPS; Administrator unless ``user`` is given.

        ``user`` may be a DN or a UPN. The caller closes it (``conn.unbind()``), or uses
        it as a context manager.
        """
        if user is None:
            user, password = self.admin_upn, self.admin_password
        conn = ldap3.Connection(
            self.server(),
            user=user,
            password=password,
            authentication=ldap3.SIMPLE,
            raise_exceptions=True,
            receive_timeout=30,
        )
        conn.bind()
        return conn

    def connect_operator(self, name: str) -> ldap3.Connection:
        """Bound as the seed operator ``name`` (e.g. ``"sp-admin"``, ``"user-admin"``)."""
        return self.connect(self.seed.operator(name).upn, self.operator_passwords[name])


def delegations(seed: Seed) -> list[tuple[str, str]]:
    """(object DN, trustee group DN) pairs: who administers what on the test DC.

    SP administrators the hosting OU (and the second platform's operators its tree),
    each reseller's administrators their reseller OU,
    and a customer's "User Administrator" role group that customer's OU.
    """
    hosting = f"OU=Hosting,{seed.base_dn}"
    pairs = [(hosting, f"CN=Service Provider Administrators,{hosting}"),
             (f"{SECOND_PLATFORM_OU},{hosting}", f"CN={SECOND_PLATFORM_OPERATORS},OU=Staff,{seed.base_dn}")]
    roles = {norm_dn(e.dn) for e in seed.entries if e.dn.startswith("CN=User Administrator,")}
    for entry in seed.entries:
        marker = entry.attributes.get("businessCategory")
        if marker == ("reseller",):
            pairs.append((entry.dn, f"CN=Reseller Administrators,{entry.dn}"))
        elif marker == ("customer",):
            role = f"CN=User Administrator,OU=Roles,{entry.dn}"
            if norm_dn(role) in roles:
                pairs.append((entry.dn, role))
    return pairs


def _port_free(port: int, address: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _samba_python() -> str:
    """The interpreter Samba's tools run under (it has the ``samba`` bindings)."""
    tool = shutil.which("samba-tool")
    if tool:
        with open(tool, "rb") as fh:
            first = fh.readline().decode("utf-8", "replace").strip()
        if first.startswith("#!"):
            parts = first[2:].split()
            if parts and parts[0].endswith("/env") and len(parts) > 1:
                found = shutil.which(parts[1])
                if found:
                    return found
            elif parts:
                return parts[0]
    return "/usr/bin/python3"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env["LC_ALL"] = "C.UTF-8"
    return env


class SambaDC:
    """Provision, seed, start and stop one throwaway Samba AD DC in ``targetdir``."""

    def __init__(
        self,
        targetdir: Path,
        *,
        admin_password: str,
        operator_passwords: dict[str, str],
        seed: Seed | None = None,
        delegate: list[tuple[str, str]] | None = None,
    ) -> None:
        self.targetdir = Path(targetdir).resolve()
        self.admin_password = admin_password
        self.operator_passwords = dict(operator_passwords)
        self.seed = seed if seed is not None else build_seed()
        # (object DN, trustee group DN) pairs to delegate; by default delegations(seed)
        self.delegate = delegate
        self.smbconf = self.targetdir / "etc" / "smb.conf"
        self.log_path = self.targetdir / "samba.log"
        self.timings: dict[str, float] = {}
        self.address = LOOPBACK
        self.host_name = HOST_NAME
        self._address_lock = None  # held while this DC may run (see check_prerequisites)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_fh = None
        self.tls_paths: dict[str, Path] = {}
        self.krb5_conf = self.targetdir / "krb5.conf"  # KRB5_CONFIG for this DC's realm

    # -- what a replicating DC (tests/samba_pair.py) changes -------------------------------
    def extra_settings(self) -> dict[str, str]:
        """smb.conf [global] settings added to (or replacing) the one-DC ones."""
        return {}

    def command(self) -> list[str]:
        return ["samba", "-i", "-M", "single", "-s", str(self.smbconf)]

    def env(self) -> dict[str, str]:
        """The environment of every samba and samba-tool process of this DC."""
        return _clean_env()

    # -- steps ---------------------------------------------------------------------
    def _run(self, argv: list[str], what: str, timeout: float = 300) -> str:
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env(), timeout=timeout, cwd=self.targetdir
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-25:]
            raise SambaDCError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(tail))
        return result.stdout

    def check_prerequisites(self) -> None:
        for tool in ("samba", "samba-tool"):
            if shutil.which(tool) is None:
                raise SambaDCError(
                    f"'{tool}' is not installed: the directory tests need the Debian packages "
                    "samba (with samba-ad-dc/python3-samba) on the test machine"
                )
        # Another test run on this machine (a second checkout, a helper's run) uses
        # the same ports: wait for it to finish rather than fail. The lock is held
        # until stop(); the kernel drops it if this process dies.
        # run() and start() both call this: take the lock once (a second open file of
        # the same process would wait for the first one's lock for ever).
        if self._address_lock is None:
            lock = open(Path(tempfile.gettempdir()) / f"tenantry-test-dc-{self.address}.lock", "w")
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        lock.close()
                        raise SambaDCError(f"another test DC kept running for {LOCK_WAIT} s; giving up") from None
                    time.sleep(1)
            self._address_lock = lock
        if all(_port_free(port, self.address) for port in (LDAP_PORT, LDAPS_PORT, KDC_PORT)):
            return
        raise SambaDCError(
            f"cannot start the test DC: port {LDAP_PORT}, {LDAPS_PORT} or {KDC_PORT} of {self.address} is in use "
            "(another LDAP server or a leftover samba process?)"
        )

    def prepare_targetdir(self) -> None:
        """An empty target directory with an empty smb.conf: provision (or a join) writes
        a fresh one there and the system /etc/samba/smb.conf is never read."""
        if self.targetdir.exists() and any(self.targetdir.iterdir()):
            raise SambaDCError(f"{self.targetdir} is not empty")
        self.smbconf.parent.mkdir(parents=True, exist_ok=True)
        self.smbconf.write_text("")

    def provision(self) -> None:
        start = time.monotonic()
        self.prepare_targetdir()
        self._run(
            [
                "samba-tool", "domain", "provision",
                "-s", str(self.smbconf),
                f"--targetdir={self.targetdir}",
                "--server-role=dc",
                "--dns-backend=NONE",
                f"--realm={REALM}",
                f"--domain={NETBIOS_DOMAIN}",
                f"--host-name={self.host_name}",
                f"--host-ip={self.address}",
                f"--adminpass={self.admin_password}",
            ],
            "samba-tool domain provision",
        )
        self.tls_paths = write_certificates(self.targetdir / "tls", self.address)
        self._configure()
        self.timings["provision"] = time.monotonic() - start

    def _configure(self) -> None:
        t = self.targetdir
        for sub in ("run", "ncalrpc", "winbindd", "ntp_signd"):
            (t / sub).mkdir(exist_ok=True)
        settings = {
            "interfaces": f"{self.address}/8",
            "bind interfaces only": "yes",
            # The LDAP server and the KDC (Kerberos binds from a kinit'ed ticket): no smbd,
            # nbt, dns, winbindd or rpc ports.
            "server services": "ldap, kdc",
            "dsdb:schema update allowed": "yes",
            "tls enabled": "yes",
            "tls certfile": str(self.tls_paths["cert"]),
            "tls keyfile": str(self.tls_paths["key"]),
            "tls cafile": str(self.tls_paths["ca"]),
            # Simple binds only over TLS, as AD; SASL (Kerberos) binds over TLS without a
            # SASL security layer, as AD accepts them (ldap3 has no sign/seal layer).
            "ldap server require strong auth": "allow_sasl_over_tls",
            "pid directory": str(t / "run"),
            "ncalrpc dir": str(t / "ncalrpc"),
            "winbindd socket directory": str(t / "winbindd"),
            "ntp signd socket directory": str(t / "ntp_signd"),
            "log level": "1",
            **self.extra_settings(),
        }
        lines = self.smbconf.read_text().splitlines()
        out: list[str] = []
        in_global = False
        for line in lines:
            stripped = line.strip().lower()
            if stripped.startswith("["):
                if in_global:
                    out += [f"\t{k} = {v}" for k, v in settings.items()] + [""]
                in_global = stripped in ("[global]", "[globals]")
            elif in_global and "=" in stripped and stripped.split("=", 1)[0].strip() in settings:
                continue  # replaced below
            out.append(line)
        if in_global:
            out += [f"\t{k} = {v}" for k, v in settings.items()]
        self.smbconf.write_text("\n".join(out) + "\n")
        self.write_krb5_conf()

    def write_krb5_conf(self) -> None:
        """A krb5.conf whose realm's KDC is this DC (a pair of DCs writes one naming both)."""
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"\tdefault_realm = {REALM}\n"
            "\tdns_lookup_realm = false\n\tdns_lookup_kdc = false\n"
            "\trdns = false\n\tdns_canonicalize_hostname = false\n"
            "[realms]\n"
            f"\t{REALM} = {{\n\t\tkdc = {self.address}\n\t}}\n"
            "[domain_realm]\n"
            f"\t{KERBEROS_HOST} = {REALM}\n"
        )

    def load(self) -> None:
        """Extend the schema and add every seed entry, offline, in one transaction each."""
        entries_path = self.targetdir / "seed-entries.json"
        job_path = self.targetdir / "seed-job.json"
        entries_path.write_text(
            json.dumps([[e.dn, {k: list(v) for k, v in e.attributes.items()}] for e in self.seed.entries]),
            encoding="utf-8",
        )
        passwords = {self.seed.operator(name).dn: pw for name, pw in self.operator_passwords.items()}
        fd = os.open(job_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "smbconf": str(self.smbconf),
                    "samdb": str(self.targetdir / "private" / "sam.ldb"),
                    "schema_attributes": list(SCHEMA_ATTRIBUTES),
                    "schema_may_contain": {k: list(v) for k, v in SCHEMA_MAY_CONTAIN.items()},
                    "entries": str(entries_path),
                    "passwords": passwords,
                    "delegations": delegations(self.seed) if self.delegate is None else self.delegate,
                    "dc_account": f"CN={self.host_name.upper()},OU=Domain Controllers,{self.seed.base_dn}",
                    "spns": [f"ldap/{self.host_name}.{REALM.lower()}", f"ldap/{self.host_name.upper()}"],
                },
                fh,
            )
        loader = self.targetdir / "load_seed.py"
        loader.write_text(_LOADER)
        try:
            output = self._run(
                [_samba_python(), str(loader), str(job_path)], "loading the seed into sam.ldb",
                timeout=max(300, len(self.seed.entries) / 50),  # 400-600 entries/s
            )
        finally:
            job_path.unlink(missing_ok=True)  # it holds the operator passwords
            entries_path.unlink(missing_ok=True)
        report = json.loads(output.strip().splitlines()[-1])
        self.timings.update(report["timings"])
        if report["count"] != len(self.seed.entries):  # pragma: no cover - loader invariant
            raise SambaDCError(f"loaded {report['count']} of {len(self.seed.entries)} entries")

    def start(self, timeout: float = 60) -> None:
        start = time.monotonic()
        self.check_prerequisites()
        self._log_fh = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,  # samba -i exits when this pipe closes (we die → it dies)
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=self.env(),
            process_group=0,  # its own group: a prefork DC's children can be signalled together
            cwd=self.targetdir,
        )
        info = self.info()
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SambaDCError(
                    f"samba exited with {self.process.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                info.connect().unbind()
                break
            except Exception as exc:  # not listening yet, or TLS not ready
                last_error = exc
                time.sleep(0.1)
        else:
            self.stop()
            raise SambaDCError(f"LDAPS did not answer within {timeout:.0f}s ({last_error}):\n{self.log_tail()}")
        self.timings["start"] = time.monotonic() - start

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()
            except OSError:
                pass
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._address_lock is not None:
            self._address_lock.close()  # releases the address for the next run
            self._address_lock = None

    # -- helpers -------------------------------------------------------------------
    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def info(self) -> DCInfo:
        return DCInfo(
            ldaps_url=f"ldaps://{self.address}:{LDAPS_PORT}",
            ldap_url=f"ldap://{self.address}:{LDAP_PORT}",
            ca_file=str(self.tls_paths["ca"]),
            wrong_ca_file=str(self.tls_paths["wrong_ca"]),
            base_dn=self.seed.base_dn,
            admin_upn=f"Administrator@{REALM.lower()}",
            admin_dn=f"CN=Administrator,CN=Users,{self.seed.base_dn}",
            admin_password=self.admin_password,
            operator_passwords=dict(self.operator_passwords),
            seed=self.seed,
            targetdir=str(self.targetdir),
            timings=self.timings,
            krb5_conf=str(self.krb5_conf),
        )

    def run(self) -> DCInfo:
        """Provision, load and start; stops the daemon again if any step fails."""
        self.check_prerequisites()
        try:
            self.provision()
            self.load()
            self.start()
        except BaseException:
            self.stop()
            raise
        return self.info()
