"""Async access to the hosting directory (ldap3 below, the domain model above)."""

from core.directory.directory import Conflict, Directory
from core.directory.connect import connect

__all__ = ["Conflict", "Directory", "connect"]
