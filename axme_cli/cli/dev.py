"""`axme dev` (the local runtime, SQLite by default) and `axme server` (PostgreSQL, several replicas)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

Host = Annotated[str, typer.Option(help="Interface to bind (loopback by default).")]
Port = Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)]
Org = Annotated[str, typer.Option(help="Organisation slug of agent addresses.")]
Workspace = Annotated[str, typer.Option(help="Workspace slug of agent addresses.")]
ReadyFile = Annotated[
    Path | None, typer.Option(help='Write {"url", "pid"} here once the runtime accepts connections.')
]
Redelivery = Annotated[
    float, typer.Option(help="Redeliver an intent not resumed or in progress within this many seconds.", min=0.05)
]
LogLevel = Annotated[str, typer.Option(help="uvicorn log level.")]
SmtpUrl = Annotated[
    str | None,
    typer.Option(help="Mail login codes and task mails through smtp://user:pass@host:port (or smtps://); else "
                 "they are printed here and kept as .eml files.", envvar="AXME_DEV_SMTP_URL", show_default=False),
]
MailDir = Annotated[
    Path | None,
    typer.Option(help="Folder for the login-code and task mails [default: <db>.mail/].", show_default=False),
]
AllowEmail = Annotated[
    list[str] | None,
    typer.Option("--allow-email", help="Who may log in by email: an address, or @example.com for any address "
                 "at that domain (repeatable; '*': anyone) [default: nobody; anyone on `axme dev` bound to "
                 "loopback].", show_default=False),
]
LoginRateLimit = Annotated[
    float, typer.Option("--login-rate-limit", help="Calls without a credential (login codes asked for and "
                        "checked, refreshes, dashboard logins, task-mail links) a minute per client address; besides, "
                        "10 code checks a minute per address and 5 codes per email per 10 min. 0 turns these limits "
                        "off.", min=0.0)
]
LoginCodeTtl = Annotated[float, typer.Option(help="Seconds a login code stays valid.", min=1.0)]
AccessTokenTtl = Annotated[
    float, typer.Option(help="Seconds a login's access token lasts (then the CLI refreshes it).", min=1.0)
]
WebhookRetryBase = Annotated[
    float, typer.Option("--webhook-retry-base-seconds", help="Wait this long after a webhook delivery's "
                        "first failure (x4 after each further one, at most 600 s).", min=0.01)
]
WebhookMaxAttempts = Annotated[int, typer.Option(help="Tries of a webhook delivery before it is dead-lettered.", min=1)]
PublicUrl = Annotated[
    str | None,
    typer.Option(help="The URL people reach this runtime at, for links in task mails (behind a proxy or load "
                 "balancer) [default: the URL it listens on].", envvar="AXME_PUBLIC_URL", show_default=False),
]
MetricsPublic = Annotated[
    bool, typer.Option("--metrics-public", help="Serve GET /metrics without a key (else it needs the workspace "
                       "admin key); for a Prometheus that cannot send one, on a port only it can reach.")
]
OutboundTimeout = Annotated[
    float, typer.Option("--outbound-timeout-seconds", help="Seconds a webhook or http-agent POST may take.", min=0.1)
]
RateLimit = Annotated[
    float, typer.Option("--rate-limit", help="Requests a second per key (bursts of twice as many; counted per "
                        "replica); 0 turns the limit off.", min=0.0)
]
AllowPrivateCallbacks = Annotated[
    list[str] | None,
    typer.Option("--allow-private-callbacks", metavar="CIDR", show_default=False,
                 help="Let webhooks and http agents call internal addresses in this network (repeatable), e.g. "
                 "10.0.0.0/8; refused by default (`axme dev` on loopback allows loopback, never link-local)."),
]
Quota = Annotated[
    list[str] | None,
    typer.Option("--quota", metavar="DIMENSION=LIMIT", show_default=False,
                 help="A quota limit of the workspace while nobody changed its policy (repeatable), e.g. "
                 "intents_per_day=5000 or payload_max_bytes=128KiB; PATCH /v1/quotas (`axme quota set`) overrides "
                 "it [default: no limits]."),
]
TestClock = Annotated[
    bool, typer.Option("--test-clock", help="For tests: the runtime's clock stands still (starting at the real "
                       "time) and moves only when the admin key calls POST /dev/clock/advance {\"seconds\": N}, "
                       "which fires what became due (deadlines, retries, reminders) at once. Rate limits refill "
                       "only as it moves too (--rate-limit 0 turns the per-key one off).")
]


app = typer.Typer()  # commands of the root (see app.py)


@app.command("dev")
def dev(
    host: Host = "127.0.0.1",
    port: Port = 8100,
    db: Annotated[Path | None, typer.Option(help="SQLite database file [default: the data dir's dev.db].")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="sqlite:///PATH or postgresql://USER@HOST:PORT/DB instead of --db.", show_default=False),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Fix the workspace admin key (scripts, CI); else one is generated and kept.",
            envvar="AXME_DEV_API_KEY",
        ),
    ] = None,
    org: Org = "local",
    workspace: Workspace = "dev",
    ready_file: ReadyFile = None,
    redelivery_seconds: Redelivery = 30.0,
    log_level: LogLevel = "warning",
    smtp_url: SmtpUrl = None,
    mail_dir: MailDir = None,
    allow_email: AllowEmail = None,
    login_code_ttl: LoginCodeTtl = 300.0,
    access_token_ttl: AccessTokenTtl = 900.0,
    webhook_retry_base: WebhookRetryBase = 30.0,
    webhook_max_attempts: WebhookMaxAttempts = 4,
    outbound_timeout: OutboundTimeout = 10.0,
    public_url: PublicUrl = None,
    metrics_public: MetricsPublic = False,
    rate_limit: RateLimit = 1000.0,
    allow_private_callbacks: AllowPrivateCallbacks = None,
    login_rate_limit: LoginRateLimit = 30.0,
    quota: Quota = None,
    test_clock: TestClock = False,
) -> None:
    """Run the local AXP runtime (SQLite, one process). Data persists across restarts."""
    from axme_cli.config import paths
    from axme_cli.errors import UsageError

    if db is not None and database_url:
        raise UsageError("give --db or --database-url, not both")
    database = database_url or (str(db) if db is not None else str(paths.default_database()))
    _run(
        "dev", host=host, port=port, database=database, api_key=api_key, org=org, workspace=workspace,
        ready_file=ready_file, redelivery_seconds=redelivery_seconds, log_level=log_level, smtp_url=smtp_url,
        mail_dir=mail_dir, allow_email=allow_email, login_code_ttl=login_code_ttl,
        access_token_ttl=access_token_ttl, replica_id=None, webhook_retry_base=webhook_retry_base,
        webhook_max_attempts=webhook_max_attempts, outbound_timeout=outbound_timeout, public_url=public_url,
        metrics_public=metrics_public, rate_limit=rate_limit, allow_private_callbacks=allow_private_callbacks,
        login_rate_limit=login_rate_limit, test_clock=test_clock, quota=quota,
    )

@app.command("server")
def server(
    database_url: Annotated[
        str | None,
        typer.Option(help="postgresql://USER@HOST:PORT/DB (several replicas may share it) or sqlite:///PATH.",
                     envvar="AXME_DATABASE_URL", show_default=False),
    ] = None,
    host: Host = "127.0.0.1",
    port: Port = 8100,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="The workspace admin key (the same on every replica). Required with "
                     "PostgreSQL.", envvar="AXME_SERVER_API_KEY", show_default=False),
    ] = None,
    replica_id: Annotated[
        str | None, typer.Option(help="Name of this replica in logs [default: host-pid].", show_default=False)
    ] = None,
    org: Org = "local",
    workspace: Workspace = "dev",
    ready_file: ReadyFile = None,
    redelivery_seconds: Redelivery = 30.0,
    log_level: LogLevel = "warning",
    smtp_url: SmtpUrl = None,
    mail_dir: MailDir = None,
    allow_email: AllowEmail = None,
    login_code_ttl: LoginCodeTtl = 300.0,
    access_token_ttl: AccessTokenTtl = 900.0,
    webhook_retry_base: WebhookRetryBase = 30.0,
    webhook_max_attempts: WebhookMaxAttempts = 4,
    outbound_timeout: OutboundTimeout = 10.0,
    public_url: PublicUrl = None,
    metrics_public: MetricsPublic = False,
    rate_limit: RateLimit = 1000.0,
    allow_private_callbacks: AllowPrivateCallbacks = None,
    login_rate_limit: LoginRateLimit = 30.0,
    quota: Quota = None,
    test_clock: Annotated[bool, typer.Option("--test-clock", hidden=True)] = False,
) -> None:
    """Run the AXP runtime for a team: PostgreSQL, as many replicas as you like behind a load balancer."""
    from axme_cli.errors import UsageError

    if test_clock:  # a clock anyone with the admin key can move would expire every team's tokens and deadlines
        raise UsageError("--test-clock is for tests; `axme server` always runs on the real clock",
                         fix="use `axme dev --test-clock` for a runtime whose clock a test moves")
    if not database_url:
        raise UsageError("axme server needs a database", fix="pass --database-url postgresql://USER@HOST:PORT/DB "
                         "(or set AXME_DATABASE_URL)")
    _run(
        "server", host=host, port=port, database=database_url, api_key=api_key, org=org, workspace=workspace,
        ready_file=ready_file, redelivery_seconds=redelivery_seconds, log_level=log_level, smtp_url=smtp_url,
        mail_dir=mail_dir, allow_email=allow_email, login_code_ttl=login_code_ttl,
        access_token_ttl=access_token_ttl, replica_id=replica_id or f"{socket.gethostname()}-{os.getpid()}",
        webhook_retry_base=webhook_retry_base, webhook_max_attempts=webhook_max_attempts,
        outbound_timeout=outbound_timeout, public_url=public_url, metrics_public=metrics_public,
        rate_limit=rate_limit, allow_private_callbacks=allow_private_callbacks, login_rate_limit=login_rate_limit,
        quota=quota,
    )


def _run(command: str, **options: Any) -> None:
    import gc

    # No garbage collection until the runtime has started (runtime/server.tune_gc turns it on again): the start
    # imports the whole runtime, tens of thousands of objects that all stay, and its collections (one of every
    # generation, ~10% of the start's CPU) found a few hundred unreachable objects. On again if it stops or never
    # starts.
    gc.disable()
    try:
        _start(command, **options)
    finally:
        gc.enable()


def _start(command: str, *, database: str, api_key: str | None, org: str, workspace: str, smtp_url: str | None,
         mail_dir: Path | None, allow_email: list[str] | None, redelivery_seconds: float, login_code_ttl: float,
         access_token_ttl: float, ready_file: Path | None, replica_id: str | None, webhook_retry_base: float,
         webhook_max_attempts: int, outbound_timeout: float, metrics_public: bool = False, rate_limit: float = 1000.0,
         allow_private_callbacks: list[str] | None = None, login_rate_limit: float = 30.0, test_clock: bool = False,
         quota: list[str] | None = None, **serve: Any) -> None:
    from axme_cli.errors import UsageError
    from axme_cli.protocol.addresses import is_valid_slug
    from axme_cli.runtime.server import AddressInUse, ServeOptions, StartupFailed
    from axme_cli.runtime.server import serve as run_server
    from axme_cli.runtime.settings import Settings
    from axme_cli.runtime.store import POSTGRES_SCHEMES

    for label, slug in (("--org", org), ("--workspace", workspace)):
        if not is_valid_slug(slug):
            raise UsageError(
                f"{label} {slug!r} is not a valid slug",
                fix="use 3-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            )
    _check_host(str(serve["host"]))
    if api_key is not None and len(api_key.strip()) < 16:
        raise UsageError("--api-key is too short", fix="use at least 16 characters")
    if "://" in database and not database.startswith((*POSTGRES_SCHEMES, "sqlite:///")):
        raise UsageError(f"unsupported database URL {database.split('://', 1)[0]}://...",
                         fix="use postgresql://USER@HOST:PORT/DB or sqlite:///PATH")
    if database.startswith(POSTGRES_SCHEMES):
        if not api_key:
            raise UsageError("--api-key is required with PostgreSQL",
                             fix="give every replica the same admin key: --api-key KEY (or AXME_SERVER_API_KEY)")
        if mail_dir is None and not smtp_url:
            from axme_cli.config import paths

            mail_dir = paths.data_dir() / f"{command}.mail"
    if serve.get("public_url") and not str(serve["public_url"]).startswith(("http://", "https://")):
        raise UsageError(f"--public-url {serve['public_url']!r} is not an http(s) URL",
                         fix="e.g. --public-url https://axme.example.com")
    if smtp_url:
        from axme_cli.runtime.mailer import SmtpMailer

        try:
            SmtpMailer(smtp_url)
        except ValueError as exc:
            raise UsageError(f"--smtp-url: {exc}") from None
    # `axme dev` on loopback is reached only from this machine, where its agents and its user are: it lets any
    # email log in and its agents be called on loopback. Bound elsewhere, or `axme server`, both are closed.
    convenient = command == "dev" and _is_loopback(str(serve["host"]))
    emails = _allowed_emails(allow_email, open_by_default=convenient)
    callback_networks = _networks(allow_private_callbacks or [])
    settings = Settings(org=org, workspace=workspace, redelivery_seconds=redelivery_seconds,
                        login_code_ttl_seconds=login_code_ttl, access_token_ttl_seconds=access_token_ttl,
                        allowed_emails=emails, show_login_codes=command == "dev",
                        webhook_retry_base_seconds=webhook_retry_base,
                        webhook_max_attempts=webhook_max_attempts, outbound_timeout_seconds=outbound_timeout,
                        metrics_public=metrics_public, rate_limit_per_second=rate_limit,
                        callback_networks=callback_networks, loopback_callbacks=convenient,
                        login_calls_per_minute=login_rate_limit, quota_defaults=_quota_defaults(quota or []))
    opts = ServeOptions(
        database=database,
        settings=settings,
        api_key=api_key.strip() if api_key else None,
        ready_file=str(ready_file) if ready_file else None,
        smtp_url=smtp_url,
        mail_dir=str(mail_dir) if mail_dir else None,
        replica_id=replica_id,
        **serve,
    )
    if test_clock:
        from axme_cli.runtime.clock import ManualClock

        opts.clock = ManualClock()  # at the real time, then only where POST /dev/clock/advance moves it
    from axme_cli.render.console import out

    try:
        run_server(opts, on_ready=_announce if command == "dev" else _announce_server)
        out(f"axme {command}: stopped; the data stays in {_shown(database)}")
    except AddressInUse as exc:
        raise UsageError(
            f"{exc}", fix="is another `axme dev` running? `axme status` tells; or choose another port with --port"
        ) from None
    except StartupFailed as exc:
        from axme_cli.errors import CliError

        raise CliError(f"the runtime could not start: {exc}") from None


def _quota_defaults(values: list[str]) -> tuple[tuple[str, int], ...]:
    """``--quota DIMENSION=LIMIT`` flags as Settings.quota_defaults (a limit of none: no default for it)."""
    from axme_cli.cli.quota import limits_of

    return tuple((name, limit) for name, limit in limits_of(values, "--quota").items() if limit is not None)


def _check_host(host: str) -> None:
    """--host must name an interface: an address, or a name that resolves (the bind would fail later, worse)."""
    from axme_cli.errors import UsageError

    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        from axme_cli.cli.inputs import shown

        raise UsageError(f"--host {shown(host)} is not an address of this machine",
                         fix="e.g. --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (every interface)") \
            from None


def _networks(cidrs: list[str]) -> tuple[str, ...]:
    from ipaddress import ip_network

    from axme_cli.errors import UsageError

    try:
        return tuple(str(ip_network(c.strip(), strict=False)) for c in cidrs)
    except ValueError as exc:
        raise UsageError(f"--allow-private-callbacks: {exc}", fix="give a network such as 10.0.0.0/8 or fd00::/8") \
            from None


def _is_loopback(host: str) -> bool:
    from ipaddress import ip_address

    try:
        return host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed_emails(given: list[str] | None, *, open_by_default: bool) -> tuple[str, ...]:
    """``--allow-email`` as ``Settings.allowed_emails``. Without it nobody may log in by email, unless
    ``open_by_default`` (`axme dev` bound to loopback, where only this machine reaches the runtime and reads its
    console)."""
    from axme_cli.errors import UsageError
    from axme_cli.runtime.engine.auth import normalize_email
    from axme_cli.runtime.errors import DomainError

    entries = sorted({e.strip().lower() for e in given or [] if e.strip()})
    for entry in entries:
        try:
            if entry != "*":
                normalize_email("x" + entry if entry.startswith("@") else entry)
        except DomainError:
            raise UsageError(f"--allow-email {entry!r} is neither an email address nor an @domain",
                             fix="e.g. --allow-email ann@example.com or --allow-email @example.com") from None
    if entries or not open_by_default:
        return tuple(entries)
    return ("*",)


def _logins(s: Any, login_codes: str) -> str:
    """The banner's line on email login."""
    if not s.allowed_emails:
        return "email login off (--allow-email names who may log in)"
    who = "any email" if "*" in s.allowed_emails else ", ".join(s.allowed_emails)
    return f"by email ({who}); codes {login_codes}"


def _shown(database: str) -> str:
    from axme_cli.runtime.store import redact

    return redact(database)


def _announce_server(info: object) -> None:
    from axme_cli.render.console import out
    from axme_cli.runtime.server import ReadyInfo

    assert isinstance(info, ReadyInfo)
    s = info.settings
    out(f"axme server: listening on {info.url} (pid {info.pid})")
    out(f"  Dashboard  {info.url}/ui/")
    out(f"  Database   {info.database} ({info.storage})")
    out(f"  Agents     agent://{s.org}/{s.workspace}/<name>")
    out(f"  Logins     {_logins(s, info.login_codes)}")


def _announce(info: object) -> None:
    from axme_cli.config import contexts, secrets
    from axme_cli.errors import ConfigFileError
    from axme_cli.render.console import err, out
    from axme_cli.runtime.server import ReadyInfo

    assert isinstance(info, ReadyInfo)
    s = info.settings
    try:
        name = contexts.for_runtime(info.url, int(info.url.rsplit(":", 1)[1]))
        if name is None:
            context_note = ("not written: contexts local and the one for this port name other runtimes "
                            "(`axme context list`)")
        else:
            became_active = contexts.upsert(
                name,
                {"base_url": info.url, "org_id": s.org, "workspace_id": s.workspace, "environment": "dev"},
                activate_if_none=True,
            )
            secrets.set_secret(name, "api_key", info.admin_key)
            data = contexts.load()
            context_note = f'CLI context "{name}"' + (
                " (active)" if data.get("active_context") == name else f" (not active: `axme context use {name}`)"
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
    out(f"  Dashboard  {info.url}/ui/  (`axme ui` opens it; log in with the admin key)")
    persists = "data persists across restarts" if info.storage == "sqlite" else "shared by every replica"
    out(f"  Database   {info.database} ({info.storage}; {persists})")
    out(f"  Agents     agent://{s.org}/{s.workspace}/<name>")
    out(f"  Admin key  {key_note}")
    out(f"  Logins     {_logins(s, info.login_codes)}")
    out(f"  CLI        {context_note}; try `axme status`")
    if info.test_clock:
        out("  Clock      a test clock: it stands still; POST /dev/clock/advance {\"seconds\": N} moves it")
    out("Press Ctrl+C to stop.")
