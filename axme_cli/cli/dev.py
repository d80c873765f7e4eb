"""`axme dev`: the local runtime on SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("dev")
    def dev(
        host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)] = 8100,
        db: Annotated[Path | None, typer.Option(help="SQLite database file [default: the data dir's dev.db].")] = None,
        api_key: Annotated[
            str | None,
            typer.Option(
                "--api-key",
                help="Fix the workspace admin key (scripts, CI); else one is generated and kept.",
                envvar="AXME_DEV_API_KEY",
            ),
        ] = None,
        org: Annotated[str, typer.Option(help="Organisation slug of agent addresses.")] = "local",
        workspace: Annotated[str, typer.Option(help="Workspace slug of agent addresses.")] = "dev",
        ready_file: Annotated[
            Path | None, typer.Option(help='Write {"url", "pid"} here once the runtime accepts connections.')
        ] = None,
        redelivery_seconds: Annotated[
            float,
            typer.Option(help="Redeliver an intent not resumed or in progress within this many seconds.", min=0.05),
        ] = 30.0,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
        smtp_url: Annotated[
            str | None,
            typer.Option(help="Mail login codes and task mails through smtp://user:pass@host:port (or smtps://); "
                         "else they are printed here and kept as .eml files.", envvar="AXME_DEV_SMTP_URL",
                         show_default=False),
        ] = None,
        mail_dir: Annotated[
            Path | None, typer.Option(help="Folder for the login-code and task mails [default: <db>.mail/].",
                                      show_default=False)
        ] = None,
        allow_email: Annotated[
            list[str] | None,
            typer.Option("--allow-email", help="Only this email may log in (repeatable) [default: any].",
                         show_default=False),
        ] = None,
        login_code_ttl: Annotated[
            float, typer.Option(help="Seconds a login code stays valid.", min=1.0)
        ] = 300.0,
        access_token_ttl: Annotated[
            float, typer.Option(help="Seconds a login's access token lasts (then the CLI refreshes it).", min=1.0)
        ] = 900.0,
    ) -> None:
        """Run the local AXP runtime (SQLite, one process). Data persists across restarts."""
        from axme_cli.config import paths
        from axme_cli.errors import UsageError
        from axme_cli.protocol.addresses import is_valid_slug
        from axme_cli.runtime.server import AddressInUse, ServeOptions, StartupFailed, serve
        from axme_cli.runtime.settings import Settings

        for label, slug in (("--org", org), ("--workspace", workspace)):
            if not is_valid_slug(slug):
                raise UsageError(
                    f"{label} {slug!r} is not a valid slug",
                    fix="use 3-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
                )
        if api_key is not None and len(api_key.strip()) < 16:
            raise UsageError("--api-key is too short", fix="use at least 16 characters")
        database = str(db) if db is not None else str(paths.default_database())
        if smtp_url:
            from axme_cli.runtime.mailer import SmtpMailer

            try:
                SmtpMailer(smtp_url)
            except ValueError as exc:
                raise UsageError(f"--smtp-url: {exc}") from None
        emails = tuple(sorted({e.strip().lower() for e in allow_email or [] if e.strip()}))
        settings = Settings(org=org, workspace=workspace, redelivery_seconds=redelivery_seconds,
                            login_code_ttl_seconds=login_code_ttl, access_token_ttl_seconds=access_token_ttl,
                            allowed_emails=emails)
        opts = ServeOptions(
            host=host,
            port=port,
            database=database,
            settings=settings,
            api_key=api_key.strip() if api_key else None,
            ready_file=str(ready_file) if ready_file else None,
            log_level=log_level,
            smtp_url=smtp_url,
            mail_dir=str(mail_dir) if mail_dir else None,
        )
        try:
            serve(opts, on_ready=_announce)
            from axme_cli.render.console import out

            out("axme dev: stopped; the data stays in " + database)
        except AddressInUse as exc:
            raise UsageError(
                f"{exc}", fix="is another `axme dev` running? `axme status` tells; or choose another port with --port"
            ) from None
        except StartupFailed as exc:
            from axme_cli.errors import CliError

            raise CliError(f"the runtime could not start: {exc}") from None


def _announce(info: object) -> None:
    from axme_cli.config import contexts, secrets
    from axme_cli.config.files import ConfigFileError
    from axme_cli.render.console import err, out
    from axme_cli.runtime.server import ReadyInfo

    assert isinstance(info, ReadyInfo)
    s = info.settings
    context_note = 'CLI context "local"'
    try:
        became_active = contexts.upsert(
            "local",
            {"base_url": info.url, "org_id": s.org, "workspace_id": s.workspace, "environment": "dev"},
            activate_if_none=True,
        )
        secrets.set_secret("local", "api_key", info.admin_key)
        data = contexts.load()
        context_note += (
            " (active)" if data.get("active_context") == "local" else " (not active: `axme context use local`)"
        )
        if became_active:
            context_note += ", just activated"
    except (ConfigFileError, OSError) as exc:
        err(f"axme dev: could not write the CLI context: {exc}")
        context_note = "not written (see above)"
    key_note = {
        "flag": "from --api-key",
        "kept": f"kept in {info.database}.key",
        "generated": f"new, kept in {info.database}.key",
    }[info.admin_key_source]
    out("axme dev: local AXP runtime")
    out(f"  URL        {info.url}")
    out(f"  Database   {info.database} ({info.storage}; data persists across restarts)")
    out(f"  Agents     agent://{s.org}/{s.workspace}/<name>")
    out(f"  Admin key  {key_note}")
    if info.login_codes:
        who = ", ".join(s.allowed_emails) if s.allowed_emails else "any email"
        out(f"  Logins     by email ({who}); codes {info.login_codes}")
    out(f"  CLI        {context_note}; try `axme status`")
    out("Press Ctrl+C to stop.")
