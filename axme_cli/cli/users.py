"""`axme users check-nick|register-nick|rename-nick|whois|profile show|profile update` and
`axme invites create|show|accept`: nicks (names that intents and inbox messages may be sent to, as `@nick`),
profiles and invites. AXME's CLI has no commands for these; the routes are its gateway's (/v1/users/*,
/v1/invites/*).

What is typed is checked before any request, with the rules the runtime applies (protocol/nicks.py): a refusal
names the argument or flag and exits 2. A refusal of the runtime for the same reason (422) exits 2 too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

if TYPE_CHECKING:
    from axme_cli.client.http import Client

NickArg = Annotated[str, typer.Argument(help="The nick: @name (3-32 of a-z, 0-9, _ . -).", show_default=False)]
OwnerOpt = Annotated[str | None, typer.Option(
    "--owner-agent", help="The user: its address (owner_agent) or @nick [default: an agent key's own].",
    show_default=False)]
DisplayNameOpt = Annotated[str | None, typer.Option("--display-name", help="A name to show (1-120 characters).",
                                                    show_default=False)]
PhoneOpt = Annotated[str | None, typer.Option("--phone", help="A phone number, e.g. +12025550100.",
                                              show_default=False)]
EmailOpt = Annotated[str | None, typer.Option("--email", help="An email address.", show_default=False)]
TokenArg = Annotated[str, typer.Argument(help="The invite's token, or its invite_url.", show_default=False)]

# The runtime's refusals of what was typed (422), and the flag each field was typed as.
_INPUT_CODES = {"schema_invalid", "invalid_nick", "invalid_agent_address", "invalid_parameter"}
_FLAGS = {"nick": "--nick", "display_name": "--display-name", "phone": "--phone", "email": "--email",
          "owner_agent": "--owner-agent", "recipient_hint": "--hint", "ttl_seconds": "--ttl"}


def _check_nick(value: str, name: str) -> str:
    from axme_cli.errors import UsageError
    from axme_cli.protocol import nicks

    why = nicks.problem(value)
    if why is not None:
        raise UsageError(f"{name}: {why}", fix="e.g. @ann.lee")
    return value


def _check(value: str | None, flag: str, low: int, high: int,
           problem: Callable[[str], str | None] | None = None) -> None:
    from axme_cli.errors import UsageError
    from axme_cli.protocol import nicks

    if value is None:
        return
    if not low <= len(value) <= high:
        raise UsageError(f"{flag}: {low} to {high} characters (got {len(value)})")
    why = nicks.text_problem(value) or (problem(value) if problem else None)
    if why is not None:
        raise UsageError(f"{flag} {value!r}: {why}")


def _profile_fields(display_name: str | None, phone: str | None, email: str | None) -> dict[str, str]:
    from axme_cli.protocol import nicks

    _check(display_name, "--display-name", 1, 120)
    _check(phone, "--phone", 3, 32, nicks.phone_problem)
    _check(email, "--email", 3, 255, nicks.email_problem)
    fields = {"display_name": display_name, "phone": phone, "email": email}
    return {k: v for k, v in fields.items() if v is not None}


@contextmanager
def _session(base_url: str | None, api_key: str | None, context: str | None) -> Iterator[Client]:
    """The client, with the runtime's refusals of typed input (422) turned into usage errors (exit 2)."""
    from axme_cli.cli.common import client
    from axme_cli.errors import CliError, UsageError

    with client(base_url, api_key, context) as c:
        try:
            yield c
        except UsageError:
            raise
        except CliError as exc:
            if exc.code not in _INPUT_CODES:
                raise
            message = exc.message.removeprefix("request refused (422): ")
            field, sep, rest = message.partition(": ")
            if sep and field in _FLAGS:
                message = f"{_FLAGS[field]}: {rest}"
            raise UsageError(message, fix="see --help for what each flag takes", code=exc.code) from None


def _own_address(c: Client, owner_agent: str | None) -> str:
    """``--owner-agent``, else the caller's own address when it is an agent key (a person's or the workspace key's
    user has an address of its own: it must be named)."""
    from axme_cli.errors import UsageError

    if owner_agent:
        return owner_agent
    principal = c.whoami().get("principal") or {}
    if principal.get("kind") == "service_account" and principal.get("address"):
        return str(principal["address"])
    raise UsageError("--owner-agent: required with this key (it names the user: its owner_agent or @nick)",
                     fix="e.g. --owner-agent @ann.lee (see `axme users whois @ann.lee`)")


def _user_lines(body: dict[str, Any]) -> list[str]:
    rows = [("Nick", body.get("nick")), ("Public address", body.get("public_address")),
            ("Owner agent", body.get("owner_agent")), ("User id", body.get("user_id")),
            ("Display name", body.get("display_name")), ("Phone", body.get("phone")), ("Email", body.get("email"))]
    shown = [(k, v) for k, v in rows if v is not None]
    width = max(len(k) for k, _ in shown)
    return [f"{k.ljust(width)}  {v}" for k, v in shown]


app = typer.Typer(help="Users: nicks (send intents and inbox messages to @nick) and profiles.",
                  no_args_is_help=True, rich_markup_mode=None)
profile = typer.Typer(help="A user's profile.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(profile, name="profile")


@app.command("check-nick")
def check_nick(nick: NickArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
               context: ContextOpt = None) -> None:
    """Is a nick free? (GET /v1/users/check-nick)"""
    from axme_cli.cli.common import output

    _check_nick(nick, "NICK")
    with _session(base_url, api_key, context) as c:
        body = c.check_nick(nick)
    word = "available" if body["available"] else "taken (or reserved)"
    output().result(body, f"{body['nick']} is {word} (public address {body['public_address']}).")


@app.command("register-nick")
def register_nick(nick: NickArg, display_name: DisplayNameOpt = None, phone: PhoneOpt = None, email: EmailOpt = None,
                  base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Register a nick. An agent key: the nick names the agent. A person: a user of their own. The workspace key:
    a new user (agent://user/<id>)."""
    from axme_cli.cli.common import output

    body = {"nick": _check_nick(nick, "NICK"), **_profile_fields(display_name, phone, email)}
    with _session(base_url, api_key, context) as c:
        user = c.register_nick(body)
    output().result(user, [f"✓ Registered {user['nick']}: what is sent to it goes to {user['owner_agent']}.",
                           *_user_lines(user)])


@app.command("rename-nick")
def rename_nick(nick: Annotated[str, typer.Argument(help="The new nick (@name).", show_default=False)],
                owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                context: ContextOpt = None) -> None:
    """Give a user another nick (the old one is free again at once)."""
    from axme_cli.cli.common import output

    _check_nick(nick, "NICK")
    with _session(base_url, api_key, context) as c:
        user = c.rename_nick({"owner_agent": _own_address(c, owner_agent), "nick": nick})
    output().result(user, [f"✓ Renamed to {user['nick']}.", *_user_lines(user)])


@app.command("whois")
def whois(nick: NickArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
          context: ContextOpt = None) -> None:
    """Where a nick goes: its user's address and display name (GET /v1/users/resolve-nick)."""
    from axme_cli.cli.common import output

    public = not nick.startswith("@") and nick.lower().endswith("@ax")
    _check_nick(nick[:-3] if public else nick, "NICK")  # name@ax (the public address) names the nick too
    with _session(base_url, api_key, context) as c:
        body = c.resolve_nick(nick)
    output().result(body, _user_lines(body))


app.command("resolve", help="Same as whois.")(whois)


@profile.command("show")
def profile_show(owner_agent: OwnerOpt = None, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                 context: ContextOpt = None) -> None:
    """Show a user's profile (GET /v1/users/profile)."""
    from axme_cli.cli.common import output

    with _session(base_url, api_key, context) as c:
        body = c.user_profile(_own_address(c, owner_agent))
    output().result(body, [*_user_lines(body), f"Updated at      {body['updated_at']}"])


@profile.command("update")
def profile_update(owner_agent: OwnerOpt = None,
                   nick: Annotated[str | None, typer.Option("--nick", help="A new nick (@name).",
                                                            show_default=False)] = None,
                   display_name: DisplayNameOpt = None, phone: PhoneOpt = None, email: EmailOpt = None,
                   base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Change a user's profile: the fields given change, the others stay."""
    from axme_cli.cli.common import output
    from axme_cli.errors import UsageError

    fields = _profile_fields(display_name, phone, email)
    if nick is not None:
        fields["nick"] = _check_nick(nick, "--nick")
    if not fields:
        raise UsageError("nothing to change: give --nick, --display-name, --phone or --email")
    with _session(base_url, api_key, context) as c:
        body = c.update_user_profile({"owner_agent": _own_address(c, owner_agent), **fields})
    output().result(body, ["✓ Profile updated.", *_user_lines(body)])


# ---------------------------------------------------------------------------------------------
# invites

invites = typer.Typer(help="Invites: single-use tokens that give whoever accepts them a nick.",
                      no_args_is_help=True, rich_markup_mode=None)


def _token(value: str) -> str:
    """The token of a token or an invite_url (its last path segment)."""
    from urllib.parse import urlsplit

    from axme_cli.errors import UsageError

    token = urlsplit(value).path.rstrip("/").rsplit("/", 1)[-1] if "://" in value else value.strip()
    if not (12 <= len(token) <= 64) or not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in token):
        raise UsageError(f"TOKEN {value!r} is not an invite token or invite_url",
                         fix="use the token (or invite_url) `axme invites create` printed")
    return token


def _invite_lines(body: dict[str, Any]) -> list[str]:
    rows = [("Status", body.get("status")), ("Owner", body.get("owner_agent")),
            ("Recipient hint", body.get("recipient_hint")), ("Expires at", body.get("expires_at")),
            ("Accepted at", body.get("accepted_at")), ("Accepted by", body.get("accepted_owner_agent")),
            ("Nick", body.get("nick"))]
    shown = [(k, v) for k, v in rows if v is not None]
    width = max(len(k) for k, _ in shown)
    return [f"{k.ljust(width)}  {v}" for k, v in shown]


@invites.command("create")
def create_invite(
    owner_agent: Annotated[str | None, typer.Option(
        "--owner-agent", help="Who invites [default: the key's own address].", show_default=False)] = None,
    hint: Annotated[str | None, typer.Option("--hint", help="Who it is for, for your own records (1-255).",
                                             show_default=False)] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=60, max=1_209_600,
                                     help="Seconds until it expires (60 to 1209600).")] = 604_800,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Create an invite; its token is shown once (only its hash is kept)."""
    from axme_cli.cli.common import output

    _check(hint, "--hint", 1, 255)
    with _session(base_url, api_key, context) as c:
        owner = owner_agent or str(c.whoami()["principal"]["address"])
        body: dict[str, Any] = {"owner_agent": owner, "ttl_seconds": ttl}
        if hint is not None:
            body["recipient_hint"] = hint
        created = c.create_invite(body)
    output().result(created, [f"✓ Invite created; it is shown this once: {created['token']}",
                              f"Invite URL  {created['invite_url']}", f"Expires at  {created['expires_at']}",
                              f"Accept it with: axme invites accept {created['token']} --nick @name"])


@invites.command("show")
def show_invite(token: TokenArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                context: ContextOpt = None) -> None:
    """Show an invite: pending, accepted (by whom, with which nick) or expired."""
    from axme_cli.cli.common import output

    value = _token(token)
    with _session(base_url, api_key, context) as c:
        body = c.get_invite(value)
    output().result(body, _invite_lines(body))


@invites.command("accept")
def accept_invite(
    token: TokenArg,
    nick: Annotated[str, typer.Option("--nick", help="The nick to take (@name).", show_default=False)],
    display_name: DisplayNameOpt = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Accept an invite with a nick (once). An agent key: the nick names the agent; a person: a user of their own."""
    from axme_cli.cli.common import output

    value = _token(token)
    body = {"nick": _check_nick(nick, "--nick"), **_profile_fields(display_name, None, None)}
    with _session(base_url, api_key, context) as c:
        accepted = c.accept_invite(value, body)
    output().result(accepted, [f"✓ Accepted: you are {accepted['nick']} ({accepted['owner_agent']}), invited by "
                               f"{accepted['invite_owner_agent']}."])
