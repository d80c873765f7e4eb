"""`axme context list|show|current|use|set|create|rename|delete`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from axme_cli.cli import completers

NameArg = Annotated[str, typer.Argument(help="Context name.", show_default=False,
                                        autocompletion=completers.context_names)]
BaseUrl = Annotated[str | None, typer.Option("--base-url", show_default=False)]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="Stored in the secret store, never in "
                                            "config.json; '-' reads it from stdin (keeps it out of the shell "
                                            "history and the process list).", show_default=False)]
Org = Annotated[str | None, typer.Option("--org-id", show_default=False)]
Ws = Annotated[str | None, typer.Option("--workspace-id", show_default=False)]
Owner = Annotated[str | None, typer.Option("--owner-agent", show_default=False)]
Env = Annotated[str | None, typer.Option("--environment", show_default=False)]



def check_name(name: str) -> None:
    """A context name is a word people type and files hold: 1-64 letters, digits, '.', '_' or '-'."""
    import re

    from axme_cli.cli.inputs import shown
    from axme_cli.errors import UsageError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise UsageError(f"context name {shown(name)} is not allowed",
                         fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")


def _fields(base_url: str | None, org_id: str | None, workspace_id: str | None, owner_agent: str | None,
            environment: str | None) -> dict[str, Any]:
    return {"base_url": base_url, "org_id": org_id, "workspace_id": workspace_id, "owner_agent": owner_agent,
            "environment": environment}


app = typer.Typer(help="Named targets: base URL, org, workspace, credentials.", no_args_is_help=True,
                      rich_markup_mode=None)

@app.command("list")
def list_() -> None:
    """List contexts; the active one is marked."""
    from axme_cli.cli.common import output
    from axme_cli.config import contexts, secrets
    from axme_cli.render.tables import table

    data = contexts.load()
    rows = []
    for name, ctx in sorted(data["contexts"].items()):
        stored = secrets.get(name)
        rows.append({"name": name, "active": name == data.get("active_context"),
                     "base_url": ctx.get("base_url"), "org_id": ctx.get("org_id"),
                     "workspace_id": ctx.get("workspace_id"), "owner_agent": ctx.get("owner_agent"),
                     "environment": ctx.get("environment"), "has_api_key": bool(stored.get("api_key")),
                     "has_session": bool(stored.get("refresh_token") or stored.get("actor_token"))})
    output().items(rows, lambda: table(
        ["NAME", "ACTIVE", "BASE_URL", "ORG", "WORKSPACE", "ENV", "API_KEY", "SESSION"],
        [[r["name"], "*" if r["active"] else "", r["base_url"], r["org_id"], r["workspace_id"],
          r["environment"], "yes" if r["has_api_key"] else "no", "yes" if r["has_session"] else "no"]
         for r in rows], empty="No contexts yet: `axme dev` writes one, or `axme context create NAME`.",
        status_column=None))

@app.command("show")
def show(name: Annotated[str | None, typer.Argument(help="Context (default: the active one).",
                                                    show_default=False)] = None,
         show_key: Annotated[bool, typer.Option("--show-key", help="Include the API key.")] = False) -> None:
    """Show a context; the API key only with --show-key."""
    from axme_cli.cli.common import output
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import UsageError
    from axme_cli.render.console import key_values

    data = contexts.load()
    name = name or data.get("active_context")
    if not name or name not in data["contexts"]:
        raise UsageError(f"no context named {name!r}" if name else "no active context",
                         fix="list them with `axme context list`")
    ctx = data["contexts"][name]
    stored = secrets.get(name)
    mode, detail = secrets.storage()
    result: dict[str, Any] = {"name": name, "active": name == data.get("active_context"),
                              **{k: ctx.get(k) for k in contexts.CONTEXT_FIELDS},
                              "has_api_key": bool(stored.get("api_key")),
                              "has_actor_token": bool(stored.get("actor_token")),
                              "has_refresh_token": bool(stored.get("refresh_token")),
                              "secret_storage": {"mode": mode, "detail": detail}}
    if show_key:
        result["api_key"] = stored.get("api_key")
    rows = [(f"{k}:", v) for k, v in result.items() if k != "secret_storage"]
    rows.append(("secret_storage:", f"{mode} ({detail})"))
    output().result(result, lambda: key_values([(k, "" if v is None else v) for k, v in rows]))

@app.command("current")
def current() -> None:
    """Print the active context's name (and its base URL)."""
    from axme_cli.cli.common import output
    from axme_cli.config import contexts
    from axme_cli.errors import UsageError

    data = contexts.load()
    name = data.get("active_context")
    if not name or name not in data["contexts"]:
        raise UsageError("no active context", fix="pick one with `axme context use NAME` (`axme context list`)")
    base_url = data["contexts"][name].get("base_url")
    output().result({"ok": True, "context": name, "base_url": base_url}, name)


@app.command("use")
def use(name: NameArg) -> None:
    """Make a context the active one."""
    from axme_cli.cli.common import output
    from axme_cli.config import contexts
    from axme_cli.errors import UsageError

    data = contexts.load()
    if name not in data["contexts"]:
        raise UsageError(f"no context named {name!r}", fix="list them with `axme context list`")
    data["active_context"] = name
    contexts.save(data)
    output().result({"ok": True, "active_context": name},
                    f"Active context: {name} ({data['contexts'][name].get('base_url')})")

def _secret_from(value: str | None) -> str | None:
    """``--api-key -``: the key from the first line of stdin."""
    import sys

    from axme_cli.errors import UsageError

    if value != "-":
        return value
    line = sys.stdin.readline().strip() if sys.stdin is not None else ""
    if not line:
        raise UsageError("--api-key -: stdin held no key", fix="pipe the key in, e.g. `printenv KEY | axme context "
                         "set NAME --api-key -`")
    return line


def _write(name: str, fields: dict[str, Any], api_key: str | None, *, create: bool, must_exist: bool) -> None:
    from axme_cli.cli.common import output
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import UsageError

    check_name(name)
    api_key = _secret_from(api_key)
    data = contexts.load()
    exists = name in data["contexts"]
    if create and exists:
        raise UsageError(f"context {name!r} already exists", fix=f"change it with `axme context set {name} ...`")
    if must_exist and not exists:
        raise UsageError(f"no context named {name!r}", fix=f"create it with `axme context create {name}`")
    if fields.get("base_url") and not str(fields["base_url"]).startswith(("http://", "https://")):
        raise UsageError(f"--base-url {fields['base_url']!r} must start with http:// or https://")
    ctx = data["contexts"].setdefault(name, {})
    if create:
        ctx.setdefault("base_url", contexts.DEFAULT_BASE_URL)
    ctx.update({k: v for k, v in fields.items() if v is not None})
    if api_key is not None:  # the secret first: a failure then leaves config.json as it was
        secrets.set_secret(name, "api_key", api_key)
    contexts.save(data)
    active = data.get("active_context") == name
    # Never made active on the side: which runtime later commands reach changes only with `context use`.
    output().result({"ok": True, "context": name, "active": active},
                    f"{'Created' if create or not exists else 'Updated'} context {name}."
                    + ("" if active else f" Make it the active one with `axme context use {name}`."))

@app.command("set")
def set_(name: NameArg, base_url: BaseUrl = None, api_key: ApiKey = None, org_id: Org = None,
         workspace_id: Ws = None, owner_agent: Owner = None, environment: Env = None) -> None:
    """Change (or create) a context."""
    _write(name, _fields(base_url, org_id, workspace_id, owner_agent, environment), api_key, create=False,
           must_exist=False)

@app.command("create")
def create(name: NameArg, base_url: BaseUrl = None, api_key: ApiKey = None, org_id: Org = None,
           workspace_id: Ws = None, owner_agent: Owner = None, environment: Env = None) -> None:
    """Create a context (error if it exists)."""
    _write(name, _fields(base_url, org_id, workspace_id, owner_agent, environment), api_key, create=True,
           must_exist=False)

@app.command("rename")
def rename(old: Annotated[str, typer.Argument(help="The context's name now.", show_default=False)],
           new: Annotated[str, typer.Argument(help="Its new name.", show_default=False)]) -> None:
    """Rename a context, with its stored secrets; the active one stays active."""
    from axme_cli.cli.common import output
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import UsageError

    check_name(new)
    data = contexts.load()
    if old not in data["contexts"]:
        raise UsageError(f"no context named {old!r}", fix="list them with `axme context list`")
    if new in data["contexts"]:
        raise UsageError(f"context {new!r} already exists", fix=f"delete it first (`axme context delete {new}`) "
                         "or pick another name")
    stored = secrets.get(old)
    if stored:  # the secrets first under the new name: a failure then leaves config.json as it was
        secrets.update(new, dict(stored))
    data["contexts"][new] = data["contexts"].pop(old)
    if data.get("active_context") == old:
        data["active_context"] = new
    contexts.save(data)
    if stored:
        secrets.clear(old)
    output().result({"ok": True, "context": new, "renamed_from": old}, f"Renamed context {old} to {new}.")


@app.command("delete")
def delete(name: NameArg) -> None:
    """Delete a context and its stored secrets."""
    from axme_cli.cli.common import output
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import UsageError

    data = contexts.load()
    if name not in data["contexts"]:
        raise UsageError(f"no context named {name!r}", fix="list them with `axme context list`")
    del data["contexts"][name]
    if data.get("active_context") == name:
        data.pop("active_context")
    secrets.clear(name)  # first: if the secret store fails, the context stays
    contexts.save(data)
    output().result({"ok": True, "deleted": name}, f"Deleted context {name}.")
