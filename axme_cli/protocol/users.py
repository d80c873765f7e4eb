"""Users and invites on the wire (axp-spec ``api.users.*`` and ``api.invites.*``; gateway OpenAPI ``/v1/users/*``,
``/v1/invites/*``). Lengths are the spec's; a nick's shape is judged by ``protocol/nicks.py`` (422
``invalid_nick``), so the refusal says what a nick may hold. Free text the runtime keeps and shows (names, phone,
email) may hold no control characters, and email and phone must look like one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from axme_cli.protocol import nicks
from axme_cli.protocol.models import JsonInt, _Strict

# ttl_seconds of an invite: the spec's bounds (1 minute .. 14 days), and the default when it is left out.
INVITE_TTL_MIN, INVITE_TTL_MAX, INVITE_TTL_DEFAULT = 60, 1_209_600, 604_800


def _checked(problem: Callable[[str], str | None]) -> Callable[[str], str]:
    def check(value: str) -> str:
        why = problem(value)
        if why is not None:
            raise ValueError(why)
        return value

    return check


_text = _checked(nicks.text_problem)
_email = _checked(nicks.email_problem)
_phone = _checked(nicks.phone_problem)


Nick = Annotated[str, StringConstraints(min_length=1, max_length=64)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=120), AfterValidator(_text)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=32), AfterValidator(_phone)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=255), AfterValidator(_email)]
OwnerAgent = Annotated[str, StringConstraints(min_length=3, max_length=255), AfterValidator(_text)]


class RegisterNickRequest(_Strict):
    """``api.users.register_nick.request.v1``."""

    nick: Nick
    display_name: DisplayName | None = None
    phone: Phone | None = None
    email: Email | None = None


class RenameNickRequest(_Strict):
    """``api.users.rename_nick.request.v1``: a new nick for ``owner_agent`` (and, given, new profile fields)."""

    owner_agent: OwnerAgent
    nick: Nick
    display_name: DisplayName | None = None
    phone: Phone | None = None
    email: Email | None = None


class ProfileUpdateRequest(_Strict):
    """``api.users.profile.update.request.v1``: the fields given change, the others stay."""

    owner_agent: OwnerAgent
    nick: Nick | None = None
    display_name: DisplayName | None = None
    phone: Phone | None = None
    email: Email | None = None


class InviteCreateRequest(_Strict):
    """``api.invites.create.request.v1``."""

    owner_agent: OwnerAgent
    recipient_hint: Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_text)] | None = None
    ttl_seconds: Annotated[JsonInt, Field(ge=INVITE_TTL_MIN, le=INVITE_TTL_MAX)] | None = None


class InviteAcceptRequest(_Strict):
    """``api.invites.accept.request.v1``."""

    nick: Nick
    display_name: DisplayName | None = None
