"""New users' passwords: the domain's policy, the checks made before anything is
written, and generated passwords (PRODUCT §3, §7).

The policy is the domain's own, read from the domain root (``minPwdLength``, the
complexity bit of ``pwdProperties``; see :meth:`core.directory.Directory.password_policy`).
:func:`password_problems` applies it the way Active Directory does for a new account
— minimum length; with complexity on, three of the five character categories — and,
whatever the complexity bit says, refuses a password holding the account name or a
part of the user's names (3 characters or more, case-insensitively). Password history
does not apply to a new account. A rule only the domain controller knows (a
fine-grained password policy, a password filter) is still enforced when the password
is set: the job then rolls back to no account.

Passwords live in memory only: they are never logged, journaled, audited, shown in a
plan or passed on a command line; the messages here never quote them.
"""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from dataclasses import dataclass

MAX_LENGTH = 256  # what AD's unicodePwd takes
GENERATED_LENGTH = 20
_NAME_SEPARATORS = re.compile(r"[,.\-_#\s]+")  # how AD splits the display name into tokens
_GENERATED_SYMBOLS = "!#%*+-=?@^_"  # no quotes, spaces or shell-special characters worth avoiding


@dataclass(frozen=True)
class PasswordPolicy:
    """The domain's password policy, as read from the domain root."""

    min_length: int = 7
    complex: bool = True
    history_length: int = 0  # not checked: a new account has no history

    def describe(self) -> str:
        rules = [f"at least {self.min_length} characters"]
        if self.complex:
            rules.append("three of: upper case, lower case, digits, symbols")
        rules.append("not the username or a part of the user's name")
        return "; ".join(rules)


def categories(password: str) -> int:
    """How many of AD's five complexity categories ``password`` uses."""
    return sum((
        any(c.isupper() for c in password),
        any(c.islower() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),  # ~!@#$%^&*_-+=`|\(){}[]:;"'<>,.?/ and the like
        any(c.isalpha() and not c.isupper() and not c.islower() for c in password),  # e.g. CJK
    ))


def name_tokens(*names: str | None) -> list[str]:
    """The parts of the user's names AD looks for in a password (3 characters or more)."""
    tokens: list[str] = []
    for name in names:
        for token in _NAME_SEPARATORS.split(name or ""):
            if len(token) >= 3 and token.casefold() not in tokens:
                tokens.append(token.casefold())
    return tokens


def password_problems(
    password: str,
    policy: PasswordPolicy,
    *,
    sam: str | None = None,
    display_name: str | None = None,
    first: str | None = None,
    last: str | None = None,
) -> list[str]:
    """Every reason ``password`` is refused, as sentences that never quote it (empty: fine)."""
    problems: list[str] = []
    if not password:
        return ["The password is empty."]
    if any(unicodedata.category(c) == "Cc" for c in password):
        problems.append("The password holds a control character (a line break, a tab…).")
    if len(password) < policy.min_length:
        problems.append(f"The password is shorter than the domain's minimum of {policy.min_length} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"The password is longer than {MAX_LENGTH} characters.")
    if policy.complex and categories(password) < 3:
        problems.append("The password needs characters of three kinds: upper case, lower case, digits, symbols.")
    folded = password.casefold()
    if sam and len(sam) >= 3 and sam.casefold() in folded:
        problems.append("The password contains the username.")
    elif any(token in folded for token in name_tokens(display_name, first, last)):
        problems.append("The password contains a part of the user's name.")
    return problems


def generate_password(policy: PasswordPolicy, *, sam: str | None = None, display_name: str | None = None,
                      first: str | None = None, last: str | None = None) -> str:
    """A random password that passes :func:`password_problems` for this user."""
    length = max(GENERATED_LENGTH, policy.min_length)
    alphabet = string.ascii_letters + string.digits + _GENERATED_SYMBOLS
    while True:
        chosen = [
            secrets.choice(string.ascii_uppercase),
            secrets.choice(string.ascii_lowercase),
            secrets.choice(string.digits),
            secrets.choice(_GENERATED_SYMBOLS),
        ] + [secrets.choice(alphabet) for _ in range(length - 4)]
        secrets.SystemRandom().shuffle(chosen)
        password = "".join(chosen)
        if not password_problems(password, policy, sam=sam, display_name=display_name, first=first, last=last):
            return password
