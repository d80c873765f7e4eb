"""`axme agents list|show|register|delete`, `axme agents keys create|revoke`, and an agent's sender policies:
`axme agents policy get|set|add|remove` and `axme agents receive-override get|set|add|remove`.

An agent is a service account; its address is ``agent://<org>/<workspace>/<name>``. Commands that take an agent
accept a bare name, ``org/ws/name``, ``agent://org/ws/name`` or the service-account id.

Tokens: ``keys create`` prints the new token once and also puts it in ``--json`` (handing it over is the point
of that command). ``register --with-key`` prints it once but leaves it out of ``--json`` unless ``--show-key``.
Keys kept with ``--save`` / ``--with-key`` go to scenario-agents.json (0600), the file `axme scenarios apply`
writes; ``delete`` and ``keys revoke`` drop the agent's (or that key's) entry for the current base URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.cli import agents_run
from axme_cli.cli.common import ApiKeyOpt, BaseUrlOpt, ContextOpt

if TYPE_CHECKING:
    from axme_cli.client.http import Client

AGENT_HELP = "Agent: a bare name, org/ws/name, agent://org/ws/name, or its service-account id."
AgentArg = Annotated[str, typer.Argument(help=AGENT_HELP, metavar="ADDRESS", show_default=False)]
OptAgentArg = Annotated[str | None, typer.Argument(help=AGENT_HELP + " Or use --agent-id.", metavar="[ADDRESS]",
                                                 show_default=False)]
AgentIdOpt = Annotated[str | None, typer.Option("--agent-id", help="The agent's service-account id (instead of "
                                                "ADDRESS).", show_default=False)]
NOT_FOUND_CODES = ("agent_not_found", "service_account_not_found")


# --------------------------------------------------------------------------------------------- helpers
def agent_path(ref: str) -> str:
    """The ``/v1/agents/{...}`` part for an address: without ``agent://``, URL-quoted."""
    from urllib.parse import quote

    from axme_cli.protocol.addresses import SCHEME

    value = ref.strip()
    if value.startswith(SCHEME):
        value = value[len(SCHEME):]
    return quote(value.strip("/"), safe="/")


def _looks_like_id(ref: str) -> bool:
    import re

    return bool(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", ref.strip().lower()))


def resolve_agent(c: Client, ref: str | None, agent_id: str | None = None) -> dict[str, Any]:
    """``GET /v1/agents/...`` for ADDRESS, a service-account id, or ``--agent-id``: ``{ok, agent}``."""
    from axme_cli.errors import CliError, UsageError

    if ref and agent_id:
        raise UsageError("give the agent as ADDRESS or as --agent-id, not both")
    if not ref and not agent_id:
        raise UsageError("which agent? give its ADDRESS (e.g. `inventory`) or --agent-id SA_ID",
                         fix="list them with `axme agents list`")
    try:
        address = ref
        sa_id = agent_id or (ref if ref and _looks_like_id(ref) else None)
        if sa_id:
            try:
                address = c.get_service_account(sa_id.strip())["service_account"]["address"]
            except CliError as exc:  # a positional id may still be an agent's name
                if agent_id or exc.code not in NOT_FOUND_CODES:
                    raise
        assert address is not None
        return c.get_agent(agent_path(address))
    except CliError as exc:
        if exc.code in NOT_FOUND_CODES:
            raise CliError(exc.message, code=exc.code, fix="list agents with `axme agents list`, and check the "
                           "context you are using (`axme context show`)") from None
        raise


def _expiry(value: str) -> str:
    """--expires-at as RFC 3339 with a zone, in the future; a usage error otherwise."""
    from datetime import UTC, datetime

    from axme_cli.errors import UsageError

    example = "e.g. --expires-at 2030-01-01T00:00:00Z"
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"--expires-at {value!r} is not an RFC 3339 time", fix=example) from None
    if when.tzinfo is None:
        raise UsageError(f"--expires-at {value!r} needs a time and a time zone (Z or +hh:mm)", fix=example)
    if when <= datetime.now(UTC):
        raise UsageError(f"--expires-at {value!r} is in the past", fix=example)
    return when.isoformat()


def _key_status(key: dict[str, Any]) -> str:
    """The key's status, or ``expired`` for an active key past its expiry."""
    from datetime import UTC, datetime

    status = str(key.get("status") or "")
    expires = key.get("expires_at")
    if status == "active" and expires:
        try:
            if datetime.fromisoformat(str(expires)) <= datetime.now(UTC):
                return "expired"
        except (ValueError, TypeError):
            pass
    return status


def _check_agents_file() -> None:
    """Read scenario-agents.json before anything changes: a broken file must not cost a freshly minted token."""
    from axme_cli.config import agents_file

    agents_file.load()


def _save_key(base_url: str, address: str, sa_id: str, key: dict[str, Any]) -> str:
    """Store a minted key in scenario-agents.json (the entry `axme scenarios apply` writes); returns the path."""
    import datetime

    from axme_cli.config import agents_file

    with agents_file.locked():
        agents_file.upsert({
            "address": address, "service_account_id": sa_id, "key_id": key["key_id"], "api_key": key["token"],
            "base_url": base_url, "created_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    return str(agents_file.path())


def _forget(address: str, base_url: str, *, key_id: str | None = None) -> int:
    """Drop the agent's scenario-agents.json entry for ``base_url`` (only if it holds ``key_id``, when given).

    Runs after the server-side change succeeded, so a broken file is a warning, not a failure.
    """
    from axme_cli.config import agents_file
    from axme_cli.errors import ConfigFileError
    from axme_cli.render.console import err

    try:
        with agents_file.locked():
            if key_id is not None:
                entry = agents_file.find(address, base_url)
                if entry is None or entry.get("key_id") != key_id:
                    return 0
            return agents_file.remove(address, base_url)
    except (ConfigFileError, OSError) as exc:
        err(f"axme: warning: {agents_file.path()} was not updated: {exc}")
        return 0


def _confirm(question: str) -> bool:
    """Ask on the terminal; the question goes to stderr, so stdout stays one document. No answer is a no."""
    import sys

    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _token_lines(key: dict[str, Any], saved: str | None) -> list[tuple[str, Any]]:
    return [("  Key ID:", key["key_id"]), ("  API key:", key["token"]), ("  Hint:", key.get("key_hint") or ""),
            ("  Expires:", key.get("expires_at") or "never"), *([("  Saved to:", saved)] if saved else [])]


# --------------------------------------------------------------------------------------------- commands
app = typer.Typer(help="Agents (service accounts) and their API keys.", no_args_is_help=True,
                     rich_markup_mode=None)
keys = typer.Typer(help="Mint and revoke an agent's API keys.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(keys, name="keys")

@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many agents.")] = 100,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """List agents, oldest first (--json: {"ok", "items", "next_cursor"})."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.tables import table

    with client(base_url, api_key, context) as c:
        rows = c.list_agents(limit=limit)
    output().items(rows, lambda: table(
        ["ADDRESS", "DISPLAY_NAME", "STATUS", "CREATED_AT"],
        [[r.get("address"), r.get("display_name"), r.get("status"), r.get("created_at")] for r in rows],
        empty="No agents yet: register one with `axme agents register --name NAME`.", status_column=None))

@app.command("show")
def show(agent: AgentArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
         context: ContextOpt = None) -> None:
    """Show an agent and its keys (never their tokens). --json: the API body {ok, agent} plus "keys"."""
    from axme_cli.cli.common import client, output

    with client(base_url, api_key, context) as c:
        body = resolve_agent(c, agent)
        sa_body = c.get_service_account(body["agent"]["service_account_id"])
    key_list = sa_body.get("keys", [])
    output().result({**body, "keys": key_list}, lambda: _show_agent(body["agent"], sa_body, key_list))


def _show_agent(view: dict[str, Any], sa_body: dict[str, Any], key_list: list[dict[str, Any]]) -> None:
    from axme_cli.render.console import key_values, out
    from axme_cli.render.tables import table

    sa = sa_body.get("service_account", {})
    rows: list[tuple[str, Any]] = [(k, view.get(k)) for k in ("address", "service_account_id",
                                                              "service_account_name", "display_name")]
    rows += [("description", sa.get("description")), ("status", view.get("status")),
             ("created_at", view.get("created_at")), ("updated_at", view.get("updated_at")),
             ("keys", f"{len(key_list)} ({sum(_key_status(k) == 'active' for k in key_list)} active)")]
    key_values([(f"{k}:", "" if v is None else v) for k, v in rows])
    out()
    table(["KEY_ID", "HINT", "STATUS", "CREATED_AT", "EXPIRES_AT"],
          [[k.get("key_id"), k.get("key_hint"), _key_status(k), k.get("created_at"), k.get("expires_at") or "never"]
           for k in key_list],
          empty=f"No keys: mint one with `axme agents keys create {view['address']} --save`.", status_column=None)

@app.command("register")
def register_(
    name: Annotated[str, typer.Option("--name", help="Agent name (lowercase letters, digits, '.', '_', '-'); "
                                      "its address is agent://<org>/<workspace>/<name>.", show_default=False)],
    display_name: Annotated[str | None, typer.Option("--display-name", show_default=False)] = None,
    description: Annotated[str | None, typer.Option("--description", show_default=False)] = None,
    with_key: Annotated[bool, typer.Option("--with-key", help="Also mint an API key and keep it in "
                                           "scenario-agents.json (the token is printed once).")] = False,
    show_key: Annotated[bool, typer.Option("--show-key", help="With --with-key and --json: include the token "
                                           "in the JSON.")] = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Register an agent (a service account). --json: the API body; the token only with --show-key."""
    from axme_cli.cli.common import client, output
    from axme_cli.errors import CliError, ConfigFileError, UsageError
    from axme_cli.render.console import key_values, out

    if show_key and not with_key:
        raise UsageError("--show-key only applies with --with-key", fix="add --with-key, or drop --show-key")
    if with_key:
        _check_agents_file()
    body: dict[str, Any] = {"name": name}
    if display_name is not None:
        body["display_name"] = display_name
    if description is not None:
        body["description"] = description
    key: dict[str, Any] | None = None
    saved: str | None = None
    with client(base_url, api_key, context) as c:
        try:
            created = c.create_service_account(body)
        except CliError as exc:
            if exc.code == "service_account_exists":
                raise CliError(exc.message, code=exc.code, fix=f"see it with `axme agents show {name}`; mint "
                               f"a key with `axme agents keys create {name} --save`") from None
            raise
        sa = created["service_account"]
        address, sa_id = sa["agent_address"], sa["service_account_id"]
        if with_key:
            try:
                key = c.create_key(sa_id)["key"]
            except ConfigFileError:
                raise
            except CliError as exc:
                raise CliError(f"agent {address} is registered, but minting its key failed: {exc.message}",
                               fix=f"mint one with `axme agents keys create {address} --save`",
                               exit_code=exc.exit_code, code=exc.code) from None
            saved = _save_key(c.base_url, address, sa_id, key)
    result: dict[str, Any] = dict(created)
    if key is not None:
        result["key"] = key if show_key else {k: v for k, v in key.items() if k != "token"}
        result["saved_to"] = saved

    def text() -> None:
        out("Agent registered.")
        rows: list[tuple[str, Any]] = [("  Name:", sa.get("name")), ("  Service account:", sa_id),
                                       ("  Agent address:", address)]
        if key is not None:
            rows += _token_lines(key, saved)
        key_values(rows)
        out("Next steps:")
        if key is None:
            out(f"  Mint its API key:   axme agents keys create {address} --save")
        else:
            out("  The API key is shown only this once; it is also kept in the file above (0600).")
        out(f"  Send it an intent:  axme intents send --to {address}")
        out(f"  See it:             axme agents show {address}")

    output().result(result, text)

@app.command("delete")
def delete(
    agent: AgentArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed when not on a "
                                      "terminal).")] = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Delete an agent: revokes all its keys and drops it from scenario-agents.json for this base URL."""
    import sys

    from axme_cli.cli.common import client, output
    from axme_cli.config import agents_file
    from axme_cli.errors import CliError, UsageError

    if not yes and not sys.stdin.isatty():
        raise UsageError(f"not deleting agent {agent!r} without confirmation (no terminal to ask on)",
                         fix=f"pass --yes: `axme agents delete {agent} --yes`", code="confirmation_required")
    with client(base_url, api_key, context) as c:
        view = resolve_agent(c, agent)["agent"]
        address, sa_id = view["address"], view["service_account_id"]
        if not yes and not _confirm(f"Delete agent {address} (service account {sa_id}) and revoke all its keys?"):
            raise CliError(f"agent {address} was not deleted", code="not_confirmed")
        body = c.delete_service_account(sa_id)
        removed = _forget(address, c.base_url)
    output().result({**body, "removed_from_agents_file": removed},
                    [f"Agent {address} deleted (service account {sa_id}); its keys are revoked.",
                     *([f"Removed its key from {agents_file.path()}."] if removed else [])])

@keys.command("create")
def keys_create(
    agent: OptAgentArg = None,
    agent_id: AgentIdOpt = None,
    expires_at: Annotated[str | None, typer.Option("--expires-at", help="RFC 3339 expiry, e.g. "
                                                   "2030-01-01T00:00:00Z (default: never).",
                                                   show_default=False)] = None,
    save: Annotated[bool, typer.Option("--save", help="Also keep the key in scenario-agents.json (0600).")]
    = False,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Mint an API key for an agent. The token is shown once, and --json includes it (that is the point of
    this command): keep that output out of logs."""
    from axme_cli.cli.common import client, output
    from axme_cli.render.console import key_values, out

    body: dict[str, Any] = {}
    if expires_at is not None:
        body["expires_at"] = _expiry(expires_at)
    if save:
        _check_agents_file()
    saved: str | None = None
    with client(base_url, api_key, context) as c:
        view = resolve_agent(c, agent, agent_id)["agent"]
        address, sa_id = view["address"], view["service_account_id"]
        created = c.create_key(sa_id, body)
        key = created["key"]
        if save:
            saved = _save_key(c.base_url, address, sa_id, key)
    def text() -> None:
        out(f"Key created for {address}.")
        key_values(_token_lines(key, saved))
        out("The API key is shown only this once" + (" here; it is kept in the file above." if saved else
                                                     ": store it now (or mint the key with --save)."))

    output().result({**created, "address": address, "saved_to": saved}, text)

@keys.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Option("--key-id", help="The key to revoke (see `axme agents show`).",
                                        show_default=False)],
    agent: OptAgentArg = None,
    agent_id: AgentIdOpt = None,
    base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None,
) -> None:
    """Revoke one of an agent's keys (it is refused from then on)."""
    from axme_cli.cli.common import client, output
    from axme_cli.config import agents_file
    from axme_cli.errors import CliError

    with client(base_url, api_key, context) as c:
        view = resolve_agent(c, agent, agent_id)["agent"]
        address, sa_id = view["address"], view["service_account_id"]
        try:
            body = c.revoke_key(sa_id, key_id.strip())
        except CliError as exc:
            if exc.code == "key_not_found":
                raise CliError(exc.message, code=exc.code,
                               fix=f"list its keys with `axme agents show {address}`") from None
            raise
        removed = _forget(address, c.base_url, key_id=body["key"]["key_id"])
    output().result({**body, "address": address, "removed_from_agents_file": removed},
                    [f"Key {body['key']['key_id']} of {address} revoked.",
                     *([f"Removed it from {agents_file.path()}."] if removed else [])])


# --------------------------------------------------------------------------------------------- sender policies
policy = typer.Typer(
    help="An agent's send policy: who may send intents to it. open (anyone), allowlist (only senders matching an "
         "entry) or denylist (anyone but those). The workspace key and people sending as themselves are not "
         "judged; a refused intent is 403 policy_denied naming the policy and entry.",
    no_args_is_help=True, rich_markup_mode=None)
receive_override = typer.Typer(
    help="An agent's receive override: which agents of other organizations may send to it, instead of the org's "
         "receive policy (`axme org receive-policy`). open, allowlist, closed, or use_org_default (no override).",
    no_args_is_help=True, rich_markup_mode=None)
app.add_typer(policy, name="policy")
app.add_typer(receive_override, name="receive-override")

PatternArg = Annotated[str, typer.Argument(metavar="PATTERN", show_default=False,
                                           help="Sender pattern: agent://org/ws/name, agent://org/ws/*, "
                                                "agent://org/*, *, or a bare agent name of the workspace.")]
EntryArg = Annotated[str, typer.Argument(metavar="ENTRY", show_default=False,
                                         help="The entry's id, or its pattern, as `get` shows them.")]
SEND_MODES = ("open", "allowlist", "denylist")
OVERRIDE_MODES = ("open", "allowlist", "closed", "use_org_default")


def _policy_base(c: Client, agent: str, what: str) -> str:
    """The route of the agent's ``what`` (policy, receive-override); a service-account id is looked up first."""
    address = resolve_agent(c, agent)["agent"]["address"] if _looks_like_id(agent) else agent
    return c.policy_base(agent_path=agent_path(address), what=what)


def _policy(what: str, agent: str, action: str, value: str | None, base_url: str | None, api_key: str | None,
            context: str | None) -> None:
    """get / set MODE / add PATTERN / remove ENTRY of an agent's send policy or receive override."""
    from axme_cli.cli import policies as shared
    from axme_cli.cli.common import client, output

    name = "send policy" if what == "policy" else "receive override"
    field = "policy_type" if what == "policy" else "override_type"
    if action == "set":
        assert value is not None
        modes = SEND_MODES if what == "policy" else OVERRIDE_MODES
        shared.check_mode(value, modes, f"axme agents {what} set {agent} {modes[1]}")
    elif action == "add":
        assert value is not None
        shared.check_pattern(value)
    with client(base_url, api_key, context) as c:
        answer, heading = shared.act(c, _policy_base(c, agent, what), action, value, field=field, name=name)
    output().result(answer, lambda: shared.show(answer, heading=heading))


@policy.command("get")
def policy_get(agent: AgentArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
               context: ContextOpt = None) -> None:
    """Show who may send to the agent: its mode and entries."""
    _policy("policy", agent, "get", None, base_url, api_key, context)


@policy.command("set")
def policy_set(agent: AgentArg,
               mode: Annotated[str, typer.Argument(metavar="MODE", show_default=False,
                                                   help="open, allowlist or denylist (the entries stay).")],
               base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Set the agent's send policy mode (the workspace key, a person, or the agent's own key)."""
    _policy("policy", agent, "set", mode, base_url, api_key, context)


@policy.command("add")
def policy_add(agent: AgentArg, pattern: PatternArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
               context: ContextOpt = None) -> None:
    """Add a sender pattern to the agent's send policy (the same one again changes nothing)."""
    _policy("policy", agent, "add", pattern, base_url, api_key, context)


@policy.command("remove")
def policy_remove(agent: AgentArg, entry: EntryArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                  context: ContextOpt = None) -> None:
    """Remove an entry (by id or pattern) from the agent's send policy."""
    _policy("policy", agent, "remove", entry, base_url, api_key, context)


@receive_override.command("get")
def override_get(agent: AgentArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                 context: ContextOpt = None) -> None:
    """Show the agent's receive override and its entries."""
    _policy("receive-override", agent, "get", None, base_url, api_key, context)


@receive_override.command("set")
def override_set(agent: AgentArg,
                 mode: Annotated[str, typer.Argument(
                     metavar="MODE", show_default=False,
                     help="open, allowlist, closed, or use_org_default (the org's receive policy applies).")],
                 base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None, context: ContextOpt = None) -> None:
    """Set the agent's receive override (the workspace key or a person)."""
    _policy("receive-override", agent, "set", mode, base_url, api_key, context)


@receive_override.command("add")
def override_add(agent: AgentArg, pattern: PatternArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                 context: ContextOpt = None) -> None:
    """Add a sender pattern to the agent's receive override."""
    _policy("receive-override", agent, "add", pattern, base_url, api_key, context)


@receive_override.command("remove")
def override_remove(agent: AgentArg, entry: EntryArg, base_url: BaseUrlOpt = None, api_key: ApiKeyOpt = None,
                    context: ContextOpt = None) -> None:
    """Remove an entry (by id or pattern) from the agent's receive override."""
    _policy("receive-override", agent, "remove", entry, base_url, api_key, context)


app.command("run", context_settings=agents_run.SETTINGS)(agents_run.run)
