"""The project's own errors. Each carries one sentence fit to show a user."""

from __future__ import annotations


class TenantryError(Exception):
    """Base of every error the user may see; ``str(error)`` is one clear sentence."""

    exit_code = 1


class ConfigError(TenantryError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class UsageError(TenantryError):
    """The command line or an argument names something that does not exist."""

    exit_code = 2


class NotFound(UsageError):
    """A customer, user or other object named by the operator does not exist."""


class DirectoryError(TenantryError):
    """The directory could not do what was asked."""

    exit_code = 2


class DirectoryUnavailable(DirectoryError):
    """No domain controller could be reached (or the connection dropped for good)."""


class WriteUnknown(DirectoryUnavailable):
    """The domain controller stopped answering with a write sent to it: it may have
    applied the write, now or when it answers again (a frozen DC still has it)."""


class AuthenticationFailed(DirectoryError):
    """The bind identity or its password was refused."""


class CertificateError(DirectoryError):
    """The domain controller's TLS certificate could not be verified."""


class ChangedUnderneath(DirectoryError):
    """A compare-and-swap write found a value other than the one it expected."""


class AlreadyExists(DirectoryError):
    """An object with that name or value exists already."""


class PasswordRefused(DirectoryError):
    """The domain controller refused a new password (its policy, a password filter)."""


class PermissionDenied(TenantryError):
    """The operator's rights do not allow the action."""

    exit_code = 3


class ServiceError(TenantryError):
    """A service's API (BlackBerry, a provisioning endpoint) failed, refused the call or could not be reached.

    ``service`` is the configured service key; ``status`` the HTTP status when there was an answer.
    """

    def __init__(self, message: str, *, service: str | None = None, status: int | None = None):
        super().__init__(message)
        self.service = service
        self.status = status
