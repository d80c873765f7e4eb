"""`axme doctor`: check the setup end to end, each check with what was found and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from axme_cli.cli.common import BaseUrlOpt

if TYPE_CHECKING:
    from axme_cli.config.resolve import Target

SKEW_WARN_SECONDS = 5.0


@dataclass
class Check:
    check: str
    status: str  # "ok" | "warn" | "fail" | "skip"
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        ok: bool | None = None if self.status == "skip" else self.status != "fail"
        return {"check": self.check, "ok": ok, "status": self.status, "detail": self.detail, "fix": self.fix or None}


def _config_checks(context: str | None, base_url: str | None) -> tuple[list[Check], Target | None]:
    import os

    from axme_cli.cli.common import target
    from axme_cli.config import contexts, paths, secrets
    from axme_cli.errors import CliError, ConfigFileError

    checks: list[Check] = []
    path = paths.config_file()
    try:
        data = contexts.load()
        found = "found" if path.exists() else "not created yet (fine: defaults apply)"
        checks.append(Check("config_file", "ok", f"{path} {found}"))
    except ConfigFileError as exc:
        checks.append(Check("config_file", "fail", str(exc), f"fix {path} or move it away to start fresh"))
        return checks, None

    t: Target | None = None
    try:
        t = target(base_url, None, context)
    except ConfigFileError:
        raise
    except CliError as exc:
        checks.append(Check("context", "fail", exc.message, exc.fix or "axme context list"))
    if t is not None:
        from_outside = t.sources.get("base_url", "default") not in ("context", "default")
        if t.context_exists:
            active = " (active)" if data.get("active_context") == t.context else ""
            checks.append(Check("context", "ok", f"{t.context}{active}"))
        elif from_outside:
            checks.append(Check("context", "ok", f"{t.context!r} does not exist; the target comes from "
                                f"{t.sources.get('base_url')}"))
        else:
            checks.append(Check("context", "fail", f"no context {t.context!r}; using the default {t.base_url}",
                                "start `axme dev` (it writes context `local`) or `axme context create NAME "
                                "--base-url URL`"))
        url_ok = t.base_url.startswith(("http://", "https://"))
        checks.append(Check("base_url", "ok" if url_ok else "fail",
                            f"{t.base_url} (from {t.sources.get('base_url', 'default')})",
                            "" if url_ok else "use an http:// or https:// URL (--base-url, AXME_BASE_URL, "
                            "or `axme context set NAME --base-url URL`)"))
        held = [f"{label} from {t.sources[key]}" for key, label in
                (("api_key", "API key"), ("actor_token", "access token"), ("refresh_token", "refresh token"))
                if key in t.sources]
        if held:
            checks.append(Check("credentials", "ok", "; ".join(held)))
        else:
            checks.append(Check("credentials", "fail", f"no API key or login session for context {t.context!r}",
                                "run `axme login` (or pass --api-key / set AXME_API_KEY)"))
    try:
        mode, detail = secrets.storage()
        status, fix = "ok", ""
        if mode == "file" and os.path.exists(detail):
            perms = os.stat(detail).st_mode & 0o777
            if perms & 0o077:
                status, fix = "fail", f"chmod 600 {detail}"
            detail = f"{detail} (mode {perms:o})"
        checks.append(Check("secret_storage", status, f"{mode}: {detail}", fix))
    except ConfigFileError as exc:
        checks.append(Check("secret_storage", "fail", str(exc), "set AXME_CLI_SECRET_STORAGE=file"))
    return checks, t


def _runtime_checks(t: Target) -> list[Check]:
    import time

    from axme_cli import __version__
    from axme_cli.client.http import Client
    from axme_cli.errors import CliError, ConfigFileError

    checks: list[Check] = []
    later = ("server_version", "clock_skew", "credentials_accepted")
    with Client(t.base_url, timeout=5.0) as c:
        try:
            start = time.time()
            health = c.health()
            local = (start + time.time()) / 2
        except CliError as exc:
            fix = exc.fix or "check the URL; `axme status` shows what answers there"
            checks.append(Check("runtime_reachable", "fail", exc.message, fix))
            return checks + [Check(name, "skip", "runtime not reachable") for name in later]
    checks.append(Check("runtime_reachable", "ok", f"{t.base_url}/health: service={health.get('service')} "
                        f"storage={health.get('storage')}"))
    theirs = str(health.get("version") or "?")
    if theirs == __version__:
        checks.append(Check("server_version", "ok", f"{theirs} (same as this CLI)"))
    else:
        checks.append(Check("server_version", "warn", f"runtime {theirs}, CLI {__version__}",
                            "use the same axme version on both sides (pip install -U axme-cli)"))
    server_time = health.get("server_time")
    if isinstance(server_time, int | float):
        skew = float(server_time) - local
        status = "ok" if abs(skew) <= SKEW_WARN_SECONDS else "warn"
        checks.append(Check("clock_skew", status, f"{skew:+.1f} s (runtime - here)",
                            "" if status == "ok" else "sync the clocks (NTP); token expiry and deadlines use them"))
    else:
        checks.append(Check("clock_skew", "skip", "the runtime does not report server_time"))
    if not (t.api_key or t.actor_token or t.refresh_token):
        checks.append(Check("credentials_accepted", "skip", "no credentials to try"))
        return checks
    try:
        with Client.for_target(t, timeout=10.0) as c:
            principal = c.whoami().get("principal") or {}
        who = principal.get("email") or principal.get("address")
        checks.append(Check("credentials_accepted", "ok", f"{principal.get('kind')} {who}"))
    except ConfigFileError:
        raise
    except CliError as exc:
        checks.append(Check("credentials_accepted", "fail", exc.message,
                            exc.fix or "run `axme login` (or pass a valid --api-key)"))
    return checks


app = typer.Typer()  # commands of the root (see app.py)


@app.command("doctor")
def doctor(
    base_url: BaseUrlOpt = None,
    context: Annotated[str | None, typer.Option("--context", help="Check this context instead of the active one.",
                                                show_default=False)] = None,
) -> None:
    """Check config, context, credentials, secret storage, the runtime, its version and clock."""
    from axme_cli.cli.common import output
    from axme_cli.render.tables import table

    checks, t = _config_checks(context, base_url)
    if t is not None:
        checks += _runtime_checks(t)
    failed = any(c.status == "fail" for c in checks)
    output().items([c.as_dict() for c in checks], lambda: table(
        ["CHECK", "OK", "DETAIL", "FIX"],
        [[c.check, {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}[c.status], c.detail, c.fix]
         for c in checks], status_column=None), ok=not failed)
    if failed:
        raise typer.Exit(1)
