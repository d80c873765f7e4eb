"""`axme login`, `axme logout`, `axme whoami`.

Secrets (API key, access token, refresh token, its expiry) go to the secret store only; config.json
keeps the context, `last_login_email` and a pending login (its intent id, never the code).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.cli.common import BaseUrlOpt

if TYPE_CHECKING:
    from axme_cli.client.http import Client

LoginContextOpt = Annotated[str | None, typer.Option("--context", help="Sign in to this context (created if missing).",
                                                     show_default=False)]
SESSION_FIELDS = ("actor_token", "refresh_token", "token_expires_at")
LOCAL_ADOPTED = "Signed in to the local runtime through the context `local` that `axme dev` wrote; no login needed"


# --------------------------------------------------------------------------------------------- helpers
def _context_name(context: str | None) -> str:
    import os

    from axme_cli.cli.common import options
    from axme_cli.config import contexts

    explicit = context or options().context or os.environ.get("AXME_CONTEXT")
    return explicit or contexts.load().get("active_context") or "default"


def _base_url_for(name: str, flag: str | None) -> tuple[str, bool]:
    """(base URL, whether it was given explicitly) for signing in to context ``name``."""
    import os

    from axme_cli.cli.common import options
    from axme_cli.config import contexts
    from axme_cli.errors import UsageError

    given = flag or options().base_url or os.environ.get("AXME_BASE_URL") or os.environ.get("AXME_GATEWAY_BASE_URL")
    if given and not given.startswith(("http://", "https://")):
        raise UsageError(f"--base-url {given!r} must start with http:// or https://")
    if given:
        return given.rstrip("/"), True
    ctx = contexts.load()["contexts"].get(name) or {}
    return str(ctx.get("base_url") or contexts.DEFAULT_BASE_URL).rstrip("/"), False


def _save_context(name: str, base_url: str, explicit_url: bool, extra: dict[str, Any] | None = None) -> None:
    """Create the context if missing (active if there is none), set the base URL if it was given."""
    from axme_cli.config import contexts

    data = contexts.load()
    ctx = data["contexts"].setdefault(name, {})
    if explicit_url or not ctx.get("base_url"):
        ctx["base_url"] = base_url
    for key, value in (extra or {}).items():
        if value and not ctx.get(key):
            ctx[key] = value
    if not data.get("active_context") or data["active_context"] not in data["contexts"]:
        data["active_context"] = name
    contexts.save(data)


def _set_config(**values: Any) -> None:
    from axme_cli.config import contexts

    data = contexts.load()
    for key, value in values.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    contexts.save(data)


def _whoami(c: Client) -> dict[str, Any]:
    return dict(c.whoami().get("principal") or {})


def _describe(principal: dict[str, Any]) -> str:
    kind = principal.get("kind")
    if kind == "actor":
        return f"{principal.get('email')} (a person; session {principal.get('session_id')})"
    if kind == "workspace":
        return f"the workspace admin key ({principal.get('address')})"
    if kind == "service_account":
        return f"the agent {principal.get('address')}"
    return str(principal.get("address") or kind)


def _revoke_stored_session(name: str, base_url: str) -> dict[str, Any]:
    """Best effort: revoke the session whose tokens context ``name`` keeps. Never raises."""
    from axme_cli.client.http import Client
    from axme_cli.config import secrets
    from axme_cli.config.resolve import Target
    from axme_cli.errors import CliError, ConfigFileError

    stored = secrets.get(name)
    result: dict[str, Any] = {"attempted": False, "revoked": False, "session_id": None, "error": None}
    if not (stored.get("actor_token") or stored.get("refresh_token")):
        return result
    result["attempted"] = True
    t = Target(context=name, base_url=base_url, actor_token=stored.get("actor_token"),
               refresh_token=stored.get("refresh_token"), token_expires_at=stored.get("token_expires_at"),
               context_exists=True, sources={"actor_token": "context", "refresh_token": "context"})
    try:
        with Client.for_target(t, timeout=10.0) as c:
            if not c.actor_token:
                result["error"] = "the session could not be refreshed (already ended?)"
                return result
            body = c.logout()
        result.update(revoked=bool(body.get("revoked")), session_id=body.get("session_id"))
    except ConfigFileError:
        raise
    except CliError as exc:
        result["error"] = exc.message
    return result


def _interactive() -> bool:
    import sys

    return sys.stdin.isatty()


def _no_credentials(message: str) -> Exception:
    from axme_cli.errors import UsageError

    return UsageError(message, code="no_credentials",
                      fix="pass --api-key KEY (or pipe it to `axme login --with-token`), or sign in by email with "
                          "`axme login --email you@example.com` and then `axme login --code CODE`")


# --------------------------------------------------------------------------------------------- login flows
def _login_with_key(name: str, base_url: str, explicit_url: bool, key: str, verify: bool) -> None:
    from axme_cli.cli.common import output
    from axme_cli.client.http import Client
    from axme_cli.config import secrets
    from axme_cli.errors import CliError

    principal: dict[str, Any] | None = None
    if verify:
        with Client(base_url, key, timeout=15.0) as c:
            try:
                principal = _whoami(c)
            except CliError as exc:
                if exc.code in ("invalid_platform_api_key", "token_expired", "missing_api_key", "unauthorized"):
                    raise CliError(f"{base_url} refused this API key: {exc.message.split(': ', 1)[-1]}",
                                   fix="check the key; `axme dev` keeps its admin key in <db>.key",
                                   exit_code=2, code=exc.code) from None
                raise
    server_logout = _revoke_stored_session(name, base_url)
    _save_context(name, base_url, explicit_url)
    secrets.update(name, {"api_key": key, **dict.fromkeys(SESSION_FIELDS)})
    result = {"ok": True, "context": name, "base_url": base_url, "method": "api_key", "verified": verify,
              "principal": principal}
    if server_logout["attempted"]:
        result["replaced_session"] = server_logout
    who = _describe(principal) if principal else "(not checked)"
    output().result(result, f"Signed in to {base_url} as {who}; the key is kept in context {name}.")


def _adopt_local(name: str, base_url: str) -> bool:
    """`axme dev` wrote context `local` with a working admin key: nothing to do."""
    from axme_cli.cli.common import output
    from axme_cli.client.http import Client
    from axme_cli.config import secrets
    from axme_cli.errors import CliError

    key = secrets.get(name).get("api_key")
    if not key:
        return False
    with Client(base_url, key, timeout=10.0) as c:
        try:
            principal = _whoami(c)
        except CliError as exc:
            if exc.code == "unreachable":
                raise
            return False
    output().result({"ok": True, "context": name, "base_url": base_url, "method": "local_context",
                     "principal": principal, "message": LOCAL_ADOPTED},
                    LOCAL_ADOPTED + f" ({base_url}, {_describe(principal)}).")
    return True


def _refresh_existing(name: str, base_url: str) -> bool:
    """A stored session that still refreshes: already signed in."""
    from axme_cli.cli.common import output
    from axme_cli.client.http import Client
    from axme_cli.config import secrets
    from axme_cli.config.resolve import Target
    from axme_cli.errors import CliError, ConfigFileError

    stored = secrets.get(name)
    if not stored.get("refresh_token"):
        return False
    t = Target(context=name, base_url=base_url, refresh_token=stored["refresh_token"], context_exists=True,
               sources={"refresh_token": "context"})
    with Client.for_target(t, timeout=15.0) as c:
        try:
            principal = _whoami(c)  # no access token: the client refreshes first (and saves both new tokens)
        except ConfigFileError:
            raise
        except CliError as exc:
            if exc.code == "unreachable":
                raise
            principal = {}
    if principal.get("kind") != "actor":
        secrets.update(name, dict.fromkeys(SESSION_FIELDS))
        return False
    output().result({"ok": True, "context": name, "base_url": base_url, "method": "refresh", "refreshed": True,
                     "principal": principal},
                    [f"Session refreshed. Already signed in to {base_url} as {principal.get('email')} (context "
                     f"{name}).", "Sign in as someone else with `axme login --email EMAIL` (or --force)."])
    return True


def _request_code(name: str, base_url: str, email: str) -> dict[str, Any]:
    import time

    from axme_cli.client.http import Client
    from axme_cli.errors import CliError
    from axme_cli.render.console import err

    with Client(base_url, timeout=30.0) as c:
        body = c.request_login_code(email)
    if not body or not body.get("ok"):
        error = (body or {}).get("error") or {}
        raise CliError(f"{base_url} would not send a code to {email}: {error.get('message', 'refused')}",
                       fix="ask who runs the runtime to allow your email (--allow-email)"
                       if error.get("code") == "email_not_allowed" else "wait a few minutes and retry",
                       code=error.get("code") or "login_refused")
    expires_in = int(body.get("expires_in") or 300)
    pending = {"context": name, "base_url": base_url, "email": email, "intent_id": body["intent_id"],
               "expires_ts": time.time() + expires_in}
    _set_config(pending_login=pending, last_login_email=email)
    minutes = f"{expires_in // 60} min" if expires_in >= 60 else f"{expires_in} s"
    err(f"A 6-digit code was sent to {email} (valid {minutes}). On `axme dev` it is printed on the runtime's "
        "console and kept as an .eml file next to its database.")
    return pending


def _pending_for(name: str, base_url: str, email: str | None) -> dict[str, Any] | None:
    import time

    from axme_cli.config import contexts

    pending = contexts.load().get("pending_login")
    if not isinstance(pending, dict):
        return None
    if pending.get("context") != name or pending.get("base_url") != base_url:
        return None
    if email and pending.get("email") != email:
        return None
    if float(pending.get("expires_ts") or 0) <= time.time():
        return None
    return pending


def _verify(base_url: str, pending: dict[str, Any], code: str) -> dict[str, Any]:
    """The verify answer; raises CliError for an unusable login intent, returns {"retry": msg} for a wrong code."""
    from axme_cli.client.http import Client
    from axme_cli.errors import UsageError

    with Client(base_url, timeout=30.0) as c:
        body = c.verify_login_code(pending["intent_id"], code)
    if body and body.get("ok"):
        return dict(body)
    error = (body or {}).get("error") or {}
    message = error.get("message") or "the code was refused"
    if error.get("code") == "invalid_login_code" and (error.get("details") or {}).get("tries_left", 0) > 0:
        return {"retry": message}
    _set_config(pending_login=None)
    raise UsageError(message, fix="run `axme login` again for a new code", code=error.get("code") or "login_failed")


def _login_with_email(name: str, base_url: str, explicit_url: bool, email: str | None, code: str | None) -> None:
    from axme_cli.cli.common import output
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import UsageError

    interactive = _interactive()
    if email:
        email = email.strip().lower()
    pending = _pending_for(name, base_url, email) if code else None
    if code and pending is None:
        raise UsageError(f"no pending login{' for ' + email if email else ''} on {base_url} (or it expired)",
                         fix=f"request a code first: `axme login --email {email or 'you@example.com'}`")
    if pending is None:
        if not email:
            if not interactive:
                raise _no_credentials(f"no credentials for context {name!r} and no terminal to ask for an email")
            last = contexts.load().get("last_login_email")
            email = str(typer.prompt("Email", default=last or None, err=True)).strip().lower()
            if not email:
                raise UsageError("an email is needed to sign in")
        pending = _request_code(name, base_url, email)
        _save_context(name, base_url, explicit_url)  # so `axme login --code CODE --context NAME` finds it
        if not interactive:
            elsewhere = name != contexts.load().get("active_context")
            output().result({"ok": True, "context": name, "base_url": base_url, "method": "email", "pending": True,
                             "email": email, "next": "axme login --code CODE"},
                            f"Code sent to {email}. Finish with: axme login --code CODE"
                            + (f" --context {name}" if elsewhere else ""))
            return
    body: dict[str, Any] = {}
    while True:
        if not code:
            code = str(typer.prompt("Code", err=True)).strip()
        body = _verify(base_url, pending, code)
        if "retry" not in body:
            break
        if not interactive:
            raise UsageError(body["retry"], fix="rerun `axme login --code CODE` with the code from the mail",
                             code="invalid_login_code")
        from axme_cli.render.console import err

        err(f"axme: {body['retry']}")
        code = None
    server_logout = _revoke_stored_session(name, base_url)
    _save_context(name, base_url, explicit_url,
                  {"org_id": body.get("org_id"), "workspace_id": body.get("workspace_id")})
    secrets.update(name, {"actor_token": body["access_token"], "refresh_token": body["refresh_token"],
                          "token_expires_at": body.get("expires_at")})
    _set_config(pending_login=None, last_login_email=pending["email"])
    result = {"ok": True, "context": name, "base_url": base_url, "method": "email", "email": body.get("email"),
              "actor_id": body.get("actor_id"), "session_id": body.get("session_id"), "org_id": body.get("org_id"),
              "workspace_id": body.get("workspace_id"), "expires_at": body.get("expires_at")}
    if server_logout["attempted"]:
        result["replaced_session"] = server_logout
    output().result(result, f"Signed in to {base_url} as {body.get('email')} (context {name}, session "
                            f"{body.get('session_id')}).")


# --------------------------------------------------------------------------------------------- commands
app = typer.Typer()  # commands of the root (see app.py)


@app.command("login")
def login(
    api_key: Annotated[str | None, typer.Option("--api-key", help="Store this API key in the context.",
                                                show_default=False)] = None,
    with_token: Annotated[bool, typer.Option("--with-token", help="Read the API key from stdin (CI).")] = False,
    email: Annotated[str | None, typer.Option("--email", help="Sign in by email: a 6-digit code is sent there.",
                                              show_default=False)] = None,
    code: Annotated[str | None, typer.Option("--code", help="The code from the mail (finishes a pending login).",
                                             show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Sign in again even if already signed in.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Store the API key without checking it.")]
    = False,
    base_url: BaseUrlOpt = None,
    context: LoginContextOpt = None,
) -> None:
    """Sign in: store an API key, or log in by email with a one-time code (access + refresh tokens)."""
    import sys

    from axme_cli.cli.common import options
    from axme_cli.errors import UsageError

    name = _context_name(context)
    url, explicit_url = _base_url_for(name, base_url)
    if with_token:
        if api_key:
            raise UsageError("--with-token reads the key from stdin; do not pass --api-key too")
        api_key = next((ln.strip() for ln in sys.stdin.read().splitlines() if ln.strip()), "")
        if not api_key:
            raise UsageError("--with-token: stdin was empty",
                             fix='echo "$AXME_API_KEY" | axme login --with-token')
    api_key = api_key or options().api_key
    if api_key:
        if email or code:
            raise UsageError("--api-key and --email/--code are two ways to sign in; pick one")
        _login_with_key(name, url, explicit_url, api_key.strip(), verify=not no_verify)
        return
    if not (email or code or force):
        from axme_cli.config import contexts

        if name == "local" and name in contexts.load()["contexts"] and _adopt_local(name, url):
            return
        if _refresh_existing(name, url):
            return
    _login_with_email(name, url, explicit_url, email, code)

@app.command("logout")
def logout(
    all_: Annotated[bool, typer.Option("--all", help="Also delete the context's API key.")] = False,
    context: Annotated[str | None, typer.Option("--context", help="Sign out of this context.",
                                                show_default=False)] = None,
) -> None:
    """Sign out: revoke the session on the runtime (best effort) and delete its tokens."""
    from axme_cli.cli.common import output
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import UsageError

    name = _context_name(context)
    data = contexts.load()
    if name not in data["contexts"]:
        raise UsageError(f"no context named {name!r}", fix="list them with `axme context list`")
    base_url = str(data["contexts"][name].get("base_url") or contexts.DEFAULT_BASE_URL).rstrip("/")
    stored = secrets.get(name)
    had_session = bool(stored.get("actor_token") or stored.get("refresh_token"))
    server = _revoke_stored_session(name, base_url)
    changes: dict[str, str | None] = dict.fromkeys(SESSION_FIELDS)
    if all_:
        changes["api_key"] = None
    secrets.update(name, changes)
    if data.get("pending_login", {}).get("context") == name:
        _set_config(pending_login=None)
    key_cleared = all_ and bool(stored.get("api_key"))
    key_remaining = bool(stored.get("api_key")) and not all_
    result = {"ok": True, "context": name, "account_session_cleared": had_session, "api_key_cleared": key_cleared,
              "api_key_remaining": key_remaining, "server_logout": server}
    lines = []
    if had_session:
        note = ("session revoked on the runtime" if server["revoked"]
                else f"the runtime did not confirm ({server['error'] or 'no answer'}); tokens deleted here")
        lines.append(f"Signed out of context {name}: {note}.")
    else:
        lines.append(f"No login session in context {name}.")
    if key_cleared:
        lines.append(f"Deleted the API key of context {name}.")
    elif key_remaining:
        lines.append(f"The API key of context {name} stays (`axme logout --all` deletes it too).")
    output().result(result, lines)

@app.command("whoami")
def whoami(
    base_url: BaseUrlOpt = None,
    context: Annotated[str | None, typer.Option("--context", help="Use this context instead of the active one.",
                                                show_default=False)] = None,
) -> None:
    """Who the runtime sees with your credentials (GET /v1/auth/whoami)."""
    from axme_cli.cli.common import client, output, target
    from axme_cli.config import secrets
    from axme_cli.render.console import key_values

    t = target(base_url, None, context)
    with client(base_url, None, context, timeout=15.0) as c:
        body = c.whoami()
    principal = body.get("principal") or {}
    mode, detail = secrets.storage()
    credentials = {k: t.sources[k] for k in ("api_key", "actor_token", "refresh_token") if k in t.sources}
    result = {"ok": True, "context": t.context, "base_url": t.base_url, "principal": principal,
              "org_id": body.get("org_id"), "workspace_id": body.get("workspace_id"),
              "credentials": credentials, "secret_storage": {"mode": mode, "detail": detail}}
    rows: list[tuple[str, Any]] = [("Context", t.context), ("Runtime", t.base_url),
                                   ("Signed in as", _describe(principal)),
                                   ("Address", principal.get("address"))]
    if principal.get("kind") == "actor":
        rows += [("Email", principal.get("email")), ("Session", principal.get("session_id"))]
    else:
        rows.append(("Key id", principal.get("key_id")))
    rows += [("Workspace", f"{body.get('org_id')}/{body.get('workspace_id')}"),
             ("Credentials", ", ".join(f"{k} from {v}" for k, v in credentials.items()) or "none"),
             ("Secret storage", f"{mode} ({detail})")]
    output().result(result, lambda: key_values(rows))
