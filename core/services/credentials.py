"""Service secrets (passwords, tokens) read from where the configuration points: an
environment variable (``*_env``) or the first line of a file (``*_file``), never the
configuration file itself. Every failure is a :class:`ConfigError` naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import ConfigError


def secret_from_env(where: str, name: str, value: Any, env: Mapping[str, str]) -> str:
    """The secret in the environment variable that ``where.name`` (= ``value``) names."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{name} must name an environment variable.")
    secret = env.get(value, "").strip()
    if not secret:
        raise ConfigError(f"The environment variable {value} ({where}.{name}) is not set.")
    return secret


def secret_from_file(where: str, name: str, value: Any) -> str:
    """The first line of the file that ``where.name`` (= ``value``) names."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{name} must be the path of a file.")
    path = Path(value).expanduser()
    try:
        text = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigError(f"The file {path} ({where}.{name}) cannot be read: {error.strerror}.") from None
    secret = text[0].strip() if text else ""
    if not secret:
        raise ConfigError(f"The file {path} ({where}.{name}) is empty.")
    return secret
