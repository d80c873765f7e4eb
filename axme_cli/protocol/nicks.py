"""Nicks: the public names of users (axp-spec ``api.users.*``): ``@`` and 3-32 of ``A-Z a-z 0-9 _ . -`` (the spec's
``^@[\\w.-]{3,32}$``, ``\\w`` read as JSON Schema's ASCII class), kept normalized (lowercase, no ``@``), with the
public address ``<normalized>@ax``; and the profile fields that go with them. Pure (no pydantic): the runtime's
request models and the CLI judge a nick, a name, a phone number and an email the same way."""

from __future__ import annotations

import re

PUBLIC_DOMAIN = "ax"
_NORMALIZED = re.compile(r"^[a-z0-9_.-]{3,32}$")
_WRITTEN = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")

# The spec names no reserved nicks. These would pass for the runtime itself or for whoever runs it, so nobody
# registers them (check-nick answers ``available: false``, registering one is 409 ``nick_reserved``).
RESERVED = frozenset({
    "agent_core", "admin", "administrator", "root", "system", "axme", "ax", "runtime", "support", "security",
    "help", "owner", "workspace", "everyone", "all", "me", "null", "none", "undefined", "anonymous", "postmaster",
    "abuse", "noreply", "no-reply",
})


def problem(raw: str) -> str | None:
    """Why ``raw`` is not a nick (``@name`` or ``name``), or None when it is one."""
    body = raw[1:] if raw.startswith("@") else raw
    if not 3 <= len(body) <= 32:
        return f"{raw!r} is not a nick: after the '@', 3 to 32 characters (got {len(body)})"
    if not _WRITTEN.match(body):
        return f"{raw!r} is not a nick: use only letters a-z, digits, '_', '.' and '-' after the '@'"
    return None


def normalize(raw: str) -> str:
    """The normalized nick of ``raw`` (``problem(raw)`` must be None): lowercase, without the ``@``."""
    return (raw[1:] if raw.startswith("@") else raw).lower()


def shown(normalized: str) -> str:
    """``@name``: the nick as answers show it."""
    return "@" + normalized


def public_address(normalized: str) -> str:
    return f"{normalized}@{PUBLIC_DOMAIN}"


def is_reserved(normalized: str) -> bool:
    return normalized in RESERVED


def of_recipient(raw: str) -> str | None:
    """The normalized nick a recipient names when written as a nick, ``@name`` or ``name@ax``; None when it is
    written as anything else (an agent address or a bare agent name, which never holds an ``@``). A recipient
    written as a nick that is not a valid one is also None: it then fails as an address, naming the field."""
    value = raw.strip()
    if value.startswith("@"):
        body = value[1:]
    elif value.lower().endswith("@" + PUBLIC_DOMAIN) and "://" not in value:
        body = value[: -len(PUBLIC_DOMAIN) - 1]
    else:
        return None
    body = body.lower()
    return body if _NORMALIZED.match(body) else None


# ---------------------------------------------------------------------------------------------
# profile fields: free text the runtime keeps and shows may hold no control characters, and an email and a phone
# number must look like one (the spec gives only their lengths)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]*[0-9]$")


def text_problem(value: str) -> str | None:
    return "must not contain control characters (newlines, tabs, NUL ...)" if _CONTROL.search(value) else None


def email_problem(value: str) -> str | None:
    return None if _EMAIL.match(value) else "must be an email address, e.g. ann@example.com"


def phone_problem(value: str) -> str | None:
    if _PHONE.match(value) and sum(c.isdigit() for c in value) >= 3:
        return None
    return "must be a phone number: digits, spaces, ( ) . - and an optional leading +"
