"""Configuration: found in the documented places, typed, and every error names file and key."""

from pathlib import Path

import pytest

from core.config import default_path, load, read_password
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
[directory]
urls = ["ldaps://dc1.example.net"]
base_dn = "DC=example,DC=net"
bind_user = "svc@example.net"
"""


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_file_loads_with_every_service():
    config = load(ROOT / "config.example.toml")
    assert config.directory.urls == ("ldaps://dc1.example.net", "ldaps://dc2.example.net")
    assert config.directory.hosting_dn == "OU=Hosting,DC=example,DC=net"
    assert config.directory.password_env == "TENANTRY_BIND_PASSWORD"
    assert set(config.services) == {"exchange", "ocs", "blackberry", "sharepoint", "crm"}
    assert config.services["exchange"].service.plans == ("Basic 2 GB", "Premium 50 GB")
    assert config.services["sharepoint"].service.movable is False


def test_minimal_file_gets_defaults(tmp_path):
    config = load(write(tmp_path, MINIMAL))
    assert config.layout.customer_marker == "customer"
    assert config.directory.tls_verify is True
    assert config.service("ocs").movable is True


def test_missing_key_is_named(tmp_path):
    path = write(tmp_path, MINIMAL.replace('bind_user = "svc@example.net"\n', ""))
    with pytest.raises(ConfigError) as error:
        load(path)
    assert str(error.value) == f"{path}: the required key directory.bind_user is missing."


def test_wrong_type_is_named(tmp_path):
    path = write(tmp_path, MINIMAL + "pool_size = \"three\"\n")
    with pytest.raises(ConfigError, match=r"directory\.pool_size must be an integer, not a string"):
        load(path)


def test_urls_must_be_ldap(tmp_path):
    path = write(tmp_path, MINIMAL.replace("ldaps://dc1.example.net", "https://dc1"))
    with pytest.raises(ConfigError, match=r"directory\.urls must be a non-empty list of ldap:// or ldaps:// URLs"):
        load(path)


def test_global_catalog_urls_are_checked(tmp_path):
    assert load(write(tmp_path, MINIMAL)).directory.gc_urls == ()
    config = load(write(tmp_path, MINIMAL + 'gc_urls = ["ldaps://dc1.example.net:3269", "ldap://dc2.example.net:3268"]\n'))
    assert config.directory.gc_urls == ("ldaps://dc1.example.net:3269", "ldap://dc2.example.net:3268")
    with pytest.raises(ConfigError, match=r"directory\.gc_urls must be a list of ldap:// or ldaps:// URLs of Global Catalog servers"):
        load(write(tmp_path, MINIMAL + 'gc_urls = ["gc.example.net:3268"]\n'))
    with pytest.raises(ConfigError, match=r"directory\.gc_urls must be a list, not a string"):
        load(write(tmp_path, MINIMAL + 'gc_urls = "ldaps://gc.example.net:3269"\n'))
    cleartext = MINIMAL + 'start_tls = false\ngc_urls = ["ldap://dc1.example.net:3268"]\n'
    with pytest.raises(ConfigError, match=r"clear text"):
        load(write(tmp_path, cleartext))


def test_unknown_section_is_named(tmp_path):
    path = write(tmp_path, MINIMAL + "\n[directroy]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section \[directroy\]"):
        load(path)


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, MINIMAL + "\n[layout]\ncustomer_markr = \"x\"\n")
    with pytest.raises(ConfigError, match=r"unknown key layout\.customer_markr"):
        load(path)


def test_a_password_in_the_file_is_refused(tmp_path):
    path = write(tmp_path, MINIMAL + 'password = "hunter2"\n')
    with pytest.raises(ConfigError, match=r"directory\.password is not allowed") as error:
        load(path)
    assert "hunter2" not in str(error.value)


def test_service_with_unknown_adapter(tmp_path):
    path = write(tmp_path, MINIMAL + '\n[services.fax]\ndisplay_name = "Fax"\nadapter = "telex"\n')
    with pytest.raises(ConfigError, match=r"services\.fax\.adapter must be one of"):
        load(path)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load(write(tmp_path, "[directory\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_lookup_order(tmp_path, monkeypatch):
    assert default_path({"TENANTRY_CONFIG": "/etc/t.toml"}) == Path("/etc/t.toml")
    assert default_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/tenantry/config.toml")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path({}) == tmp_path / ".config" / "tenantry" / "config.toml"


def test_password_from_env_file_and_errors(tmp_path):
    config = load(write(tmp_path, MINIMAL + 'password_env = "BIND_PW"\n')).directory
    assert read_password(config, environ={"BIND_PW": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match="BIND_PW"):
        read_password(config, environ={})
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    config = load(write(tmp_path, MINIMAL + f'password_file = "{secret}"\n')).directory
    assert read_password(config, environ={}) == "from-file"


def test_console_keymap_and_theme(tmp_path):
    config = load(write(tmp_path, MINIMAL + '\n[console]\ntheme = "nord"\n[console.keymap]\n"users.move" = "v"\n'))
    assert config.console.theme == "nord" and config.console.keymap == {"users.move": "v"}
    with pytest.raises(ConfigError, match=r"console\.keymap\.users\.move"):
        load(write(tmp_path, MINIMAL + '\n[console.keymap]\n"users.move" = ""\n'))
